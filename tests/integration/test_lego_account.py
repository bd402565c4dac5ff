"""The module acmefleet.fleet.lego_account against a running acmefleet, then Debian's lego.

The module registers the account (EAB) through real ``ansible-playbook`` on localhost, with
the collection on its path; lego 4.9.1 then runs (``run``, then ``renew``) with ``--eab`` alone
(no ``--kid``/``--hmac``) and must use that account: same account URL, the certificates held
by it, no new account. The role's certificate step (``state.yml`` + ``certificate.yml`` of
lego_nginx) runs the same way on this machine: check mode, converge, converged again.
Also: a second run changes nothing; check mode on a fresh path writes and sends nothing; a
wrong HMAC key fails with the server's ``unauthorized`` problem and leaves no file.

Where the HMAC key must not be, checked for real while the module runs:

- every process's ``/proc/PID/cmdline`` and ``/proc/PID/environ``, sampled every few
  milliseconds by a thread for the whole ``ansible-playbook`` run (the credential reaches
  ansible in an extra-vars file, so not even the controller's command line holds it; the
  sampler must have seen the module's own process);
- the argv and environment of each ``openssl`` the module starts: a wrapper first on PATH
  records them, then execs the real binary (and must have been called for ``ecparam``,
  ``ec`` and ``dgst``);
- the ``-vvv`` output of the run, lego's files, the wrapper's record.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from acmefleet.jose.b64 import b64url_encode
from acmefleet.jose.keys import thumbprint
from tests.support.acmefleet_server import AcmefleetServer
from tests.support.ansible_cli import ansible
from tests.support.clients import (
    CONTACT,
    certificate_row,
    check_eab_bound,
    check_issued,
    run_lego,
    serial_hex,
)
from tests.support.secret_watch import watching

pytestmark = pytest.mark.integration

NAMES = ["la1.example.com", "la1.internal.example.com"]
UNAUTHORIZED = "urn:ietf:params:acme:error:unauthorized"
OPENSSL = shutil.which("openssl") or "/usr/bin/openssl"
PLAYBOOK = """---
- name: Register lego's account
  hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: Register with the EAB credential
      acmefleet.fleet.lego_account:
        path: "{{ la.path }}"
        server: "{{ la.server }}"
        email: "{{ la.email }}"
        eab_kid: "{{ la.eab_kid }}"
        eab_hmac_key: "{{ la.eab_hmac_key }}"
        ca_file: "{{ la.ca_file }}"
