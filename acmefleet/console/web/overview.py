"""The dashboard and the audit log."""

from __future__ import annotations

from collections import Counter

from fastapi import APIRouter, Request, Response

from acmefleet.console import inventory, views
from acmefleet.console.web.deps import Ctx, SignedIn
from acmefleet.console.web.render import page
from acmefleet.store import accounts as account_store
from acmefleet.store import audit
from acmefleet.store import certificates as cert_store
from acmefleet.store import eab as eab_store
from acmefleet.store import orgs as org_store

router = APIRouter()
EXPIRING_DAYS = 30
AUDIT_EVENTS = 200


@router.get("/")
def dashboard(request: Request, viewer: SignedIn, ctx: Ctx) -> Response:
    now = ctx.clock.now()
    with ctx.db.read() as conn:
        orgs = org_store.list_orgs(conn)
        domains = org_store.list_all_domains(conn)
        credentials = Counter(c.state(now) for c in eab_store.list_credentials(conn))
        accounts = Counter(a.status for a in account_store.list_accounts(conn))
        certs = cert_store.list_certificates(conn)
        expiring = inventory.list_certificates(
            conn,
            inventory.CertificateFilter(expiring_within_days=EXPIRING_DAYS, revoked=False),
            now,
        )
    names = {o.id: o.name for o in orgs}
    counts = {
        "orgs": len(orgs),
        "orgs_disabled": sum(o.status == "disabled" for o in orgs),
        "domains": len(domains),
        "domains_validated": sum(d.is_validated(now) for d in domains),
        "eab": credentials,
        "accounts": sum(accounts.values()),
        "accounts_valid": accounts["valid"],
        "certs": len(certs),
        "certs_valid": sum(c.revoked_at is None and c.not_after > now for c in certs),
        "certs_revoked": sum(c.revoked_at is not None for c in certs),
        "certs_expired": sum(c.revoked_at is None and c.not_after <= now for c in certs),
    }
    return page(
        request,
        "dashboard.html",
        viewer,
        counts=counts,
        expiring=sorted(
            (views.certificate(c, now) | {"org": names.get(c.org_id)} for c in expiring),
            key=lambda c: str(c["not_after"]),
        ),
        expiring_days=EXPIRING_DAYS,
    )


@router.get("/audit")
def audit_log(request: Request, viewer: SignedIn, ctx: Ctx) -> Response:
    with ctx.db.read() as conn:
        events = [views.audit_event(e) for e in audit.list_events(conn, AUDIT_EVENTS)]
    return page(request, "audit.html", viewer, events=events, limit=AUDIT_EVENTS)
