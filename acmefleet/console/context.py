"""Everything a console request (API, web page or local CLI command) may use.

The console's own context, not the ACME front end's: it shares the database and the clock
with the ACME side but knows nothing of nonces, routes or key caches.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from acmefleet.clock import Clock
from acmefleet.config import ServerConfig
from acmefleet.store.engine import Database
from acmefleet.validation.base import ChallengeValidator


@dataclass(frozen=True)
class ConsoleContext:
    config: ServerConfig
    db: Database
    clock: Clock
    # The ACME side's validators, which the console's own domain checks use too: http-01,
    # and dns-01's TXT lookup for the DNS check (BR 3.2.2.4.7).
    validators: Mapping[str, ChallengeValidator]
    # Certificate profile name → description, as the endpoints list shows them.
    profile_descriptions: Mapping[str, str]
