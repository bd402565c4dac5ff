"""The orchestrator: preflight, EAB push, waves through ansible-playbook, TLS verification."""
