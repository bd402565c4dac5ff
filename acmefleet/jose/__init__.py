"""JOSE for ACME: JWS parsing and checks (RFC 8555 §6.2), keys, EAB (§7.3.4)."""
