"""The edge turns policy's KeyInUse into the §7.3.5 409 with the holder's URL."""

from __future__ import annotations

from acmefleet.acme.handlers.accounts import key_in_use_error
from acmefleet.acme.urls import EndpointUrls
from acmefleet.errors import KeyInUse

URLS = EndpointUrls("https://acme.example", "private")


def test_location_is_the_holders_account_url_and_the_raised_error_is_untouched() -> None:
    raised = KeyInUse("holder-1")
    rendered = key_in_use_error(raised, URLS)
    assert rendered.headers == {"Location": "https://acme.example/acme/private/acct/holder-1"}
    assert rendered.as_problem() == raised.as_problem()
    assert rendered.http_status == 409
    assert raised.headers == {}
