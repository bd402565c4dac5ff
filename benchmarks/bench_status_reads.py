"""What a fleet's relying parties and ARI clients cost the server: renewalInfo, OCSP, CRL.

    .venv/bin/python benchmarks/bench_status_reads.py [--duration 8] [--concurrency 1,8]
        [--certificates 200] [--revoked 20] [--json FILE]

A fleet renewing through ARI asks ``renewalInfo`` for each certificate every few hours (our
hosts every 15 minutes), and every TLS client may ask OCSP or fetch the CRL. Those are the
server's read load between issuances; this measures them.

One acmefleet (SQLite, its default) and Debian's pebble 2.4 start side by side. acmefleet
issues ``--certificates`` certificates (private endpoint) and ``--revoked`` of them are
revoked by revokeCert. Then, for each request kind and concurrency, worker threads (each its
own keep-alive httpx client, the same code for both servers) send requests for
``--duration`` seconds, each for a certificate picked at random:

* ``directory`` GET over HTTPS, on both servers: the baseline that can be compared. Pebble
  2.4 has **no renewalInfo** (ARI came to pebble later) and **no OCSP responder** (it only
  writes a responder URL configured elsewhere into its certificates) and no CRL, so those
  rows are acmefleet's alone; the directory row shows what the same client and HTTPS cost
  on each server.
* ``renewalInfo`` GET (RFC 9773) over HTTPS: one database read, one small JSON.
* ``ocsp-post`` and ``ocsp-get`` (RFC 6960 Appendix A) over plain HTTP on the PKI listener:
  one database read and one ECDSA signature per answer (no precomputed responses).
* ``crl`` GET: the published CRL (``--revoked`` entries) read from the database.

Reported per row: requests per second, p50/p95 latency, server CPU per request (the
server's process tree from /proc) and client CPU per request. Each request is one request:
"requests per answer" is 1 for every kind here.
"""

from __future__ import annotations

import argparse
import base64
import json
import random
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from acmefleet.ca.renewal_info import cert_id_of  # noqa: E402
from benchmarks.bench_issuance import (  # noqa: E402
    DOMAIN,
    Target,
    client_cpu_seconds,
    open_account,
    percentile,
    start_acmefleet,
    start_pebble,
)

Request = Callable[[httpx.Client, random.Random], httpx.Response]


@dataclass(frozen=True)
class Row:
    kind: str
    server: str
    concurrency: int
    requests: int
    errors: int
    per_second: float
    p50_ms: float | None
    p95_ms: float | None
    server_cpu_ms_per_request: float | None
    client_cpu_ms_per_request: float | None


@dataclass(frozen=True)
class Issued:
    leaf: x509.Certificate
    issuer: x509.Certificate


def issue(target: Target, count: int, revoked: int, timeout: float) -> list[Issued]:
    client = open_account(target, timeout)
    issued: list[Issued] = []
    try:
        for number in range(count):
            pem = client.issue_certificate([f"r{number}.{DOMAIN}"], timeout=timeout)
            chain = x509.load_pem_x509_certificates(pem.encode())
            issued.append(Issued(chain[0], chain[1]))
        for item in issued[:revoked]:
            done = client.revoke(item.leaf.public_bytes(serialization.Encoding.DER), reason=4)
            if done.status_code != 200:
                raise RuntimeError(f"revokeCert: {done.status_code} {done.text[:300]}")
    finally:
        client.close()
    return issued


def aia_url(cert: x509.Certificate, method: x509.ObjectIdentifier) -> str:
    aia = cert.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    return next(str(d.access_location.value) for d in aia if d.access_method == method)


def crl_url(cert: x509.Certificate) -> str:
    points = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    return str(points[0].full_name[0].value)  # type: ignore[index]


def ocsp_request(item: Issued) -> bytes:
    builder = ocsp.OCSPRequestBuilder().add_certificate(item.leaf, item.issuer, hashes.SHA1())
    return builder.build().public_bytes(serialization.Encoding.DER)


