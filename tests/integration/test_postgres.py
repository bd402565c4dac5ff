"""acmefleet on PostgreSQL: two replicas (each with two workers) sharing one database.

A private cluster of Debian's PostgreSQL (``tests/support/postgres.py``) holds the state; the
first replica is made by ``server init --database-url``, the second from a copy of its data
directory (CA keys, configuration), as the deployment does. Certbot and lego issue through
them; a protocol client sends each request to the other replica than the one before (the
nonce of one redeemed on the other); the EAB and finalize races run across replicas; and
the database is restarted under them: requests in flight get 503 with Retry-After, never a
hang, and the replicas go on by themselves once it is back.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import ssl
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from tests.support.acme_client import AcmeClient, b64url, eab_jws, make_csr
from tests.support.acmefleet_server import (
    ACMEFLEET,
    AcmefleetServer,
    running_acmefleet,
    running_replica,
)
from tests.support.clients import (
    CertbotDirs,
    LegoPaths,
    check_eab_bound,
    check_issued,
    crl_serials,
    fetch_crl,
    run_certbot,
    run_lego,
    san_names,
)
from tests.support.postgres import PostgresServer, postgres_available

pytestmark = pytest.mark.integration

DATABASE = "acmefleet"
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Cluster:
    postgres: PostgresServer
    first: AcmefleetServer
    second: AcmefleetServer

    @property
    def replicas(self) -> list[AcmefleetServer]:
        return [self.first, self.second]


class AlternatingTransport(httpx.BaseTransport):
    """Sends each request to the next replica's port in turn (URLs name the first's)."""

    def __init__(self, ports: list[int], verify: ssl.SSLContext) -> None:
        self._inner = httpx.HTTPTransport(verify=verify)
        self._ports = itertools.cycle(ports)
        self._lock = threading.Lock()
        self.sent: Counter[int] = Counter()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        with self._lock:
            port = next(self._ports)
            self.sent[port] += 1
        request.url = request.url.copy_with(port=port)
        return self._inner.handle_request(request)

    def close(self) -> None:
        self._inner.close()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    if not postgres_available():
        pytest.fail("PostgreSQL is needed (scripts/quickstart setup installs it, as root)")
    workdir = tmp_path_factory.mktemp("postgres-cluster")
    with PostgresServer() as postgres:
        url = postgres.create_database(DATABASE)
        with running_acmefleet(workdir, workers=2, database_url=url) as first:
            first.org("acme", "example.com", "10.20.0.0/16")
            with running_replica(first, workdir, workers=2) as second:
                yield Cluster(postgres, first, second)
                logs = first.log_text() + second.log_text()
    secrets = [*first.minted_secrets, postgres.password]
    assert not [s for s in secrets if s in logs], "a secret appeared in a server log"


def _client(cluster: Cluster, **kwargs: object) -> tuple[AcmeClient, AlternatingTransport]:
    verify = ssl.create_default_context(cafile=str(cluster.first.ca_bundle))
    transport = AlternatingTransport([r.port for r in cluster.replicas], verify)
    client = AcmeClient(
        cluster.first.directory("private"),
        cluster.first.ca_bundle,
        transport=transport,
        **kwargs,  # type: ignore[arg-type]
    )
    return client, transport


def test_the_state_lives_in_postgres_and_its_password_nowhere_else(cluster: Cluster) -> None:
    for replica in cluster.replicas:
        assert not (replica.data_dir / "acmefleet.db").exists()
        config = (replica.data_dir / "config.toml").read_text()
        assert "postgresql+psycopg://" in config and "passfile=" in config
        assert cluster.postgres.password not in config
        assert replica.proc is not None
        for pid in _tree(replica.proc.pid):
            argv = Path(f"/proc/{pid}/cmdline").read_bytes()
            environ = Path(f"/proc/{pid}/environ").read_bytes()
            assert cluster.postgres.password.encode() not in argv + environ
    tables = cluster.postgres.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'", DATABASE
    )
    assert tables[0][0] > 10
    # Both replicas' workers are connected, under the name they give (pg_stat_activity).
    names = cluster.postgres.execute(
        "SELECT count(DISTINCT pid) FROM pg_stat_activity WHERE application_name = 'acmefleet'"
    )
    assert names[0][0] >= 2


def _tree(pid: int) -> list[int]:
    found = [pid]
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat[stat.rindex(")") + 2 :].split()[1]) in found:
                found.append(int(entry))
    return found


def test_a_client_that_changes_replica_at_every_request_gets_its_certificate(
    cluster: Cluster,
) -> None:
    kid, hmac_key = cluster.first.mint_eab("acme", "private")
    client, transport = _client(cluster)
    with client:
        created = client.new_account((kid, hmac_key))
        assert created.status_code == 201, created.text
        pem = client.issue_certificate(["alt.example.com", "10.20.0.7"])
    # Directory, nonce, newAccount, newOrder, finalize, download at least, in turn: every
    # nonce was minted by the replica that did not take the request that used it.
    assert sum(transport.sent.values()) >= 6
    assert abs(transport.sent[cluster.first.port] - transport.sent[cluster.second.port]) <= 1
    check_issued(cluster.first, pem.encode(), ["alt.example.com", "10.20.0.7"], level="private")
    check_eab_bound(cluster.first, kid, created.headers["Location"].rsplit("/", 1)[1], "private")


def test_certbot_and_lego_issue_through_the_replicas(cluster: Cluster, tmp_path: Path) -> None:
    certbot_eab = cluster.first.mint_eab("acme", "private")
    kid, hmac_key = certbot_eab
    certbot = run_certbot(
        [
            "certonly",
            "--server",
            cluster.first.directory("private"),
            "--agree-tos",
            "-m",
            "ops@example.com",
            "--no-eff-email",
            "--eab-kid",
            kid,
            "--eab-hmac-key",
            hmac_key,
            "--standalone",
            "--http-01-port",
            str(cluster.first.http01_port),
            "--cert-name",
            "pg",
            "-d",
            "certbot-pg.example.com",
        ],
        ca_bundle=cluster.first.ca_bundle,
        base_dir=tmp_path / "certbot",
    ).check()
    pem = CertbotDirs(tmp_path / "certbot").fullchain("pg").read_bytes()
    check_issued(
        cluster.first, pem, ["certbot-pg.example.com"], level="private", context=certbot.describe()
    )
    # lego talks to the second replica: the directory it fetches there names the address
    # both stand behind (the first's, in this test), as a load balancer's would.
    lego = run_lego(
        [
            "--http",
            "--http.port",
            f"127.0.0.1:{cluster.first.http01_port}",
            "-d",
            "lego-pg.example.com",
            "run",
        ],
        ca_bundle=cluster.second.ca_bundle,
        base_dir=tmp_path / "lego",
        directory=cluster.second.directory("private"),
        eab=cluster.first.mint_eab("acme", "private"),
    ).check()
    lego_pem = LegoPaths(tmp_path / "lego").certificate("lego-pg.example.com").read_bytes()
    check_issued(
        cluster.first, lego_pem, ["lego-pg.example.com"], level="private", context=lego.describe()
    )


def test_one_eab_sent_to_both_replicas_at_once_makes_one_account(cluster: Cluster) -> None:
    kid, hmac_key = cluster.first.mint_eab("acme", "private")
    accounts_before = cluster.first.count("accounts")
    clients = [_client(cluster)[0] for _ in range(8)]
    for client in clients:
        client.directory  # noqa: B018 - fetch it before the race, not during
        client.nonces.append(client.new_nonce())
    barrier = threading.Barrier(len(clients))
    statuses: list[int] = []

    def register(client: AcmeClient) -> None:
        eab = client.eab_jws(kid, hmac_key)
        barrier.wait()
        statuses.append(client.new_account(eab).status_code)

    threads = [threading.Thread(target=register, args=(c,)) for c in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    for client in clients:
        client.close()
    assert statuses.count(201) == 1, statuses
    assert all(s in (400, 401, 403) for s in statuses if s != 201), statuses
    assert cluster.first.count("accounts") == accounts_before + 1
    assert cluster.first.count("eab_credentials", kid=kid, hmac_key=None) == 1


def test_finalize_sent_to_both_replicas_at_once_signs_once(cluster: Cluster) -> None:
    kid, hmac_key = cluster.first.mint_eab("acme", "private")
    client, _ = _client(cluster)
    with client:
        assert client.new_account((kid, hmac_key)).status_code == 201
        created = client.new_order(["race.example.com"])
        assert created.status_code == 201, created.text
        order = created.json()
        assert order["status"] == "ready", order
        csr, _key = make_csr(["race.example.com"])
        nonces = [client.new_nonce() for _ in range(6)]
        barrier = threading.Barrier(len(nonces))
        answers: list[httpx.Response] = []

        def finalize(nonce: str) -> None:
            barrier.wait()
            answers.append(client.finalize(order, csr, nonce=nonce))

        threads = [threading.Thread(target=finalize, args=(n,)) for n in nonces]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        final = client.poll_order(created.headers["Location"])
    # One claims the order and signs; the others find it claimed: orderNotReady (403), or
    # 200 with the order already processing or valid. None is a 500.
    statuses = [a.status_code for a in answers]
    assert statuses.count(200) >= 1 and set(statuses) <= {200, 403}, statuses
    for answer in answers:
        if answer.status_code == 403:
            assert answer.json()["type"] == "urn:ietf:params:acme:error:orderNotReady"
    assert final["status"] == "valid", final
    order_id = created.headers["Location"].rsplit("/", 1)[1]
    assert cluster.first.count("certificates", order_id=order_id) == 1


def test_a_revocation_on_one_replica_is_in_the_next_crl_of_the_other(cluster: Cluster) -> None:
    """No replica serves a CRL that misses a revocation another one committed, even from the
    copy it built a moment before (each of its two workers has one)."""
    kid, hmac_key = cluster.first.mint_eab("acme", "private")
    with AcmeClient(cluster.first.directory("private"), cluster.first.ca_bundle) as client:
        assert client.new_account((kid, hmac_key)).status_code == 201
        pem = client.issue_certificate(["crl.example.com"])
        leaf = x509.load_pem_x509_certificates(pem.encode())[0]
        for _ in range(6):
            assert leaf.serial_number not in crl_serials(
                fetch_crl(cluster.second.pki_port, "private")
            )
        revoked = client.revoke(leaf.public_bytes(Encoding.DER), reason=4)
        assert revoked.status_code == 200, revoked.text
    for _ in range(6):
        assert leaf.serial_number in crl_serials(fetch_crl(cluster.second.pki_port, "private"))


def test_what_postgresql_cannot_store_is_refused_before_it_gets_there(cluster: Cluster) -> None:
    """SQLite took a NUL or an over-long value where PostgreSQL raises (a 500 with a trace,
    before any signature was checked): each is a 400 malformed, the database unchanged."""
    client, _ = _client(cluster)
    with client:
        kid, hmac_key = cluster.first.mint_eab("acme", "private")
        assert client.new_account((kid, hmac_key)).status_code == 201
        assert client.kid is not None
        before = cluster.first.snapshot()
        order = {"identifiers": [{"type": "dns", "value": "nul.example.com"}]}
        prefix = client.kid.rsplit("/", 1)[0]
        for bad_kid in (client.kid + "\x00", f"{prefix}/\x00", f"{prefix}/{'a' * 300}"):
            response = client.post(
                client.url_for("newOrder"), order, protected_overrides={"kid": bad_kid}
            )
            assert response.status_code in (400, 401, 403), (bad_kid, response.text)
        with AcmeClient(cluster.first.directory("private"), cluster.first.ca_bundle) as other:
            for eab_kid in ("kid\x00", "k" * 300):
                binding = eab_jws(
                    eab_kid, b64url(b"k" * 32), other.url_for("newAccount"), other.key.jwk
                )
                refused = other.new_account(extra={"externalAccountBinding": binding})
                assert refused.status_code == 400, (eab_kid, refused.text)
                assert refused.json()["type"] == "urn:ietf:params:acme:error:malformed"
        # Only the used-nonce ledger and the rate counters moved (snapshot leaves them out).
        assert cluster.first.snapshot() == before
    for replica in cluster.replicas:
        assert "Traceback" not in replica.log_text()


def _health(replica: AcmefleetServer) -> httpx.Response:
    return httpx.get(
        f"https://localhost:{replica.port}/health",
        verify=ssl.create_default_context(cafile=str(replica.ca_bundle)),
        timeout=20,
    )


def test_a_database_restart_answers_503_with_retry_after_then_heals(cluster: Cluster) -> None:
    kid, hmac_key = cluster.first.mint_eab("acme", "private")
    client, _ = _client(cluster, timeout=20.0)
    with client:
        assert client.new_account((kid, hmac_key)).status_code == 201
        cluster.postgres.stop()
        try:
            started = time.monotonic()
            down = [client.new_order(["down.example.com"]) for _ in range(4)]
            elapsed = time.monotonic() - started
            health = [_health(replica) for replica in cluster.replicas]
        finally:
            cluster.postgres.restart()
        # A balancer's health check takes the replicas out while they cannot reach it.
        assert [h.status_code for h in health] == [503, 503], [h.text for h in health]
        assert all(h.json()["database"] == "unavailable" for h in health)
        for response in down:
            assert response.status_code == 503, response.text
            assert response.headers["Retry-After"] == "5"
            problem = response.json()
            assert problem["type"] == "urn:ietf:params:acme:error:serverInternal", problem
            assert "Traceback" not in response.text
        # Each refusal came from a connection attempt refused at once, not from a timeout.
        assert elapsed < 4 * 5, elapsed
        # The replicas reconnect by themselves: the same client, no restart of anything.
        pem = client.issue_certificate(["after-restart.example.com"])
    leaf = x509.load_pem_x509_certificates(pem.encode())[0]
    assert san_names(leaf) == {"after-restart.example.com"}
    for replica in cluster.replicas:
        assert _health(replica).json() == {"status": "ok", "database": "ok"}
        assert "Traceback" not in replica.log_text()


def test_replicas_migrating_an_empty_database_at_once_migrate_it_once(
    cluster: Cluster, tmp_path: Path
) -> None:
    """Two ``server migrate`` on a database with no schema yet: one migrates, the other
    waits on the migration lock and finds nothing to do (no duplicate-table failure)."""
    url = cluster.postgres.create_database("fresh")
    copies = []
    for n in range(2):
        copy = tmp_path / f"replica-{n}"
        shutil.copytree(cluster.first.data_dir, copy)
        config = copy / "config.toml"
        config.write_text(config.read_text().replace(cluster.postgres.url(DATABASE), url))
        copies.append(copy)
    runs = [
        subprocess.Popen(
            [ACMEFLEET, "server", "migrate", "--data-dir", str(copy)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for copy in copies
    ]
    outputs = sorted(run.communicate(timeout=120)[0].decode() for run in runs)
    assert [run.returncode for run in runs] == [0, 0], outputs
    assert outputs[0].startswith("migrated the database from nothing to "), outputs
    assert outputs[1].startswith("the database is at the newest schema"), outputs
    again = subprocess.run(
        [ACMEFLEET, "server", "migrate", "--data-dir", str(copies[0])],
        capture_output=True,
        text=True,
        check=True,
    )
    assert again.stdout.startswith("the database is at the newest schema")


def test_init_refuses_a_database_that_already_holds_acmefleet(
    cluster: Cluster, tmp_path: Path
) -> None:
    done = subprocess.run(
        [
            ACMEFLEET,
            "server",
            "init",
            "--data-dir",
            str(tmp_path / "second-init"),
            "--database-url",
            cluster.postgres.url(DATABASE),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode != 0
    assert "already holds an acmefleet schema" in done.stderr
    assert not (tmp_path / "second-init").exists()


def test_the_issuance_benchmark_runs_replicas_on_postgresql(tmp_path: Path) -> None:
    """benchmarks/bench_issuance.py --database postgresql --replicas 2, in short: clients
    pinned to each replica in turn issue without an error, and the server CPU it reports
    includes the database's (correctness only; the figures are in the README)."""
    report_file = tmp_path / "bench.json"
    bench = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_issuance.py"
    run = subprocess.run(
        [
            sys.executable,
            str(bench),
            "--only",
            "acmefleet",
            "--database",
            "postgresql",
            "--replicas",
            "2",
            "--concurrency",
            "2",
            "--duration",
            "2",
            "--workdir",
            str(tmp_path / "work"),
            "--json",
            str(report_file),
        ],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    report = json.loads(report_file.read_text())
    assert report["settings"]["database"] == "postgresql"
    assert report["settings"]["replicas"] == 2
    [result] = report["results"]
    assert result["issued"] > 0 and result["errors"] == 0 and result["hangs"] == 0, result
    assert result["server_cpu_ms_per_cert"] > 0
    # Each replica answered its pinned client, and logged no error.
    by_port = report["requests_by_replica_port"]
    assert len(by_port) == 2 and min(by_port.values()) > 0, by_port
    for log in ("server.log", "server-1.log"):
        text = (tmp_path / "work" / "acmefleet" / log).read_text()
        assert "Traceback" not in text, text[-2000:]


def test_the_database_roles_password_helper_sets_a_verifier_only_when_needed(
    cluster: Cluster,
) -> None:
    """roles/acme_database/files/role_password.py against the real server: the password on
    standard input becomes a SCRAM verifier PostgreSQL accepts at login; the same password
    again is "unchanged", another one "changed"; --check changes nothing."""
    postgres = cluster.postgres
    script = ROOT / "roles" / "acme_database" / "files" / "role_password.py"
    env = {
        **os.environ,
        "PGHOST": "127.0.0.1",
        "PGPORT": str(postgres.port),
        "PGUSER": "acmefleet",
        "PGPASSFILE": str(postgres.passfile),
    }

    def helper(password: str, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(script), *args],
            input=password + "\n",
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=False,
        )

    def helper_run(password: str, *flags: str) -> str:
        done = helper(password, "fleet_role", *flags)
        assert done.returncode == 0, done.stderr
        assert password not in done.stdout + done.stderr
        return done.stdout.strip()

    def logs_in(password: str) -> bool:
        conninfo = f"host=127.0.0.1 port={postgres.port} dbname=postgres user=fleet_role"
        try:
            with psycopg.connect(conninfo, password=password, connect_timeout=5):
                return True
        except psycopg.OperationalError:
            return False

    first, second = "a" * 8 + os.urandom(12).hex(), "b" * 8 + os.urandom(12).hex()
    try:
        assert helper_run(first, "--check") == "created"
        assert not postgres.execute("SELECT 1 FROM pg_roles WHERE rolname = 'fleet_role'")
        assert helper_run(first) == "created" and logs_in(first)
        stored = postgres.execute("SELECT rolpassword FROM pg_authid WHERE rolname = 'fleet_role'")
        assert str(stored[0][0]).startswith("SCRAM-SHA-256$4096:")
        assert helper_run(first) == "unchanged"
        assert helper_run(second, "--check") == "changed" and logs_in(first)
        assert helper_run(second) == "changed" and logs_in(second) and not logs_in(first)
        refused = helper(second, "fleet_role; drop")
        assert refused.returncode != 0 and "not a role name" in refused.stderr
    finally:
        postgres.execute("DROP ROLE IF EXISTS fleet_role")
