# Add one line (IncludeOptional of acmefleet's TLS configuration) to httpd.conf if it is missing.
param(
    [Parameter(Mandatory = $true)][string]$HttpdConf,
    [Parameter(Mandatory = $true)][string]$Line
)
$ErrorActionPreference = 'Stop'
$Ansible.Changed = $false
$lines = @(Get-Content -LiteralPath $HttpdConf)
if ($lines -notcontains $Line) {
    if (-not $Ansible.CheckMode) {
        Add-Content -LiteralPath $HttpdConf -Value $Line -Encoding ASCII
    }
    $Ansible.Changed = $true
}
