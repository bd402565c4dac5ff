"""``acmefleet validator``: a remote network perspective for multi-perspective issuance
corroboration (CA/B Forum BR 3.2.2.9). It answers one request over mutual TLS: run this
check from here (``validation/perspective.py``), with the server's own validator classes and
this agent's own resolvers, hosts mapping and address policy."""
