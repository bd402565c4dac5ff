# Unpack the win-acme release zip into the install folder (files of the release replace
# older ones; settings.json, which the release does not contain, is kept).
param(
    [Parameter(Mandatory = $true)][string]$Zip,
    [Parameter(Mandatory = $true)][string]$Destination
)
$ErrorActionPreference = 'Stop'
New-Item -ItemType Directory -Force -Path $Destination | Out-Null
Expand-Archive -LiteralPath $Zip -DestinationPath $Destination -Force
if (-not (Test-Path -LiteralPath (Join-Path $Destination 'wacs.exe'))) {
    throw "the archive $Zip holds no wacs.exe at its top level"
}
$Ansible.Changed = $true
