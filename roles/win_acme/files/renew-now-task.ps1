# The on-demand task `acmefleet renew` starts over WinRM (Start-ScheduledTask): win-acme
# renews this certificate now (wacs.exe --renew --force --baseuri ... --id ...) as SYSTEM,
# like its own renewal task. A task, not a script file: nothing for an execution policy to
# refuse, nothing in a folder a local user might write to, a time limit Task Scheduler
# enforces, and a state and result the caller can poll.
[CmdletBinding(SupportsShouldProcess)]
param(
    [Parameter(Mandatory = $true)][string]$TaskName,
    [Parameter(Mandatory = $true)][string]$Execute,
    [Parameter(Mandatory = $true)][string]$Arguments,
    [Parameter(Mandatory = $true)][string]$WorkingDirectory,
    [Parameter(Mandatory = $true)][ValidateRange(1, 1440)][int]$TimeLimitMinutes
)
$ErrorActionPreference = 'Stop'
$Ansible.Changed = $false
$limit = [System.Xml.XmlConvert]::ToString([TimeSpan]::FromMinutes($TimeLimitMinutes))
$task = Get-ScheduledTask -TaskName $TaskName -TaskPath '\' -ErrorAction SilentlyContinue
if ($null -ne $task) {
    $actions = @($task.Actions)
    $same = $actions.Count -eq 1 -and
        $actions[0].Execute -eq $Execute -and
        $actions[0].Arguments -eq $Arguments -and
        $actions[0].WorkingDirectory -eq $WorkingDirectory -and
        @($task.Triggers).Count -eq 0 -and
        $task.Principal.UserId -in @('SYSTEM', 'NT AUTHORITY\SYSTEM') -and
        [string]$task.Principal.RunLevel -eq 'Highest' -and
        $task.Settings.Enabled -and
        $task.Settings.ExecutionTimeLimit -eq $limit -and
        [string]$task.Settings.MultipleInstances -eq 'IgnoreNew'
    if ($same) { return }
}
$Ansible.Changed = $true
if ($PSCmdlet.ShouldProcess($TaskName, 'register the renew-now task')) {
    $action = New-ScheduledTaskAction -Execute $Execute -Argument $Arguments `
        -WorkingDirectory $WorkingDirectory
    $principal = New-ScheduledTaskPrincipal -UserId 'SYSTEM' -LogonType ServiceAccount `
        -RunLevel Highest
    $settings = New-ScheduledTaskSettingsSet -MultipleInstances IgnoreNew `
        -ExecutionTimeLimit (New-TimeSpan -Minutes $TimeLimitMinutes)
    Register-ScheduledTask -TaskName $TaskName -TaskPath '\' -Action $action `
        -Principal $principal -Settings $settings -Force | Out-Null
}
