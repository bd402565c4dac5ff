# Make win-acme's own renewal task also run every $Minutes minutes (0: its daily run only).
# Each run of wacs.exe --renew asks the server's renewalInfo (ARI, win-acme 2.2.9 and later)
# and renews once the suggested window opens, so a window an operator pulls forward is
# followed within $Minutes, not at the next daily run. The daily trigger stays, and
# win-acme's health check (the action's path and folder, the task enabled) still passes.
# Needs Windows Server 2016 or later (a repetition without a duration lasts indefinitely).
[CmdletBinding(SupportsShouldProcess)]
param(
    [Parameter(Mandatory = $true)][string]$TaskName,
    [Parameter(Mandatory = $true)][ValidateRange(0, 1440)][int]$Minutes,
    [Parameter(Mandatory = $true)][ValidateRange(0, 1440)][int]$RandomDelayMinutes
)
$ErrorActionPreference = 'Stop'
$Ansible.Changed = $false
$task = Get-ScheduledTask -TaskName $TaskName
$repeating = @($task.Triggers | Where-Object { $_.Repetition -and $_.Repetition.Interval })
$others = @($task.Triggers | Where-Object { -not ($_.Repetition -and $_.Repetition.Interval) })
$triggers = $others
if ($Minutes -gt 0) {
    $interval = [System.Xml.XmlConvert]::ToString([TimeSpan]::FromMinutes($Minutes))
    $delay = [System.Xml.XmlConvert]::ToString([TimeSpan]::FromMinutes($RandomDelayMinutes))
    $wanted = @($repeating | Where-Object {
            $_.Repetition.Interval -eq $interval -and
            ($RandomDelayMinutes -eq 0 -or $_.RandomDelay -eq $delay)
        })
    if ($repeating.Count -eq 1 -and $wanted.Count -eq 1) { return }
    $trigger = New-ScheduledTaskTrigger -Once -At (Get-Date).Date `
        -RepetitionInterval (New-TimeSpan -Minutes $Minutes) `
        -RandomDelay (New-TimeSpan -Minutes $RandomDelayMinutes)
    $triggers = @($others) + $trigger
} elseif ($repeating.Count -eq 0) {
    return
}
$Ansible.Changed = $true
if ($PSCmdlet.ShouldProcess($TaskName, "set the renewal check triggers")) {
    Set-ScheduledTask -TaskName $TaskName -Trigger $triggers | Out-Null
}
