"""JOSE for ACME: JWS parsing and checks (RFC 8555 §6.2), keys, the inner JWS of
EAB (§7.3.4) and keyChange (§7.3.5)."""