def requests_for(directory_url: str, issued: list[Issued]) -> dict[str, Request]:
    """Each kind of read, as a function of a client and a random source."""
    base = directory_url.rsplit("/directory", 1)[0]
    info = [f"{base}/renewal-info/{cert_id_of(item.leaf)}" for item in issued]
    ocsp_url = aia_url(issued[0].leaf, x509.AuthorityInformationAccessOID.OCSP)
    bodies = [ocsp_request(item) for item in issued]
    paths = [base64.b64encode(body).decode() for body in bodies]
    crl = crl_url(issued[0].leaf)
    header = {"Content-Type": "application/ocsp-request"}
    return {
        "directory": lambda c, r: c.get(directory_url),
        "renewalInfo": lambda c, r: c.get(r.choice(info)),
        "ocsp-post": lambda c, r: c.post(ocsp_url, content=r.choice(bodies), headers=header),
        "ocsp-get": lambda c, r: c.get(f"{ocsp_url}/{r.choice(paths)}"),
        "crl": lambda c, r: c.get(crl),
    }


def measure(target: Target, kind: str, send: Request, concurrency: int, duration: float) -> Row:
    latencies: list[list[float]] = [[] for _ in range(concurrency)]
    errors = [0] * concurrency
    start = threading.Barrier(concurrency + 1)
    stop_at = [0.0]

    def worker(number: int) -> None:
        rng = random.Random(number)  # which certificate to ask about: not a secret
        with httpx.Client(verify=str(target.ca_bundle), timeout=30) as client:
            send(client, rng)  # connection open, TLS done: not measured
            start.wait()
            while time.monotonic() < stop_at[0]:
                began = time.perf_counter()
                try:
                    answer = send(client, rng)
                    ok = answer.status_code == 200
                except httpx.HTTPError:
                    ok = False
                latencies[number].append(time.perf_counter() - began)
                errors[number] += 0 if ok else 1

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(concurrency)]
    for thread in threads:
        thread.start()
    server_cpu, client_cpu = target.cpu_seconds(), client_cpu_seconds()
    stop_at[0] = time.monotonic() + duration
    began = time.monotonic()
    start.wait()
    for thread in threads:
        thread.join(duration + 60)
    elapsed = time.monotonic() - began
    server_cpu, client_cpu = target.cpu_seconds() - server_cpu, client_cpu_seconds() - client_cpu
    every = [seconds for mine in latencies for seconds in mine]
    count = len(every)
    return Row(
        kind,
        target.name,
        concurrency,
        count,
        sum(errors),
        count / elapsed,
        percentile(every, 50),
        percentile(every, 95),
        server_cpu * 1000 / count if count else None,
        client_cpu * 1000 / count if count else None,
    )


def fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--concurrency", default="1,8")
    parser.add_argument("--certificates", type=int, default=200)
    parser.add_argument("--revoked", type=int, default=20)
    parser.add_argument("--timeout", type=float, default=30.0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    levels = [int(word) for word in args.concurrency.split(",")]
    if not 1 <= args.revoked <= args.certificates:
        parser.error("--revoked must be between 1 and --certificates")
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="bench-status-") as tmp:
        workdir = Path(tmp)
        acmefleet = start_acmefleet(workdir, 1, None, [], 60.0)
        pebble = start_pebble(workdir, 1, "none", None)
        try:
            print(f"issuing {args.certificates} certificates ...", flush=True)
            issued = issue(acmefleet, args.certificates, args.revoked, args.timeout)
            kinds = requests_for(acmefleet.directory_url, issued)
            plan: list[tuple[Target, str, Request]] = [
                (pebble, "directory", lambda c, r: c.get(pebble.directory_url)),
                *((acmefleet, kind, send) for kind, send in kinds.items()),
            ]
            for concurrency in levels:
                for target, kind, send in plan:
                    row = measure(target, kind, send, concurrency, args.duration)
                    rows.append(row)
                    print(
                        f"{kind:<12} {target.name:<10} c{concurrency:<3} "
                        f"{row.per_second:8.1f}/s p95 {fmt(row.p95_ms, 1)} ms "
                        f"server CPU {fmt(row.server_cpu_ms_per_request)} ms/req "
                        f"errors {row.errors}",
                        flush=True,
                    )
        finally:
            acmefleet.stop()
            pebble.stop()
    header = (
        "| request | server | c | req/s | p50 ms | p95 ms | server CPU ms/req | client CPU ms/req |"
    )
    print("\n" + header + "\n|---|---|---|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row.kind} | {row.server} | {row.concurrency} | {row.per_second:.0f} | "
            f"{fmt(row.p50_ms, 1)} | {fmt(row.p95_ms, 1)} | "
            f"{fmt(row.server_cpu_ms_per_request)} | {fmt(row.client_cpu_ms_per_request)} |"
        )
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in rows], indent=2) + "\n")
    return 1 if any(row.errors for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
