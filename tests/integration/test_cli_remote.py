"""The admin CLI in remote mode (``--url``: the REST API) against a real server, beside local mode.

One server for the module. Remote runs are the real ``acmefleet`` executable (token in a 0600
file, a config file or the environment; never on the command line), several at a time. Local
runs (``--data-dir`` on the same server's data directory) go through the same ``main`` in this
process: the comparison needs many of them, and each executable start costs half a second of
imports (``test_cli.py`` covers the executable in local mode, and one run here does too).
Every read command must print the same JSON, and the same human output, in both modes.
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from acmefleet.cli import main
from acmefleet.clock import SystemClock
from acmefleet.console import delegations, inventory, tokens
from acmefleet.store import certificates as cert_store
from acmefleet.store import orgs as org_store
from tests.support.acme_client import AcmeClient
from tests.support.acmefleet_server import ACMEFLEET, AcmefleetServer

pytestmark = pytest.mark.integration

Result = subprocess.CompletedProcess[str]
WRONG_TOKEN = "acmefleet_00000000deadbeef_" + "W" * 43
SCRUBBED_ENV = ("XDG_CONFIG_HOME", "SSL_CERT_FILE", "SSL_CERT_DIR", "NO_PROXY", "no_proxy")
ISO_STAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d")


def _base_env(home: Path) -> dict[str, str]:
    """No stray settings: no ACMEFLEET_*, proxies, CA overrides; an empty HOME."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("ACMEFLEET_") and "proxy" not in k.lower() and k not in SCRUBBED_ENV
    }
    env["HOME"] = str(home)
    return env


@dataclass
class World:
    server: AcmefleetServer
    home: Path
    work: Path
    admin_token: str
    auditor_token: str
    admin_file: Path
    auditor_file: Path
    account: str
    certs: dict[str, str]
    chains: dict[str, str]
    domain_id: int
    unused_kid: str
    secrets: list[str] = field(default_factory=list)

    # -- running the CLI ------------------------------------------------------------------

    def env(self, **extra: str) -> dict[str, str]:
        return {**_base_env(self.home), **extra}

    def run(self, args: Sequence[str], env: dict[str, str] | None = None) -> Result:
        """The real executable."""
        return subprocess.run(
            [ACMEFLEET, *args],
            capture_output=True,
            text=True,
            timeout=60,
            env=env or self.env(),
            check=False,
        )

    def run_all(
        self, commands: Sequence[Sequence[str]], env: dict[str, str] | None = None
    ) -> list[Result]:
        with ThreadPoolExecutor(max_workers=4) as pool:
            return list(pool.map(lambda args: self.run(args, env), commands))

    def remote(self, *args: str, token_file: Path | None = None) -> tuple[str, ...]:
        token = str(token_file or self.admin_file)
        connection = ("--url", self.server.base_url, "--token-file", token)
        return ("admin", *opts(args, *connection, "--ca-bundle", str(self.server.ca_bundle)))

    def local(self, *args: str, code: int = 0) -> str:
        """Local mode through ``main`` in this process; its stdout."""
        result = CliRunner().invoke(
            main,
            ["admin", *opts(args, "--data-dir", str(self.server.data_dir))],
            env={name: None for name in os.environ if name.startswith("ACMEFLEET_")},
            catch_exceptions=False,
        )
        assert result.exit_code == code, (args, result.stdout, result.stderr)
        if code:
            assert one_line_error(result.stderr)
        return result.stdout

    def local_json(self, *args: str) -> Any:
        return json.loads(self.local(*opts(args, "--json")))

    def ok(self, args: Sequence[str], env: dict[str, str] | None = None) -> Any:
        return ok_json(self.run(args, env))


def opts(args: Sequence[str], *extra: str) -> tuple[str, ...]:
    """``args`` with ``extra`` options added before any ``--`` (ids may start with '-')."""
    if "--" in args:
        cut = list(args).index("--")
        return (*args[:cut], *extra, *args[cut:])
    return (*args, *extra)


