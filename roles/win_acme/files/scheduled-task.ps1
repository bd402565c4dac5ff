# Report win-acme's renewal task ("<ClientName> renew (<clean base URI>)"): read-only.
param(
    [Parameter(Mandatory = $true)][string]$TaskName
)
$ErrorActionPreference = 'Stop'
$Ansible.Changed = $false
$task = Get-ScheduledTask -TaskName $TaskName -ErrorAction SilentlyContinue
if ($null -eq $task) {
    [pscustomobject]@{ exists = $false; state = ''; execute = ''; arguments = '' }
} else {
    $action = @($task.Actions)[0]
    [pscustomobject]@{
        exists = $true
        state = [string]$task.State
        execute = [string]$action.Execute
        arguments = [string]$action.Arguments
    }
}
