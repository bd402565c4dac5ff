# Remove one secret from win-acme's json secret store once wacs.exe has used it.
param(
    [Parameter(Mandatory = $true)][string]$Path,
    [Parameter(Mandatory = $true)][string]$Key
)
$ErrorActionPreference = 'Stop'
$Ansible.Changed = $false
if (Test-Path -LiteralPath $Path) {
    $entries = @(Get-Content -LiteralPath $Path -Raw | ConvertFrom-Json)
    $kept = @($entries | Where-Object { $_.Key -ne $Key })
    if ($kept.Count -ne $entries.Count) {
        ConvertTo-Json -InputObject @($kept) -Depth 3 | Set-Content -LiteralPath $Path -Encoding UTF8
        $Ansible.Changed = $true
    }
}
