"""The orchestrator: preflight, EAB push, waves through ansible-runner, TLS verification."""