"""


# ------------------------------------------------------------------ running the module


@dataclass
class ModuleRun:
    proc: subprocess.CompletedProcess[str]
    result: dict[str, Any] | None  # the task's result (json callback), None with -vvv

    @property
    def output(self) -> str:
        return self.proc.stdout + self.proc.stderr


def run_module(
    workdir: Path,
    server: AcmefleetServer,
    path: Path,
    kid: str,
    hmac_key: str,
    *options: str,
    env: dict[str, str] | None = None,
) -> ModuleRun:
    """``ansible-playbook`` with the credential in a 0600 extra-vars file, not on argv.

    Without ``-vvv`` the json callback gives the task's result.
    """
    playbook = workdir / "lego_account.yml"
    playbook.write_text(PLAYBOOK)
    variables = workdir / f"vars-{secrets.token_hex(4)}.json"
    variables.touch(0o600)
    la = {
        "path": str(path),
        "server": server.directory("private"),
        "email": CONTACT,
        "eab_kid": kid,
        "eab_hmac_key": hmac_key,
        "ca_file": str(server.ca_bundle),
    }
    variables.write_text(json.dumps({"la": la}))
    verbose = "-vvv" in options
    environment = {"NO_PROXY": "localhost,127.0.0.1", "no_proxy": "localhost,127.0.0.1"}
    if not verbose:
        environment["ANSIBLE_STDOUT_CALLBACK"] = "ansible.builtin.json"
    proc = ansible(
        "ansible-playbook",
        "-i",
        "localhost,",
        "-e",
        f"@{variables}",
        # Debian's python3 as on a host, not this virtualenv with its packages.
        "-e",
        "ansible_python_interpreter=/usr/bin/python3",
        *options,
        str(playbook),
        env={**environment, **(env or {})},
    )
    variables.unlink()
    result = None
    if not verbose:
        document = json.loads(proc.stdout)
        result = document["plays"][0]["tasks"][0]["hosts"]["localhost"]
    return ModuleRun(proc, result)


def files_under(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*")) if path.exists() else []


def key_thumbprint(key_file: Path) -> str:
    key = serialization.load_pem_private_key(key_file.read_bytes(), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1"
    numbers = key.public_key().public_numbers()
    return thumbprint(
        {
            "crv": "P-256",
            "kty": "EC",
            "x": b64url_encode(numbers.x.to_bytes(32, "big")),
            "y": b64url_encode(numbers.y.to_bytes(32, "big")),
        }
    )


# ------------------------------------------------------------------ watching for the key

# The module's process: the watch must have run while it was alive (tests/support/secret_watch).
MODULE_MARKER = "AnsiballZ_lego_account"


def openssl_wrapper(directory: Path) -> tuple[Path, Path]:
    """``openssl`` that appends its argv and environment to a record, then runs the real one."""
    directory.mkdir()
    record = directory / "calls.log"
    wrapper = directory / "openssl"
    wrapper.write_text(
        "#!/bin/sh\n"
        f"{{ printf 'argv:'; printf ' %s' \"$@\"; printf '\\n'; env | sed 's/^/env: /'; }}"
        f" >> '{record}'\n"
        f"exec '{OPENSSL}' \"$@\"\n"
    )
    wrapper.chmod(0o755)
    return directory, record


# ------------------------------------------------------------------ the registration


@dataclass
class Registered:
    kid: str
    hmac_key: str
    path: Path
    run: ModuleRun
    account_file: Path
    key_file: Path
    openssl_record: str
    samples: int
    hits: list[str]
    seen_module: bool
    accounts_after: int


@pytest.fixture(scope="module")
def registered(acmefleet: AcmefleetServer, tmp_path_factory: pytest.TempPathFactory) -> Registered:
    """One module run with -vvv, the process watch on and openssl wrapped."""
    workdir = tmp_path_factory.mktemp("lego-account")
    kid, hmac_key = acmefleet.mint_eab("acme", "private")
    path = workdir / "lego"
    wrapper_dir, record = openssl_wrapper(workdir / "bin")
    with watching(hmac_key, markers=(MODULE_MARKER,)) as watch:
        run = run_module(
            workdir,
            acmefleet,
            path,
            kid,
            hmac_key,
            "-vvv",
            env={"PATH": f"{wrapper_dir}:{os.environ['PATH']}"},
        )
    user_dir = path / "accounts" / f"localhost_{acmefleet.port}" / CONTACT
    return Registered(
        kid,
        hmac_key,
        path,
        run,
        user_dir / "account.json",
        user_dir / "keys" / f"{CONTACT}.key",
        record.read_text() if record.exists() else "",
        watch.samples,
        watch.hits,
        watch.seen.get(MODULE_MARKER, 0) > 0,
        acmefleet.count("accounts"),
    )


def test_module_registers_the_account_lego_keeps(
    acmefleet: AcmefleetServer, registered: Registered
) -> None:
    run = registered.run
    assert run.proc.returncode == 0, run.output
    assert "changed: [localhost]" in run.proc.stdout, run.output
    assert files_under(registered.path) == [
        "accounts",
        f"accounts/localhost_{acmefleet.port}",
        f"accounts/localhost_{acmefleet.port}/{CONTACT}",
        f"accounts/localhost_{acmefleet.port}/{CONTACT}/account.json",
        f"accounts/localhost_{acmefleet.port}/{CONTACT}/keys",
        f"accounts/localhost_{acmefleet.port}/{CONTACT}/keys/{CONTACT}.key",
    ]
    for path, mode in [
        (registered.account_file, 0o600),
        (registered.key_file, 0o600),
        (registered.key_file.parent, 0o700),
    ]:
        assert path.stat().st_mode & 0o777 == mode, path
    assert registered.key_file.read_text().startswith("-----BEGIN EC PRIVATE KEY-----\n")
    account = json.loads(registered.account_file.read_text())
    uri = account["registration"]["uri"]
    account_id = uri.rsplit("/", 1)[1]
    assert uri == f"{acmefleet.base_url}/acme/private/acct/{account_id}"
    assert account == {
        "email": CONTACT,
        "registration": {
            "body": {
                "status": "valid",
                "contact": [f"mailto:{CONTACT}"],
                "termsOfServiceAgreed": True,
                "orders": f"{uri}/orders",
                "externalAccountBinding": {"kid": registered.kid},
            },
            "uri": uri,
        },
    }
    # The account holds the module's key and the credential is spent on it.
    assert acmefleet.count("accounts", id=account_id, eab_kid=registered.kid) == 1
    assert (
        acmefleet.count("accounts", id=account_id, thumbprint=key_thumbprint(registered.key_file))
        == 1
    )
    check_eab_bound(acmefleet, registered.kid, account_id, "private")


def test_the_hmac_key_is_on_no_command_line_environment_output_or_file(
    registered: Registered,
) -> None:
    assert registered.run.proc.returncode == 0, registered.run.output
    # The process watch ran through the whole run and saw the module's process.
    assert registered.samples > 20 and registered.seen_module, registered.samples
    assert registered.hits == [], registered.hits
    # openssl was called (through the wrapper) for the key, the public key and the signature,
    # and none of its command lines or environments held the key.
    calls = [line for line in registered.openssl_record.splitlines() if line.startswith("argv:")]
    assert [call.split()[1] for call in calls] == ["ecparam", "ec", "dgst"], calls
    assert calls[2] == f"argv: dgst -sha256 -sign {registered.key_file}", calls
    assert registered.hmac_key not in registered.openssl_record
    # -vvv shows the module's arguments, the key censored.
    output = registered.run.output
    assert registered.hmac_key not in output
    assert '"eab_hmac_key": "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"' in output, output[-3000:]
    for path in registered.path.rglob("*"):
        if path.is_file():
            assert registered.hmac_key.encode() not in path.read_bytes(), path


def test_lego_runs_and_renews_with_eab_alone_on_the_modules_account(
    acmefleet: AcmefleetServer, registered: Registered
) -> None:
    assert registered.run.proc.returncode == 0, registered.run.output
    account_before = registered.account_file.read_bytes()
    key_before = registered.key_file.read_bytes()
    accounts = acmefleet.count("accounts")
    assert accounts == registered.accounts_after
    domains = [arg for name in NAMES for arg in ("-d", name)]
    run = run_lego(
        [
            "--eab",  # and no --kid/--hmac: lego 4.9 wants the flag against an EAB server
            "--http",
            "--http.port",
            f"127.0.0.1:{acmefleet.http01_port}",
            "--key-type",
            "ec384",  # the certificate's key; the account key stays the module's P-256
            *domains,
            "run",
        ],
        ca_bundle=acmefleet.ca_bundle,
        base_dir=registered.path,
        directory=acmefleet.directory("private"),
    ).check()
    assert "--kid" not in run.args and "--hmac" not in run.args
    assert "Registering account" not in run.stderr, run.describe()
    assert "No key found for account" not in run.stderr, run.describe()
    assert acmefleet.count("accounts") == accounts, "lego registered a second account"
    assert registered.account_file.read_bytes() == account_before
    assert registered.key_file.read_bytes() == key_before
    pem = (registered.path / "certificates" / f"{NAMES[0]}.crt").read_bytes()
    leaf = check_issued(acmefleet, pem, NAMES, level="private", context=run.describe())
    uri = json.loads(account_before)["registration"]["uri"]
    assert certificate_row(acmefleet, serial_hex(leaf))["account_id"] == uri.rsplit("/", 1)[1]
    # A renewal (what lego-renew.service runs) with --eab alone, on the same account.
    renewed = run_lego(
        [
            "--eab",
            "--http",
            "--http.port",
            f"127.0.0.1:{acmefleet.http01_port}",
            "--key-type",
            "ec384",
            *domains,
            "renew",
            "--days",
            "9999",
            "--no-random-sleep",
        ],
        ca_bundle=acmefleet.ca_bundle,
        base_dir=registered.path,
        directory=acmefleet.directory("private"),
    ).check()
    pem = (registered.path / "certificates" / f"{NAMES[0]}.crt").read_bytes()
    new_leaf = check_issued(acmefleet, pem, NAMES, level="private", context=renewed.describe())
    assert new_leaf.serial_number != leaf.serial_number, renewed.describe()
    assert certificate_row(acmefleet, serial_hex(new_leaf))["account_id"] == uri.rsplit("/", 1)[1]
    assert acmefleet.count("accounts") == accounts


def test_second_run_changes_nothing(
    acmefleet: AcmefleetServer, registered: Registered, tmp_path: Path
) -> None:
    """account.json exists: no request, no credential needed (a made-up one is not used)."""
    assert registered.run.proc.returncode == 0, registered.run.output
    before = acmefleet.snapshot()
    account = registered.account_file.read_bytes()
    again = run_module(tmp_path, acmefleet, registered.path, "unused", b64url_encode(b"x" * 32))
    assert again.proc.returncode == 0, again.output
    assert again.result is not None and again.result["changed"] is False, again.result
    assert again.result["account_uri"] == json.loads(account)["registration"]["uri"]
    assert registered.account_file.read_bytes() == account
    assert acmefleet.snapshot() == before


def test_check_mode_on_a_fresh_path_writes_and_sends_nothing(
    acmefleet: AcmefleetServer, tmp_path: Path
) -> None:
    kid, hmac_key = acmefleet.mint_eab("acme", "private")
    before = acmefleet.snapshot()
    path = tmp_path / "lego"
    dry = run_module(tmp_path, acmefleet, path, kid, hmac_key, "--check")
    assert dry.proc.returncode == 0, dry.output
    assert dry.result is not None and dry.result["changed"] is True, dry.result
    assert dry.result["account_file"].startswith(f"{path}/accounts/localhost_{acmefleet.port}/")
    assert not path.exists()
    assert acmefleet.snapshot() == before, "check mode used the credential"
    assert hmac_key not in dry.output


def test_a_wrong_hmac_key_fails_with_the_servers_problem_and_leaves_nothing(
    acmefleet: AcmefleetServer, tmp_path: Path
) -> None:
    kid, hmac_key = acmefleet.mint_eab("acme", "private")
    wrong = b64url_encode(secrets.token_bytes(32))
    accounts = acmefleet.count("accounts")
    path = tmp_path / "lego"
    failed = run_module(tmp_path, acmefleet, path, kid, wrong)
    assert failed.proc.returncode != 0, failed.output
    result = failed.result
    assert result is not None and result.get("failed") is True, result
    assert result["problem"]["type"] == UNAUTHORIZED, result
    assert "MAC does not verify" in result["problem"]["detail"], result
    assert UNAUTHORIZED in result["msg"] and "HTTP 403" in result["msg"], result
    assert wrong not in failed.output and hmac_key not in failed.output
    assert not path.exists(), files_under(path)
    assert acmefleet.count("accounts") == accounts
    # The credential is still unused: the right key registers.
    good = run_module(tmp_path, acmefleet, path, kid, hmac_key)
    assert good.result is not None and good.result["changed"] is True, good.output
    assert acmefleet.count("accounts") == accounts + 1


# ------------------------------------------------------------------ the role's certificate step

STEP_NAMES = ["step1.example.com"]
STEP_PLAYBOOK = """---
- name: The certificate step of lego_nginx, on this machine
  hosts: localhost
  connection: local
  gather_facts: false
  vars_files:
    - {role}/defaults/main.yml
    - {role}/vars/main.yml
  handlers:
    - name: Reload nginx (lego_nginx)
      ansible.builtin.debug:
        msg: nginx would reload
  tasks:
    - name: Inspect the certificate and the account
      ansible.builtin.include_tasks: {role}/tasks/state.yml
    - name: Obtain the certificate
      ansible.builtin.include_tasks: {role}/tasks/certificate.yml