def one_line_error(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    assert "Traceback" not in stderr
    return lines[0]


def ok_json(result: Result) -> Any:
    assert result.returncode == 0, (result.args, result.stdout, result.stderr)
    assert result.stderr == "", result.stderr
    return json.loads(result.stdout)


def fails(result: Result, *fragments: str, code: int = 1) -> str:
    assert result.returncode == code, (result.args, result.returncode, result.stdout)
    line = one_line_error(result.stderr)
    for fragment in fragments:
        assert fragment in line, line
    return line


def secret_file(path: Path, content: str) -> Path:
    path.write_text(content + "\n")
    path.chmod(0o600)
    return path


def make_token(server: AcmefleetServer, role: str, name: str) -> str:
    with server.db() as db, db.write() as conn:
        token, _ = tokens.create(conn, name=name, role=role, actor="test", now=SystemClock().now())
    return token


def new_account(server: AcmefleetServer) -> AcmeClient:
    acme = AcmeClient(server.directory("private"), server.ca_bundle)
    created = acme.new_account(server.mint_eab("acme", "private"), contact=["mailto:t@example.com"])
    assert created.status_code == 201, created.text
    return acme


def account_id(acme: AcmeClient) -> str:
    assert acme.kid is not None
    return acme.kid.rsplit("/", 1)[-1]


def domain_id(server: AcmefleetServer, org: str, name: str) -> int:
    with server.db() as db, db.read() as conn:
        found_org = org_store.find_org(conn, org)
        assert found_org is not None
        found = org_store.find_domain(conn, found_org.id, name)
        assert found is not None
        return found.id


def add_domain(server: AcmefleetServer, name: str) -> int:
    server.add_domain("acme", name)
    return domain_id(server, "acme", name)


@pytest.fixture(scope="module")
def world(acmefleet: AcmefleetServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """The shared server (organisation ``acme``: example.com, 10.20.0.0/16), plus console
    tokens, an ACME account with four certificates (``two`` revoked), a delegation of
    example.com to the account and an unused EAB credential."""
    server = acmefleet
    work = tmp_path_factory.mktemp("cli-remote")
    home = work / "home"
    home.mkdir()
    admin_token = make_token(server, "admin", "cli-admin")
    auditor_token = make_token(server, "auditor", "cli-auditor")
    with new_account(server) as acme:
        chains = {n: acme.issue_certificate([f"{n}.example.com"]) for n in ("one", "two", "three")}
        chains["four"] = acme.issue_certificate(["four.example.com"])
        account = account_id(acme)
    now = SystemClock().now()
    example = domain_id(server, "acme", "example.com")
    with server.db() as db, db.write() as conn:
        by_name = {c.names[0].split(".")[0]: c.id for c in cert_store.list_certificates(conn)}
        inventory.revoke_certificate(conn, by_name["two"], reason=1, actor="test", now=now)
    with server.db() as db, db.write() as conn:
        delegations.delegate(conn, example, account_id=account, eab_kid=None, actor="test", now=now)
    unused_kid, _ = server.mint_eab("acme", "private")
    found = World(
        server=server,
        home=home,
        work=work,
        admin_token=admin_token,
        auditor_token=auditor_token,
        admin_file=secret_file(work / "admin.token", admin_token),
        auditor_file=secret_file(work / "auditor.token", auditor_token),
        account=account,
        certs=by_name,
        chains=chains,
        domain_id=example,
        unused_kid=unused_kid,
    )
    yield found
    log = server.log_text()
    for secret in (admin_token, auditor_token, WRONG_TOKEN, *found.secrets):
        assert secret not in log, "a console token reached the server log"


class Responder:
    """A web server on the port the server's http-01 validator connects to."""

    def __init__(self, port: int) -> None:
        self.answers: dict[str, str] = {}
        answers = self.answers

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = answers.get(self.path.rsplit("/", 1)[-1])
                self.send_response(200 if body else 404)
                self.end_headers()
                if body:
                    self.wfile.write(body.encode())

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


def assert_table(output: str, *expected: str) -> None:
    """Aligned columns under an upper-case header, short dates, the expected cells."""
    lines = output.rstrip("\n").splitlines()
    header = lines[0]
    assert header == header.upper(), header
    starts = [m.start() for m in re.finditer(r"(?<=  )\S", header)]
    assert starts, header
    for line in lines[1:]:
        for start in starts:
            assert line[start - 2 : start] == "  ", (header, line)
    assert not ISO_STAMP.search(output) or "ACTION" in header, output
    for text in expected:
        assert text in output, (text, output)


# ---------------------------------------------------------------------------------- reads


def read_commands(w: World) -> list[tuple[str, ...]]:
    example, one = str(w.domain_id), w.certs["one"]
    return [
        ("org", "list"),
        ("org", "show", "acme"),
        ("org", "show", "1"),
        ("domain", "list", "acme"),
        ("domain", "show", example),
        ("domain", "delegations", example),
        ("endpoint", "list"),
        ("eab", "list"),
        ("eab", "show", w.unused_kid),
        ("account", "list"),
        ("account", "show", "--", w.account),
        ("cert", "list"),
        ("cert", "list", "--org", "acme", "--endpoint", "private", "--name", "one.", "--valid"),
        ("cert", "list", "--revoked"),
        ("cert", "list", "--expiring-within", "3650"),
        ("cert", "show", "--", one),
        ("cert", "download", "--", one),
        ("audit", "--limit", "50"),
    ]


TABLES = {
    ("org", "list"): ("acme", "active"),
    ("domain", "list"): ("example.com", "10.20.0.0/16", "VALIDATED"),
    ("domain", "delegations"): ("ACCOUNT", "EAB KID"),
    ("endpoint", "list"): ("private-server*", "/acme/public/directory"),
    ("eab", "list"): ("unused", "EXPIRES"),
    ("account", "list"): ("mailto:t@example.com", "EAB KID"),
    ("cert", "list"): ("NOT AFTER", "DAYS LEFT"),
    ("audit",): ("ACTOR", "ACTION", "eab.mint"),
}


def test_every_read_prints_the_same_in_both_modes(world: World) -> None:
    """--json in both modes for every read; human output in both modes for every table and
    two records (the same renderers draw the others from the same JSON)."""
    commands = read_commands(world)
    tables = {next(c for c in commands if c[: len(k)] == k): cells for k, cells in TABLES.items()}
    records = [c for c in commands if c[1:2] == ("show",) and c[0] in ("cert", "eab")]
    human_commands = [*tables, *records]
    runs = world.run_all(
        [world.remote(*opts(c, "--json")) for c in commands]
        + [world.remote(*c) for c in human_commands]
    )
    for command, remote_json in zip(commands, runs, strict=False):
        assert ok_json(remote_json) == world.local_json(*command), command
    for command, remote_human in zip(human_commands, runs[len(commands) :], strict=True):
        assert remote_human.returncode == 0 and remote_human.stderr == "", remote_human
        assert remote_human.stdout == world.local(*command), command
        if command in tables:
            assert_table(remote_human.stdout, *tables[command])
        else:
            assert not ISO_STAMP.search(remote_human.stdout), remote_human.stdout
    found = {c: ok_json(r) for c, r in zip(commands, runs, strict=False)}
    assert "acme" in {o["name"] for o in found["org", "list"]}
    assert found["org", "show", "acme"] == found["org", "show", "1"]
    assert {"example.com", "10.20.0.0/16"} <= {d["name"] for d in found["domain", "list", "acme"]}
    assert found["domain", "delegations", str(world.domain_id)][0]["account_id"] == world.account
    assert {e["name"] for e in found["endpoint", "list"]} == {"private", "public"}
    assert [c["id"] for c in found[commands[12]]] == [world.certs["one"]]
    revoked = {c["id"] for c in found["cert", "list", "--revoked"]}
    assert world.certs["two"] in revoked and world.certs["one"] not in revoked
    assert found["cert", "download", "--", world.certs["one"]]["pem"] == world.chains["one"]
    assert "hmac_key" not in json.dumps(found["eab", "list"])
    assert_table(world.local("token", "list"), "cli-admin", "auditor")
    record = world.local("cert", "show", "--", world.certs["two"])
    assert re.search(r"^revoked: +\d{4}-\d\d-\d\d \d\d:\d\d$", record, re.M), record
    assert re.search(r"^revocation reason: +1$", record, re.M), record
    # The executable in local mode prints the same too.
    local_run = world.run(
        ["admin", "org", "list", "--json", "--data-dir", str(world.server.data_dir)]
    )
    assert ok_json(local_run) == found["org", "list"]


# --------------------------------------------------------------------------------- writes


def test_organisation_and_domain_writes(world: World) -> None:
    w = world
    made = w.ok(w.remote("org", "create", "Remote Org", "--json"))
    twin = w.local_json("org", "create", "Local Org")
    assert set(made) == set(twin) == {"id", "name", "status", "created"}
    assert (made["name"], made["status"], twin["status"]) == ("Remote Org", "active", "active")
    r_id, l_id = str(made["id"]), str(twin["id"])

    first = w.run_all(
        [
            w.remote(
                "domain",
                "add",
                "Remote Org",
                "r.example",
                "--validated",
                "--json",
                "--justification",
                "seen in DNS",
            ),
            w.remote("domain", "add", r_id, "r2.example", "--json"),
            w.remote("domain", "add", "Remote Org", "x.example", "--validated"),
            w.remote("org", "disable", "Remote Org", "--json"),
        ]
    )
    validated, plain = ok_json(first[0]), ok_json(first[1])
    fails(first[2], "--validated needs --justification", code=2)
    assert ok_json(first[3])["status"] == "disabled"
    # The old local form: --validated without a justification.
    local_validated = w.local_json("domain", "add", "Local Org", "l.example", "--validated")
    local_plain = w.local_json("domain", "add", l_id, "l2.example")
    assert w.local_json("org", "disable", l_id)["status"] == "disabled"
    assert set(validated) == set(local_validated) == set(plain) == set(local_plain)
    assert validated["validated"] and local_validated["validated"]
    assert validated["validated_by"] == "token:cli-admin"
    assert local_validated["validated_by"].startswith("cli:")
    assert not plain["validated"] and not local_plain["validated"]

    second = w.run_all(
        [
            w.remote(
                "domain",
                "validate",
                str(plain["id"]),
                "--manual",
                "--days",
                "30",
                "--json",
                "--justification",
                "contract 42",
            ),
            w.remote("org", "enable", r_id, "--json"),
            w.remote("domain", "validate", str(plain["id"]), "--http01", "--manual"),
        ]
    )
    manual = ok_json(second[0])
    assert manual["validated"] and manual["validation_method"] == "manual"
    assert manual["validated_until"] < validated["validated_until"]
    assert ok_json(second[1])["status"] == "active"
    fails(second[2], "one of --manual, --http01 or --dns", code=2)
    local_manual = w.local_json(
        "domain", "validate", str(local_plain["id"]), "--manual", "--justification", "contract 43"
    )
    assert local_manual["validation_method"] == "manual"

    unvalidated = w.ok(w.remote("domain", "unvalidate", str(plain["id"]), "--json"))
    assert not unvalidated["validated"] and unvalidated["validated_until"] is None
    assert not w.local_json("domain", "unvalidate", str(local_plain["id"]))["validated"]
    removed = w.ok(w.remote("domain", "remove", str(plain["id"]), "--json"))
    assert removed == unvalidated
    assert w.local_json("domain", "remove", str(local_plain["id"]))["name"] == "l2.example"

    listed = w.ok(w.remote("domain", "list", "Remote Org", "--json"))
    assert [d["name"] for d in listed] == ["r.example"]
    assert listed == w.local_json("domain", "list", "Remote Org")
    assert [d["name"] for d in w.local_json("domain", "list", "Local Org")] == ["l.example"]
    events = w.local_json("audit", "--limit", "30")
    remote_events = [e for e in events if e["actor"] == "token:cli-admin"]
    assert {"org.create", "domain.add", "domain.validate", "domain.remove"} <= {
        e["action"] for e in remote_events
    }
    assert {e["source"] for e in remote_events if e["action"] == "org.create"} == {"127.0.0.1"}


def test_http01_check_in_both_modes(world: World) -> None:
    w = world
    remote_id = add_domain(w.server, "web1.example.net")
    local_id = add_domain(w.server, "web2.example.net")
    human = w.run(w.remote("domain", "validate", str(remote_id), "--http01"))
    assert human.returncode == 0, human.stderr
    fields = dict(re.findall(r"^(URL|content|token): +(\S+)$", human.stdout, re.M))
    assert fields["URL"] == (
        f"http://web1.example.net:{w.server.http01_port}"
        f"/.well-known/acme-challenge/{fields['token']}"
    )
    assert f"acmefleet admin domain check {remote_id}" in human.stdout
    pending = w.local_json("domain", "validate", str(local_id), "--http01")
    assert set(pending) == {
        "domain", "method", "token", "url", "expected_content", "scope", "expires"
    }  # fmt: skip
    responder = Responder(w.server.http01_port)
    try:
        fails(w.run(w.remote("domain", "check", str(remote_id))), "failed", "(HTTP 400)")
        responder.answers[fields["token"]] = fields["content"]
        responder.answers[pending["token"]] = pending["expected_content"]
        checked = w.ok(w.remote("domain", "check", str(remote_id), "--json"))
        local_checked = w.local_json("domain", "check", str(local_id))
    finally:
        responder.close()
    for done in (checked, local_checked):
        assert done["validated"] and done["validation_method"] == "http-01"
        assert done["validation_scope"] == "exact"
        assert not done["validation_in_progress"]


def test_validation_scope_in_both_modes(world: World) -> None:
    """A manual validation is exact unless --scope subdomains; http-01 is always exact."""
    w = world
    w.ok(w.remote("org", "create", "Scope Org", "--json"))
    add = ("domain", "add", "Scope Org")
    vouched = ("--validated", "--justification", "zone reviewed", "--scope", "subdomains")
    wide = w.ok(w.remote(*add, "wide.scope.example", *vouched, "--json"))
    narrow = w.local_json(*add, "narrow.scope.example", "--validated")
    assert (wide["validation_scope"], narrow["validation_scope"]) == ("subdomains", "exact")

    manual = ("--manual", "--justification", "re-checked")
    runs = w.run_all(
        [
            w.remote("domain", "validate", str(wide["id"]), *manual, "--json"),
            w.remote("domain", "validate", str(wide["id"]), "--http01", "--scope", "exact"),
            w.remote(*add, "x.scope.example", "--scope", "subdomains"),
        ]
    )
    assert ok_json(runs[0])["validation_scope"] == "exact", "the default is the narrow scope"
    fails(runs[1], "--scope go with --manual only", code=2)
    fails(runs[2], "--scope goes with --validated only", code=2)
    widened = w.local_json(
        "domain", "validate", str(narrow["id"]), *manual, "--scope", "subdomains"
    )
    assert widened["validation_scope"] == "subdomains"

    human = w.run(w.remote("domain", "show", str(narrow["id"])))
    assert re.search(r"^scope: +the name, its subdomains and wildcards$", human.stdout, re.M)
    assert human.stdout == w.local("domain", "show", str(narrow["id"]))
    listed = w.ok(w.remote("domain", "list", "Scope Org", "--json"))
    assert {d["name"]: d["validation_scope"] for d in listed} == {
        "narrow.scope.example": "subdomains",
        "wide.scope.example": "exact",
    }


def test_delegation_writes(world: World) -> None:
    w = world
    first, second = add_domain(w.server, "d1.example.org"), add_domain(w.server, "d2.example.org")
    made = w.ok(w.remote("domain", "delegate", str(first), "--account", w.account, "--json"))
    twin = w.local_json("domain", "delegate", str(second), "--eab-kid", w.unused_kid)
    assert set(made) == set(twin) == {"id", "domain_id", "account_id", "eab_kid", "created"}
    assert (made["account_id"], twin["eab_kid"]) == (w.account, w.unused_kid)
    runs = w.run_all(
        [
            w.remote("domain", "delegations", str(second), "--json"),
            w.remote("domain", "delegate", str(first), "--account", w.account),
            w.remote("domain", "delegate", str(first)),
        ]
    )
    assert ok_json(runs[0]) == [twin] == w.local_json("domain", "delegations", str(second))
    fails(runs[1], "exists already", "(HTTP 409)")
    fails(runs[2], "one of --account ID or --eab-kid KID", code=2)
    assert w.ok(w.remote("domain", "undelegate", str(made["id"]), "--json")) == {
        "id": made["id"],
        "removed": True,
    }
    assert w.local_json("domain", "undelegate", str(twin["id"])) == {
        "id": twin["id"],
        "removed": True,
    }
    fails(w.run(w.remote("domain", "undelegate", str(twin["id"]))), "(HTTP 404)")


def test_eab_writes(world: World) -> None:
    w = world
    runs = w.run_all(
        [
            w.remote("eab", "create", "--org", "acme", "--endpoint", "private", "--json"),
            w.remote("eab", "create", "--org", "1", "--endpoint", "public", "--days", "2"),
            w.remote("eab", "create", "--org", "acme", "--endpoint", "nope"),
            w.remote("eab", "create", "--org", "Nobody", "--endpoint", "private"),
        ]
    )
    minted = ok_json(runs[0])
    key = re.search(r"^HMAC key: +(\S+)", runs[1].stdout, re.M)
    assert runs[1].returncode == 0 and key, runs[1].stdout
    fails(runs[2], "no endpoint", "(HTTP 404)")
    fails(runs[3], "no organisation 'Nobody'")
    local = w.local_json("eab", "create", "--org", "acme", "--endpoint", "private")
    w.server.minted_secrets.extend([minted["hmac_key"], key.group(1), local["hmac_key"]])
    expected = {"kid", "hmac_key", "directory", "ca_bundle", "expires", "endpoint"}
    assert set(minted) == set(local) == expected
    assert minted["ca_bundle"] == local["ca_bundle"] == str(w.server.ca_bundle.resolve())
    assert minted["directory"] == w.server.directory("private") == local["directory"]

    listing = w.run_all(
        [
            w.remote("eab", "list"),
            w.remote("eab", "list", "--json"),
            w.remote("eab", "revoke", minted["kid"], "--json"),
        ]
    )
    for run in listing[:2]:
        assert run.returncode == 0
        assert minted["hmac_key"] not in run.stdout and key.group(1) not in run.stdout
    revoked = ok_json(listing[2])
    assert (revoked["status"], revoked["org"]) == ("revoked", "acme")
    assert w.local_json("eab", "revoke", local["kid"])["status"] == "revoked"
    fails(w.run(w.remote("eab", "revoke", local["kid"])), "revoked", "(HTTP 409)")
    assert w.ok(w.remote("eab", "show", minted["kid"], "--json")) == w.local_json(
        "eab", "show", minted["kid"]
    )


def test_account_and_certificate_writes(world: World, tmp_path: Path) -> None:
    w = world
    with new_account(w.server) as first, new_account(w.server) as second:
        ids = account_id(first), account_id(second)
    runs = w.run_all(
        [
            w.remote("account", "deactivate", "--json", "--", ids[0]),
            w.remote("cert", "revoke", "--reason", "4", "--json", "--", w.certs["three"]),
            w.remote("cert", "download", "-o", str(tmp_path / "r.pem"), "--", w.certs["four"]),
            w.remote("cert", "revoke", "--reason", "2", "--", w.certs["one"]),
        ]
    )
    assert ok_json(runs[0])["status"] == "deactivated"
    revoked = ok_json(runs[1])
    assert revoked["revoked"] and revoked["revocation_reason"] == 4
    assert runs[2].returncode == 0 and (tmp_path / "r.pem").read_text() == w.chains["four"]
    fails(runs[3], "reason must be one of", "(HTTP 400)")
    assert w.local_json("account", "deactivate", "--", ids[1])["status"] == "deactivated"
    local = w.local_json("cert", "revoke", "--reason", "5", "--", w.certs["four"])
    assert set(local) == set(revoked) and local["revocation_reason"] == 5
    w.local("cert", "download", "-o", str(tmp_path / "l.pem"), "--", w.certs["four"])
    assert (tmp_path / "l.pem").read_text() == w.chains["four"]
    again = w.run_all(
        [
            w.remote("account", "deactivate", "--", ids[1]),
            w.remote("cert", "revoke", "--", w.certs["four"]),
            w.remote("cert", "list", "--revoked", "--json"),
        ]
    )
    fails(again[0], "already deactivated", "(HTTP 409)")
    fails(again[1], "already revoked", "(HTTP 409)")
    assert {w.certs["three"], w.certs["four"]} <= {c["id"] for c in ok_json(again[2])}


def test_tokens_are_local_only(world: World) -> None:
    w = world
    path = w.work / "made.token"
    made = w.local_json(
        "token", "create", "--name", "made-here", "--role", "auditor", "--output-file", str(path)
    )
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    secret = path.read_text().strip()
    w.secrets.append(secret)
    assert made["token_file"] == str(path.resolve()) and "token" not in made
    assert secret not in json.dumps(made)
    shown = w.local("token", "create", "--name", "shown", "--role", "admin")
    shown_secret = shown.strip().splitlines()[-1]
    w.secrets.append(shown_secret)
    assert shown_secret.startswith("acmefleet_") and shown.count(shown_secret) == 1
    listed = w.local("token", "list", "--json")
    assert secret not in listed and shown_secret not in listed
    assert {"made-here", "shown"} <= {t["name"] for t in json.loads(listed)}
    usable = w.run_all(
        [
            w.remote("org", "list", "--json", token_file=path),
            w.remote("token", "list"),
            ("admin", "token", "list", "--data-dir", str(w.server.data_dir), "--url", "https://x"),
        ]
    )
    assert "acme" in {o["name"] for o in ok_json(usable[0])}
    fails(usable[1], "data directory only", "--data-dir", code=2)
    fails(usable[2], "not both", code=2)
    assert w.local_json("token", "revoke", made["id"])["revoked"] is not None
    fails(w.run(w.remote("org", "list", token_file=path)), "(HTTP 401)")
    w.local("token", "revoke", made["id"], code=1)


# --------------------------------------------------------------------------------- errors


def test_auditor_reads_but_cannot_write(world: World) -> None:
    w = world
    before = w.server.snapshot()
    audit = w.auditor_file
    runs = w.run_all(
        [
            w.remote("org", "list", "--json", token_file=audit),
            w.remote("org", "create", "Sneaky", token_file=audit),
            w.remote("eab", "create", "--org", "acme", "--endpoint", "private", token_file=audit),
            w.remote("cert", "revoke", "--", w.certs["one"], token_file=audit),
        ]
    )
    assert ok_json(runs[0]) == w.local_json("org", "list")
    for run in runs[1:]:
        line = fails(run, "role auditor may only read (HTTP 403)")
        assert w.auditor_token not in line and not run.stdout
    assert w.server.snapshot() == before


def test_wrong_token_is_a_one_line_401(world: World) -> None:
    w = world
    wrong = secret_file(w.work / "wrong.token", WRONG_TOKEN)
    env = w.env(
        ACMEFLEET_URL=w.server.base_url,
        ACMEFLEET_TOKEN=WRONG_TOKEN,
        ACMEFLEET_CA_BUNDLE=str(w.server.ca_bundle),
    )
    runs = [
        w.run(w.remote("org", "list", token_file=wrong)),
        w.run(["admin", "eab", "list"], env),
    ]
    for run in runs:
        fails(run, "the token is unknown or revoked (HTTP 401)")
        assert WRONG_TOKEN not in run.stderr + run.stdout
        assert WRONG_TOKEN.split("_")[2] not in run.stderr
    garbled = secret_file(w.work / "garbled.token", "two words\x1b[31m")
    line = fails(w.run(w.remote("org", "list", token_file=garbled)), "not a valid token")
    assert "words" not in line


def test_unknown_ids_are_one_line_404s(world: World) -> None:
    w = world
    missing = "999999"
    commands = [
        ("org", "show", "Nobody"),
        ("domain", "show", missing),
        ("domain", "remove", missing),
        ("domain", "undelegate", missing),
        ("eab", "revoke", "no-such-kid"),
        ("account", "deactivate", "no-such-account"),
        ("cert", "download", "no-such-cert"),
        ("cert", "revoke", "../../organizations"),
    ]
    before = w.server.snapshot()
    for command, run in zip(commands, w.run_all([w.remote(*c) for c in commands]), strict=True):
        if command[-1] == "Nobody":
            fails(run, "no organisation 'Nobody'")
        elif command[-1].startswith(".."):  # one path segment: it cannot reach another route
            fails(run, "(HTTP 404)")
        else:
            fails(run, "no ", "(HTTP 404)")
        assert not run.stdout
    assert w.server.snapshot() == before


# ------------------------------------------------------------------ settings and usage


def test_config_file_and_environment(world: World) -> None:
    w = world
    url, bundle = w.server.base_url, str(w.server.ca_bundle)
    home = w.work / "configured-home"  # a HOME of its own: later tests expect none
    default = home / ".config" / "acmefleet"
    default.mkdir(parents=True, exist_ok=True)
    secret_file(default / "admin.token", w.admin_token)
    (default / "cli.toml").write_text(
        f'url = "{url}"\ntoken_file = "admin.token"\nca_bundle = "{bundle}"\n'
    )
    inline = w.work / "inline.toml"
    inline.write_text(f'url = "{url}"\ntoken = "{w.admin_token}"\nca_bundle = "{bundle}"\n')
    inline.chmod(0o600)
    exposed = w.work / "exposed.toml"
    exposed.write_text(inline.read_text())
    exposed.chmod(0o644)
    other_url = url.replace("localhost", "127.0.0.1")
    by_env = w.env(ACMEFLEET_URL=url, ACMEFLEET_TOKEN=w.admin_token, SSL_CERT_FILE=bundle)
    runs = [
        w.run(["admin", "org", "list", "--json"], w.env(HOME=str(home))),
        w.run(["admin", "org", "list", "--json"], w.env(ACMEFLEET_CLI_CONFIG=str(inline))),
        w.run(["admin", "org", "list"], w.env(ACMEFLEET_CLI_CONFIG=str(exposed))),
        w.run(
            ["admin", "org", "list", "--url", other_url],
            w.env(ACMEFLEET_CLI_CONFIG=str(inline)),
        ),
        w.run(
            ["admin", "eab", "create", "--org", "acme", "--endpoint", "private", "--json"], by_env
        ),
        w.run(
            ["admin", "org", "list"],
            w.env(ACMEFLEET_DATA_DIR=str(w.server.data_dir), ACMEFLEET_URL=url),
        ),
    ]
    expected = w.local_json("org", "list")
    assert ok_json(runs[0]) == ok_json(runs[1]) == expected
    line = fails(runs[2], "refusing to use", "0644", "chmod 600")
    assert w.admin_token not in runs[2].stderr and line
    fails(runs[3], "no API token for", code=2)  # the config's token goes to its own URL only
    minted = ok_json(runs[4])
    w.server.minted_secrets.append(minted["hmac_key"])
    assert minted["ca_bundle"] is None  # trusted through the system store (SSL_CERT_FILE)
    fails(runs[5], "not both", code=2)


def test_transport_errors(world: World) -> None:
    w = world
    token = ("--token-file", str(w.admin_file))
    runs = w.run_all(
        [
            ("admin", "org", "list", "--url", w.server.base_url, *token),
            ("admin", "org", "list", "--url", "https://127.0.0.1:1", *token),
        ]
    )
    fails(runs[0], "certificate verify failed", "--ca-bundle")  # TLS is verified
    fails(runs[1], "cannot connect to https://127.0.0.1:1")


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (("org", "list"), ("no server", "--data-dir", "--url")),
        (("org", "list", "--url", "https://h", "--data-dir", "d"), ("not both",)),
        (("org", "create", "--url", "https://h"), ("Missing argument 'NAME'",)),
        (("org", "list", "--url", "http://acme.example.net"), ("plain http",)),
        (("org", "list", "--url", "https://h"), ("no API token for https://h",)),
        (("domain", "show", "0", "--url", "https://h"), ("0 is not in the range",)),
        (("cert", "show", "-Qx", "--url", "https://h"), ("goes after '--'", "-- -Qx")),
        (
            ("domain", "validate", "1", "--url", "https://h"),
            ("one of --manual, --http01 or --dns",),
        ),
        (
            ("domain", "validate", "1", "--http01", "--scope", "subdomains", "--url", "https://h"),
            ("--scope go with --manual only",),
        ),
        (
            ("domain", "validate", "1", "--manual", "--scope", "all", "--url", "https://h"),
            ("'all' is not one of 'exact', 'subdomains'",),
        ),
        (
            ("domain", "add", "O", "a.example", "--scope", "exact", "--url", "https://h"),
            ("--scope goes with --validated only",),
        ),
    ],
)
def test_usage_errors(tmp_path: Path, args: tuple[str, ...], fragments: tuple[str, ...]) -> None:
    """Exit 2 and one line, before anything is sent (in-process: no server involved)."""
    result = CliRunner().invoke(
        main,
        ["admin", *args],
        env={
            **{n: None for n in os.environ if n.startswith("ACMEFLEET_")},
            "HOME": str(tmp_path),
            "XDG_CONFIG_HOME": None,
        },
        catch_exceptions=False,
    )
    assert result.exit_code == 2, (result.stdout, result.stderr)
    line = one_line_error(result.stderr)
    for fragment in fragments:
        assert fragment in line, line
