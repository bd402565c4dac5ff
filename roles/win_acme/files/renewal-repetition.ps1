# Make win-acme's own renewal task also run every $Minutes minutes (0: its daily run only).
# Each run of wacs.exe --renew asks the server's renewalInfo (ARI, win-acme 2.2.9 and later)
# and renews once the suggested window opens, so a window an operator pulls forward is
# followed within $Minutes, not at the next daily run. The repetition starts $OffsetSeconds
# after midnight (the role derives it from the host's name), so a fleet does not ask at the
# same quarter hour. The daily trigger stays, and win-acme's health check (the action's
# path and folder, the task enabled) still passes. Needs Windows Server 2016 or later (a
# repetition without a duration then lasts indefinitely).
[CmdletBinding(SupportsShouldProcess)]
param(
    [Parameter(Mandatory = $true)][string]$TaskName,
    [Parameter(Mandatory = $true)][ValidateRange(0, 1440)][int]$Minutes,
    [Parameter(Mandatory = $true)][ValidateRange(0, 1440)][int]$RandomDelayMinutes,
    [Parameter(Mandatory = $true)][ValidateRange(0, 86399)][int]$OffsetSeconds
)
$ErrorActionPreference = 'Stop'
$Ansible.Changed = $false
$task = Get-ScheduledTask -TaskName $TaskName
if ([string]$task.Principal.LogonType -eq 'Password') {
    # Set-ScheduledTask would need that account's password: left as it is, and said so.
    Write-Warning "$TaskName runs as a user with a stored password: its triggers are left as they are"
    return
}
function Test-Repeating($trigger) { $trigger.Repetition -and $trigger.Repetition.Interval }
$repeating = @($task.Triggers | Where-Object { Test-Repeating $_ })
$others = @($task.Triggers | Where-Object { -not (Test-Repeating $_) })
$triggers = $others
if ($Minutes -gt 0) {
    $interval = [System.Xml.XmlConvert]::ToString([TimeSpan]::FromMinutes($Minutes))
    $delay = if ($RandomDelayMinutes -gt 0) {
        [System.Xml.XmlConvert]::ToString([TimeSpan]::FromMinutes($RandomDelayMinutes))
    } else { '' }
    $wanted = @($repeating | Where-Object {
            $_.Enabled -and
            $_.Repetition.Interval -eq $interval -and
            -not $_.Repetition.Duration -and
            -not $_.EndBoundary -and
            [string]$_.RandomDelay -eq $delay -and
            ([datetime]$_.StartBoundary).TimeOfDay.TotalSeconds -eq $OffsetSeconds
        })
    if ($repeating.Count -eq 1 -and $wanted.Count -eq 1) { return }
    $start = (Get-Date).Date.AddSeconds($OffsetSeconds)
    $trigger = if ($RandomDelayMinutes -gt 0) {
        New-ScheduledTaskTrigger -Once -At $start -RandomDelay (New-TimeSpan -Minutes $RandomDelayMinutes) `
            -RepetitionInterval (New-TimeSpan -Minutes $Minutes)
    } else {
        New-ScheduledTaskTrigger -Once -At $start -RepetitionInterval (New-TimeSpan -Minutes $Minutes)
    }
    $triggers = @($others) + $trigger
} elseif ($repeating.Count -eq 0) {
    return
}
$Ansible.Changed = $true
if ($PSCmdlet.ShouldProcess($TaskName, "set the renewal check triggers")) {
    Set-ScheduledTask -TaskName $TaskName -TaskPath $task.TaskPath -Trigger $triggers | Out-Null
}