"""


def run_step(
    workdir: Path,
    server: AcmefleetServer,
    path: Path,
    eab: tuple[str, str],
    *options: str,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """roles/lego_nginx/tasks/{state,certificate}.yml with this server (private endpoint).

    nginx is not touched: the play's own "Reload nginx (lego_nginx)" handler only prints. The CA
    bundle is copied to a ``.crt`` (the role's LEGO_CA_CERTIFICATES file).
    """
    role = Path(__file__).resolve().parents[2] / "roles" / "lego_nginx"
    playbook = workdir / "certificate-step.yml"
    playbook.write_text(STEP_PLAYBOOK.format(role=role))
    ca_file = workdir / "acmefleet.crt"
    ca_file.write_bytes(server.ca_bundle.read_bytes())
    webroot = workdir / "webroot"
    webroot.mkdir(exist_ok=True)
    variables = workdir / f"step-{secrets.token_hex(4)}.json"
    variables.touch(0o600)
    variables.write_text(
        json.dumps(
            {
                "acmefleet_directory_url": server.directory("private"),
                "acmefleet_ca_bundle": str(server.ca_bundle),
                "lego_nginx_ca_file": str(ca_file),
                "acmefleet_names": STEP_NAMES,
                "acmefleet_email": CONTACT,
                "acmefleet_eab_kid": eab[0],
                "acmefleet_eab_hmac_key": eab[1],
                "lego_nginx_path": str(path),
                "lego_nginx_webroot": str(webroot),
                "ansible_python_interpreter": "/usr/bin/python3",
            }
        )
    )
    try:
        return ansible(
            "ansible-playbook",
            "-i",
            "localhost,",
            "-e",
            f"@{variables}",
            *options,
            str(playbook),
            env={
                "NO_PROXY": "localhost,127.0.0.1",
                "no_proxy": "localhost,127.0.0.1",
                **(env or {}),
            },
        )
    finally:
        variables.unlink()


def recap(proc: subprocess.CompletedProcess[str]) -> dict[str, int]:
    line = next(x for x in proc.stdout.splitlines() if x.startswith("localhost") and "ok=" in x)
    return {k: int(v) for k, v in (part.split("=") for part in line.split(":", 1)[1].split())}


def test_role_step_registers_with_the_module_then_runs_lego_with_eab_alone(
    acmefleet: AcmefleetServer, tmp_path: Path
) -> None:
    kid, hmac_key = acmefleet.mint_eab("acme", "private")
    path = tmp_path / "lego"
    accounts = acmefleet.count("accounts")

    dry = run_step(tmp_path, acmefleet, path, (kid, hmac_key), "--check")
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert recap(dry)["changed"] == 1, dry.stdout  # the registration it would make
    assert "check mode: would run lego for step1.example.com" in dry.stdout
    assert not path.exists() and acmefleet.count("accounts") == accounts

    with watching(hmac_key, markers=(MODULE_MARKER,)) as watch:
        converge = run_step(tmp_path, acmefleet, path, (kid, hmac_key), "-vvv")
    output = converge.stdout + converge.stderr
    assert converge.returncode == 0, output[-6000:]
    assert recap(converge)["changed"] == 2, converge.stdout  # the account, lego run
    assert watch.seen.get(MODULE_MARKER, 0) > 0 and watch.hits == [], watch.hits
    assert hmac_key not in output
    # -vvv prints lego's command: --eab and nothing of the credential.
    assert re.search(r'"--eab",\s*"run"\s*\]', output), output[-6000:]
    assert "--hmac" not in output and "--kid" not in output
    assert acmefleet.count("accounts") == accounts + 1
    leaf_pem = (path / "certificates" / f"{STEP_NAMES[0]}.crt").read_bytes()
    leaf = check_issued(acmefleet, leaf_pem, STEP_NAMES, level="private")
    user_dir = path / "accounts" / f"localhost_{acmefleet.port}" / CONTACT
    uri = json.loads((user_dir / "account.json").read_text())["registration"]["uri"]
    account_id = uri.rsplit("/", 1)[1]
    assert certificate_row(acmefleet, serial_hex(leaf))["account_id"] == account_id
    check_eab_bound(acmefleet, kid, account_id, "private")

    # Converged: no change, and no credential needed any more.
    again = run_step(tmp_path, acmefleet, path, ("", ""))
    assert again.returncode == 0, again.stdout + again.stderr
    assert recap(again)["changed"] == 0, again.stdout
    assert acmefleet.count("accounts") == accounts + 1


def test_role_step_reports_the_servers_problem_for_a_wrong_key(
    acmefleet: AcmefleetServer, tmp_path: Path
) -> None:
    kid, hmac_key = acmefleet.mint_eab("acme", "private")
    wrong = b64url_encode(secrets.token_bytes(32))
    path = tmp_path / "lego"
    failed = run_step(tmp_path, acmefleet, path, (kid, wrong))
    output = failed.stdout + failed.stderr
    assert failed.returncode != 0, output
    assert "registering the ACME account failed" in output, output[-4000:]
    assert UNAUTHORIZED in output and "MAC does not verify" in output, output[-4000:]
    assert wrong not in output and hmac_key not in output
    assert not path.exists(), files_under(path)
