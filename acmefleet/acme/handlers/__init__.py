"""One module per ACME resource."""
