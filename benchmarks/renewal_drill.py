"""Mass-replacement drill on lab hosts: every certificate of a fleet replaced through ARI.

    sudo .venv/bin/python benchmarks/renewal_drill.py [--hosts 10] [--endpoint private|public]
        [--within-minutes 1] [--check-every 15] [--deadline 900] [--json FILE]

What an operator does when a CA incident forces every certificate out (RFC 9773's case),
the same drill as tests/hosts/test_renewal_drill.py (``tests/hosts/drill.py``):

1. N fresh Debian 12 lab hosts (certbot+Apache, certbot+nginx and lego+nginx in turn) enrol
   against one acmefleet (the tests' server on the lab bridge) with ``playbooks/enroll.yml``;
   their renew-check timers ask the server's renewalInfo every ``--check-every`` seconds
   (the drill's pace: the default is every 15 minutes).
2. ``acmefleet status`` is green; the operator pulls the renewal window of every certificate
   of the organisation forward (``acmefleet admin cert pull-forward --org … --within``).
3. Nothing else is run: each host's own timer sees the window open and renews through its
   own client. Measured: the time until every host serves a new certificate.
4. The old certificates are revoked; the CRL and OCSP say so; ``status`` is green again.
5. The same replacement forced from the controller: ``acmefleet renew --waves 1,50%,100%``.
   Measured: its wall time.

The hosts and the server are removed at the end; the script stops by itself (every wait is
bounded). Needs root (lab hosts), like the host tests.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.hosts.drill import DrillFailed, run_drill  # noqa: E402

FIRST_INDEX = 200  # lab indices 200-249: none of the host tests' hosts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=10)
    parser.add_argument("--endpoint", choices=("private", "public"), default="private")
    parser.add_argument("--within-minutes", type=float, default=1.0)
    parser.add_argument("--check-every", type=int, default=15, help="renew-check pace, s")
    parser.add_argument("--deadline", type=float, default=900.0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if not 1 <= args.hosts <= 50 or not 1 <= args.check_every <= 59:
        parser.error("--hosts must be 1-50 and --check-every 1-59 (seconds)")
    try:
        with tempfile.TemporaryDirectory(prefix="renewal-drill-") as workdir:
            result = run_drill(
                Path(workdir),
                hosts=args.hosts,
                first_index=FIRST_INDEX,
                endpoint=args.endpoint,
                within_minutes=args.within_minutes,
                check_every=args.check_every,
                deadline=args.deadline,
            )
    except DrillFailed as failed:
        print(f"drill failed: {failed}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
