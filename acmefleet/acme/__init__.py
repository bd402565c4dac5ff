"""The ACME HTTP front end (RFC 8555): routing, request checks, resource handlers."""
