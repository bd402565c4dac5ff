"""The mass-replacement drill of issue 17 on ten lab hosts (``tests/hosts/drill.py``).

Ten fresh Debian 12 hosts — certbot+Apache, certbot+nginx and lego+nginx in turn, each
proving http-01 to the **public** endpoint — enrol with ``playbooks/enroll.yml``. An
operator pulls the renewal window of every certificate of the organisation forward (one
minute, RFC 9773); nothing else is run from the controller: each host's renew-check timer
(every 15 s here, every 15 minutes by default) sees the window open and renews through its
own client. Then the old certificates are revoked (CRL and OCSP say so), ``acmefleet
status`` is green, and the same replacement is forced with ``acmefleet renew`` in three
waves. ``benchmarks/renewal_drill.py`` runs the same drill as a script.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.hosts.drill import run_drill
from tests.hosts.fleetlab import require_root

pytestmark = [pytest.mark.hosts, pytest.mark.timeout(1800)]

HOSTS = 10
FIRST_INDEX = 140  # lab indices 140-149: no other host test's


def test_ten_hosts_renew_through_their_own_timers_then_through_acmefleet_renew(
    tmp_path: Path,
) -> None:
    require_root()
    result = run_drill(
        tmp_path, hosts=HOSTS, first_index=FIRST_INDEX, endpoint="public", deadline=300
    )
    print(f"renewal drill: {result}")
    assert result["pulled_forward"] == HOSTS
    # While the hosts renew, status says "due", not a flag (the window has not passed).
    assert set(result["status_during_drill"]) <= {"due", "not-due"}, result
    assert len(result["timers_seconds_by_host"]) == HOSTS  # run_drill waits for each
    assert (result["old_in_crl"], result["old_revoked_by_ocsp"]) == (HOSTS, HOSTS), result
    assert (result["status_after_exit_code"], result["status_after_flags"]) == (0, {}), result
    assert (result["renew_exit_code"], result["renewed_by_acmefleet_renew"]) == (0, HOSTS), result
