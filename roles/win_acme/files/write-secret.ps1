# Put one secret into win-acme's json secret store ({ConfigurationPath}\secrets.json), the way
# win-acme's JsonSecretService writes it: a JSON list of {"Key", "Secret"} where Secret is a
# ProtectedString, "enc-" + base64 of DPAPI (LocalMachine scope, no entropy).
param(
    [Parameter(Mandatory = $true)][string]$Path,
    [Parameter(Mandatory = $true)][string]$Key,
    [Parameter(Mandatory = $true)][string]$Secret
)
$ErrorActionPreference = 'Stop'
Add-Type -AssemblyName System.Security
$bytes = [System.Text.Encoding]::UTF8.GetBytes($Secret)
$protected = [System.Security.Cryptography.ProtectedData]::Protect(
    $bytes, $null, [System.Security.Cryptography.DataProtectionScope]::LocalMachine)
$value = 'enc-' + [System.Convert]::ToBase64String($protected)
$entries = @()
if (Test-Path -LiteralPath $Path) {
    $entries = @(Get-Content -LiteralPath $Path -Raw | ConvertFrom-Json | Where-Object { $_.Key -ne $Key })
}
$entries += [pscustomobject]@{ Key = $Key; Secret = $value }
New-Item -ItemType Directory -Force -Path (Split-Path -Parent $Path) | Out-Null
ConvertTo-Json -InputObject @($entries) -Depth 3 | Set-Content -LiteralPath $Path -Encoding UTF8
$Ansible.Changed = $true
