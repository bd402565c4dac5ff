"""The database schema (SQLAlchemy Core). Alembic migrations in ``migrations/`` build it.

Rules that keep it PostgreSQL-ready and replica-safe: text primary keys minted from
random bytes (no sequences clients can see), aware UTC timestamps, every uniqueness the
protocol depends on enforced by a constraint, and no state that lives only in a process.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from acmefleet.store.types import JsonText, UtcDateTime

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING)

organizations = Table(
    "organizations",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("status", String(16), nullable=False, server_default="active"),
    Column("created_at", UtcDateTime, nullable=False),
)

org_domains = Table(
    "org_domains",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("org_id", Integer, ForeignKey("organizations.id"), nullable=False),
    Column("name", String(253), nullable=False),
    Column("kind", String(8), nullable=False),  # "dns" or "ip" (a CIDR network)
    Column("validated_at", UtcDateTime),
    Column("validated_until", UtcDateTime),
    Column("validation_method", String(32)),
    Column("validated_by", String(200)),
    # What the validation covers: "exact" (that name only) or "subdomains" (its subtree and
    # wildcards under it); null when not validated.
    Column("validation_scope", String(16)),
    Column("created_at", UtcDateTime, nullable=False),
    # A console validation in progress: the token the domain must serve (http-01) or the
    # Random Value its TXT record must hold (dns), and since when.
    Column("challenge_token", String(128)),
    Column("challenge_started_at", UtcDateTime),
    # Its method: "http-01" or "dns" (null: http-01, a check started before 0009).
    Column("challenge_method", String(16)),
    UniqueConstraint("org_id", "name", name="uq_org_domains_org_name"),
)

# Which ACME accounts (or EAB credentials, before binding) may order under a domain.
# An account that was never delegated a domain may use every domain of its organisation.
domain_delegations = Table(
    "domain_delegations",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("domain_id", Integer, ForeignKey("org_domains.id"), nullable=False, index=True),
    Column("account_id", String(64)),
    Column("eab_kid", String(64)),
    Column("created_at", UtcDateTime, nullable=False),
    UniqueConstraint("domain_id", "account_id", "eab_kid", name="uq_domain_delegations_target"),
)

# Accounts and EAB credentials that have been delegated a domain: from then on they may
# order only under their delegated domains, even when the last delegation is removed (the
# restriction must fail closed, not widen to the whole organisation).
delegation_restrictions = Table(
    "delegation_restrictions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("account_id", String(64), unique=True),
    Column("eab_kid", String(64), unique=True),
    Column("created_at", UtcDateTime, nullable=False),
)

# Console API tokens: only a hash of the secret is kept.
admin_tokens = Table(
    "admin_tokens",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("role", String(16), nullable=False),
    Column("secret_sha256", String(64), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("created_by", String(200), nullable=False),
    Column("revoked_at", UtcDateTime),
)

# Web console sessions, in the database so any replica can serve any request.
console_sessions = Table(
    "console_sessions",
    metadata,
    Column("id_sha256", String(64), primary_key=True),
    Column("token_id", String(32), ForeignKey("admin_tokens.id"), nullable=False),
    Column("csrf_token", String(64), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False, index=True),
)

eab_credentials = Table(
    "eab_credentials",
    metadata,
    Column("kid", String(64), primary_key=True),
    Column("org_id", Integer, ForeignKey("organizations.id"), nullable=False),
    Column("endpoint", String(64), nullable=False),
    # The HMAC key exists only until the credential is bound; binding erases it.
    Column("hmac_key", String(128)),
    Column("created_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
    Column("bound_at", UtcDateTime),
    Column("account_id", String(64)),
    Column("revoked_at", UtcDateTime),
    Column("created_by", String(200), nullable=False, server_default="cli"),
)

accounts = Table(
    "accounts",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("endpoint", String(64), nullable=False),
    Column("org_id", Integer, ForeignKey("organizations.id"), nullable=False),
    Column("jwk", JsonText, nullable=False),
    Column("thumbprint", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("contact", JsonText, nullable=False),
    Column("eab_kid", String(64), nullable=False, unique=True),
    Column("created_at", UtcDateTime, nullable=False),
    UniqueConstraint("endpoint", "thumbprint", name="uq_accounts_endpoint_thumbprint"),
)

orders = Table(
    "orders",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("account_id", String(64), ForeignKey("accounts.id"), nullable=False, index=True),
    Column("profile", String(64), nullable=False),
    Column("identifiers", JsonText, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
    Column("not_before", UtcDateTime),
    Column("not_after", UtcDateTime),
    # none | processing | valid | invalid: how far finalization went (status is derived).
    Column("finalization", String(16), nullable=False, server_default="none"),
    Column("error", JsonText),
    Column("certificate_id", String(64)),
    Column("created_at", UtcDateTime, nullable=False),
    # RFC 9773 §5: the certID the client said this order replaces, as it sent it, and the
    # certificate that is (checked at newOrder: same organisation, a name in common).
    Column("replaces", String(128)),
    Column("replaces_certificate", String(64)),
)

authorizations = Table(
    "authorizations",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("account_id", String(64), ForeignKey("accounts.id"), nullable=False, index=True),
    Column("identifier_type", String(8), nullable=False),
    Column("identifier_value", String(253), nullable=False),
    Column("wildcard", Boolean, nullable=False),
    Column("status", String(16), nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    # When CAA last allowed issuance for the name (public endpoints; CA/B BR 3.2.2.8: a
    # certificate needs a check at most 8 hours old). None: never checked.
    Column("caa_checked_at", UtcDateTime),
    # Reuse across the accounts of an organisation looks authorizations up by name.
    Index("ix_authorizations_identifier", "identifier_value", "identifier_type"),
)

order_authorizations = Table(
    "order_authorizations",
    metadata,
    Column("order_id", String(64), ForeignKey("orders.id"), primary_key=True),
    Column("authz_id", String(64), ForeignKey("authorizations.id"), primary_key=True),
    Column("position", Integer, nullable=False),
    Index("ix_order_authorizations_authz", "authz_id"),
)

challenges = Table(
    "challenges",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("authz_id", String(64), ForeignKey("authorizations.id"), nullable=False, index=True),
    Column("type", String(32), nullable=False),
    Column("token", String(128), nullable=False),
    Column("status", String(16), nullable=False),
    Column("validated_at", UtcDateTime),
    Column("error", JsonText),
    # When the challenge became processing: a resumed validation has until then + deadline.
    Column("processing_since", UtcDateTime),
    # The validation queue: a processing challenge is a queued validation. The process
    # running it holds a lease (its owner id, renewed until ``lease_until``); one without a
    # lease, or whose lease has run out, may be claimed by any process.
    Column("lease_owner", String(64)),
    Column("lease_until", UtcDateTime),
    Index("ix_challenges_status_lease", "status", "lease_until"),
)

certificates = Table(
    "certificates",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("serial_hex", String(64), nullable=False, unique=True),
    Column("account_id", String(64), ForeignKey("accounts.id"), nullable=False, index=True),
    Column("order_id", String(64), nullable=False),
    Column("org_id", Integer, ForeignKey("organizations.id"), nullable=False),
    Column("endpoint", String(64), nullable=False),
    Column("ca_level", String(32), nullable=False),
    Column("profile", String(64), nullable=False),
    Column("names", JsonText, nullable=False),
    Column("not_before", UtcDateTime, nullable=False),
    Column("not_after", UtcDateTime, nullable=False),
    Column("chain_pem", Text, nullable=False),
    Column("spki_sha256", String(64), nullable=False, index=True),
    Column("revoked_at", UtcDateTime),
    Column("revocation_reason", Integer),
    Column("created_at", UtcDateTime, nullable=False),
    # RFC 9773 §5: the order that replaced this certificate, set by compare-and-set when
    # that order is finalized (kept here, not derived from orders, which are pruned).
    Column("replaced_by", String(64)),
    # Every CRL fetch reads the revocation mark of one CA (``certificates.revocation_mark``).
    Index("ix_certificates_revoked", "ca_level", "revoked_at"),
)

# Renewal windows an operator set (RFC 9773 §4.2), replacing a certificate's default one
# (``ca.renewal_info.default_window``): pulled forward for a set of certificates, with why.
renewal_windows = Table(
    "renewal_windows",
    metadata,
    Column("certificate_id", String(64), ForeignKey("certificates.id"), primary_key=True),
    Column("window_start", UtcDateTime, nullable=False),
    Column("window_end", UtcDateTime, nullable=False),
    Column("reason", Text, nullable=False),
    Column("requested_by", Text, nullable=False),
    Column("requested_at", UtcDateTime, nullable=False),
)

# The CRL each issuing CA publishes (one row per trust level): every worker and replica
# serves these same bytes. A new CRL replaces the row by compare-and-set on its number, so
# numbers only grow and no two different CRLs ever carry the same one (RFC 5280 §5.2.3).
# The revocation mark it was built from (how many revoked, the latest revocation) tells a
# reader whether a revocation was committed since.
crls = Table(
    "crls",
    metadata,
    Column("ca_level", String(32), primary_key=True),
    Column("crl_number", BigInteger, nullable=False),
    Column("this_update", UtcDateTime, nullable=False),
    Column("next_update", UtcDateTime, nullable=False),
    Column("revoked_count", Integer, nullable=False),
    Column("latest_revocation", UtcDateTime, nullable=True),
    Column("der", LargeBinary, nullable=False),
)

# Orders a public endpoint relays to its upstream CA: one row per local order (the primary
# key: never two upstream orders for one local order), queued by finalize and worked by one
# process at a time under a lease, as the validation queue's challenges are. The upstream
# order's URL is recorded as soon as it exists, so a resumed attempt continues that order.
upstream_orders = Table(
    "upstream_orders",
    metadata,
    Column("order_id", String(64), ForeignKey("orders.id"), primary_key=True),
    Column("upstream", String(32), nullable=False),
    Column("csr", Text, nullable=False),  # base64url DER, as the client sent it
    # queued | valid | invalid
    Column("state", String(16), nullable=False),
    Column("upstream_order_url", Text),
    Column("certificate_url", Text),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", UtcDateTime, nullable=False),
    Column("give_up_at", UtcDateTime, nullable=False),
    Column("last_error", JsonText),
    Column("lease_owner", String(64)),
    Column("lease_until", UtcDateTime),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Index("ix_upstream_orders_state_next", "state", "next_attempt_at"),
    # Which local order an upstream order is recorded for (a CA may hand one out twice).
    Index("ix_upstream_orders_url", "upstream_order_url"),
)

# The upstream CA's renewal window (RFC 9773) for each certificate relayed from it, fetched
# by the relay in the background and served as that certificate's renewalInfo: a window
# the upstream pulls forward (its own incident, a revocation there) reaches the hosts. One
# process fetches a row at a time: it moves ``next_fetch_at`` on by compare-and-set first.
upstream_renewal_windows = Table(
    "upstream_renewal_windows",
    metadata,
    Column("certificate_id", String(64), ForeignKey("certificates.id"), primary_key=True),
    Column("upstream", String(32), nullable=False),
    Column("window_start", UtcDateTime),  # both None: not fetched yet, or no ARI upstream
    Column("window_end", UtcDateTime),
    Column("fetched_at", UtcDateTime),
    Column("next_fetch_at", UtcDateTime, nullable=False),
    Column("failures", Integer, nullable=False),
    Index("ix_upstream_renewal_windows_next", "next_fetch_at"),
)

# Revocations of relayed certificates still to be told to their upstream CA (an outbox):
# the local revocation is done and answered at once; a process holding the lease sends
# revokeCert upstream, retried with backoff until the upstream has it.
upstream_revocations = Table(
    "upstream_revocations",
    metadata,
    Column("certificate_id", String(64), ForeignKey("certificates.id"), primary_key=True),
    Column("upstream", String(32), nullable=False),
    Column("reason", Integer, nullable=False),
    # queued | done | failed
    Column("state", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", UtcDateTime, nullable=False),
    Column("last_error", JsonText),
    Column("lease_owner", String(64)),
    Column("lease_until", UtcDateTime),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Index("ix_upstream_revocations_state_next", "state", "next_attempt_at"),
)

# Fixed-window counters for rate limits, shared by every worker and replica: one row per
# limited key (e.g. "orders:account:<id>") and window start.
rate_counters = Table(
    "rate_counters",
    metadata,
    Column("key", String(200), primary_key=True),
    Column("window_start", UtcDateTime, primary_key=True),
    Column("hits", Integer, nullable=False),
)

used_nonces = Table(
    "used_nonces",
    metadata,
    Column("nonce", String(64), primary_key=True),
    Column("expires_at", UtcDateTime, nullable=False, index=True),
)

server_secrets = Table(
    "server_secrets",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

audit_events = Table(
    "audit_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", UtcDateTime, nullable=False),
    # Unbounded: an actor names a token, a target a domain (253 characters) or organisation.
    Column("actor", Text, nullable=False),
    Column("action", String(64), nullable=False),
    Column("target", Text, nullable=False),
    Column("source", String(64)),
    Column("details", JsonText),
    # A hash chain: each event's hash covers its content and the previous event's hash,
    # so an edited, deleted or reordered event breaks every hash after it.
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
)

# The chain's newest link, one row: appends serialise on it (a row lock on PostgreSQL),
# and a truncated tail no longer matches it.
audit_chain_head = Table(
    "audit_chain_head",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("last_id", Integer, nullable=False),
    Column("last_hash", String(64), nullable=False),
    Column("length", Integer, nullable=False),
)

# Failed console sign-ins, one row each: every worker throttles on the same count.
# ``source`` is the client address (an IPv6 address by its /64); rows older than the
# throttle's window are pruned when a failure is recorded.
console_login_failures = Table(
    "console_login_failures",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("source", String(64), nullable=False),
    Column("at", UtcDateTime, nullable=False, index=True),
    Index("ix_console_login_failures_source_at", "source", "at"),
)
