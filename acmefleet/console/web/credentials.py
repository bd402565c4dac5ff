"""EAB credentials: list, mint (the HMAC key is in that one response only), revoke."""

from __future__ import annotations

import shlex
from typing import Annotated

from fastapi import APIRouter, Form, Query, Request, Response

from acmefleet.console import credentials, organisations, views
from acmefleet.console.credentials import MintedCredential
from acmefleet.console.web.deps import Ctx, SignedIn, Source, Writer, back_to, source
from acmefleet.console.web.render import page, see_other
from acmefleet.store import eab as eab_store
from acmefleet.store import orgs as org_store
from acmefleet.store.ids import MAX_ROW_ID

router = APIRouter()
CA_BUNDLE = "ca-bundle.pem"  # the server's data directory holds it; clients must trust it
EXAMPLE_NAME = "www.example.com"


def client_commands(minted: MintedCredential, name: str) -> dict[str, str]:
    """Ready-to-run certbot and lego command lines for the new credential, one option group
    a line (as in the README)."""
    contact = f"hostmaster@{name}"
    certbot = [
        [f"REQUESTS_CA_BUNDLE={CA_BUNDLE}", "certbot", "certonly", "--standalone"],
        ["--server", minted.directory],
        ["--eab-kid", minted.kid, "--eab-hmac-key", minted.hmac_key],
        ["-m", contact, "--agree-tos", "-d", name],
    ]
    lego = [
        [f"LEGO_CA_CERTIFICATES={CA_BUNDLE}", "lego", "--server", minted.directory],
        ["--eab", "--kid", minted.kid, "--hmac", minted.hmac_key],
        ["--email", contact, "--accept-tos", "--http", "-d", name, "run"],
    ]
    return {"certbot": _lines(certbot), "lego": _lines(lego)}


def _lines(groups: list[list[str]]) -> str:
    return " \\\n    ".join(shlex.join(group) for group in groups)


@router.get("/eab")
def list_credentials(
    request: Request,
    viewer: SignedIn,
    ctx: Ctx,
    org: Annotated[int | None, Query(ge=1, le=MAX_ROW_ID)] = None,
) -> Response:
    now = ctx.clock.now()
    with ctx.db.read() as conn:
        orgs = org_store.list_orgs(conn)
        found = eab_store.list_credentials(conn)
    names = {o.id: o.name for o in orgs}
    return page(
        request,
        "credentials.html",
        viewer,
        credentials=[views.credential(c, now, names.get(c.org_id)) for c in found],
        orgs=[views.organisation(o) for o in orgs if o.status == "active"],
        endpoints=list(ctx.config.endpoints),
        selected_org=org,
    )


@router.post("/eab")
def mint_credential(
    request: Request,
    viewer: Writer,
    ctx: Ctx,
    src: Source,
    org_id: Annotated[int, Form(ge=1, le=MAX_ROW_ID)],
    endpoint: Annotated[str, Form(min_length=1, max_length=64)],
) -> Response:
    """Rendered in this response (never redirected to): the key cannot be fetched again."""
    back_to(request, "/eab")
    now = ctx.clock.now()
    with ctx.db.write() as conn:
        org = organisations.get_by_id(conn, org_id)
        minted = credentials.mint(
            conn,
            ctx.config,
            org_name=org.name,
            endpoint=endpoint,
            actor=viewer.actor,
            now=now,
            source=src,
        )
        dns = [d.name for d in org_store.list_domains(conn, org.id) if d.kind == "dns"]
    return page(
        request,
        "credential_minted.html",
        viewer,
        status_code=201,
        org=views.organisation(org),
        minted=minted,
        expires=minted.expires_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        commands=client_commands(minted, dns[0] if dns else EXAMPLE_NAME),
        ca_bundle=CA_BUNDLE,
    )


@router.post("/eab/{kid}/revoke")
def revoke_credential(request: Request, kid: str, viewer: Writer, ctx: Ctx) -> Response:
    back_to(request, "/eab")
    with ctx.db.write() as conn:
        credentials.revoke(
            conn, kid, actor=viewer.actor, now=ctx.clock.now(), source=source(request)
        )
    return see_other("/eab")
