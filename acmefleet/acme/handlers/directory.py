"""The directory (RFC 8555 §7.1.1) and newNonce (§7.2)."""

from __future__ import annotations

from acmefleet.acme.context import AcmeContext
from acmefleet.acme.http import Request, Response, json_response
from acmefleet.config import EndpointConfig


def directory(
    ctx: AcmeContext, endpoint: EndpointConfig, _request: Request, _params: dict[str, str]
) -> Response:
    urls = ctx.urls(endpoint.name)
    profiles = {name: ctx.profiles[name].description for name in endpoint.profiles}
    return json_response(
        {
            "newNonce": urls.resource("new-nonce"),
            "newAccount": urls.resource("new-account"),
            "newOrder": urls.resource("new-order"),
            "revokeCert": urls.resource("revoke-cert"),
            "keyChange": urls.resource("key-change"),
            "renewalInfo": urls.resource("renewal-info"),
            "meta": {
                "externalAccountRequired": True,
                "profiles": profiles,
                "website": ctx.config.base_url,
            },
        }
    )


def new_nonce(
    _ctx: AcmeContext, _endpoint: EndpointConfig, request: Request, _params: dict[str, str]
) -> Response:
    """The nonce itself is in the ``Replay-Nonce`` header every response carries."""
    return Response(status=200 if request.method == "HEAD" else 204)
