"""An ACME client for the upstream CA a public endpoint relays to (issue 16).

acmefleet's public endpoint takes publicly trusted certificates from another ACME CA (an
enterprise CA with EAB such as Sectigo, Let's Encrypt, ZeroSSL, Google Trust Services). This
package is the client side of that: the account key kept by the server (``account_key``), the
JWS and EAB it signs (``signing``), the protocol (``client``), and dns-01 records written to
the organisation's DNS server with RFC 2136 updates (``dns01``). It knows nothing of the store
or the server: ``server/upstream.py`` wires it to the configuration.
"""
