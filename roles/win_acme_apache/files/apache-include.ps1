# Add one line (IncludeOptional of acmefleet's TLS configuration) to httpd.conf if it is missing.
# SupportsShouldProcess: ansible.windows.win_powershell runs a script in check mode only when its
# param block declares it, and then passes -WhatIf; ShouldProcess is $false under -WhatIf, so
# check mode reports the change without making it.
[CmdletBinding(SupportsShouldProcess)]
param(
    [Parameter(Mandatory = $true)][string]$HttpdConf,
    [Parameter(Mandatory = $true)][string]$Line
)
$ErrorActionPreference = 'Stop'
$Ansible.Changed = $false
$lines = @(Get-Content -LiteralPath $HttpdConf)
if ($lines -notcontains $Line) {
    $Ansible.Changed = $true
    if ($PSCmdlet.ShouldProcess($HttpdConf, "Append '$Line'")) {
        Add-Content -LiteralPath $HttpdConf -Value $Line -Encoding ASCII
    }
}
