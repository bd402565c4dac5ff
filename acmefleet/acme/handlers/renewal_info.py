"""renewalInfo (RFC 9773 §4): a certificate's suggested renewal window, fetched by GET."""

from __future__ import annotations

from acmefleet.acme.context import AcmeContext
from acmefleet.acme.http import Request, Response, json_response
from acmefleet.acme.wire import timestamp
from acmefleet.config import EndpointConfig
from acmefleet.policy import renewal_info as renewal_policy


def renewal_info(
    ctx: AcmeContext, endpoint: EndpointConfig, _request: Request, params: dict[str, str]
) -> Response:
    with ctx.db.read() as conn:
        info = renewal_policy.renewal_info(conn, endpoint.name, params["cert_id"])
    # The operator's reason stays in the console: anyone may fetch renewalInfo.
    response = json_response(
        {
            "suggestedWindow": {
                "start": timestamp(info.window.start),
                "end": timestamp(info.window.end),
            }
        }
    )
    response.add_header("Retry-After", str(int(renewal_policy.RETRY_AFTER.total_seconds())))
    return response
