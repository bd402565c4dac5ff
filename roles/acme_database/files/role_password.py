"""Create a PostgreSQL login role, or set its password, from a password read on stdin.

    python3 role_password.py ROLE [--check]      (as the postgres user; password on stdin)

The password never appears in a process argument, a SQL statement or PostgreSQL's logs: what
PostgreSQL gets is a SCRAM-SHA-256 verifier computed here (RFC 5802/7677, as PostgreSQL
stores it), and the statement that sets it runs with statement logging off. An existing
role's verifier is checked against the password first, so a run that changes nothing says
"unchanged" (no login over the network needed). Prints one word: created, changed,
unchanged (with --check: what it would do, nothing done).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import subprocess
import sys

ITERATIONS = 4096  # PostgreSQL's scram_iterations default


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def verifier(password: str, salt: bytes, iterations: int = ITERATIONS) -> str:
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    return f"SCRAM-SHA-256${iterations}:{_b64(salt)}${_b64(stored_key)}:{_b64(server_key)}"


def matches(stored: str, password: str) -> bool:
    found = re.fullmatch(r"SCRAM-SHA-256\$(\d+):([^$]+)\$([^:]+):(.+)", stored)
    if found is None:
        return False
    iterations, salt = int(found[1]), base64.b64decode(found[2])
    return hmac.compare_digest(verifier(password, salt, iterations), stored)


def psql(sql: str) -> str:
    done = subprocess.run(
        ["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-d", "postgres"],
        input=sql,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        sys.exit(f"psql failed: {done.stderr.strip()}")
    return done.stdout.strip()


def main() -> None:
    role, check = sys.argv[1], "--check" in sys.argv[2:]
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", role):
        sys.exit(f"not a role name this script accepts: {role!r}")
    password = sys.stdin.readline().rstrip("\n")
    if len(password) < 16:
        sys.exit("the password read on standard input is shorter than 16 characters")
    exists = psql(f"SELECT count(*) FROM pg_roles WHERE rolname = '{role}'") == "1"
    if exists:
        stored = psql(f"SELECT coalesce(rolpassword, '') FROM pg_authid WHERE rolname = '{role}'")
        if matches(stored, password):
            print("unchanged")
            return
    print("changed" if exists else "created")
    if check:
        return
    secret = verifier(password, os.urandom(16))
    verb = "ALTER" if exists else "CREATE"
    # The verifier is not the password, but it is not for logs either.
    psql(
        "SET log_statement = 'none'; SET log_min_error_statement = 'panic';\n"
        f"{verb} ROLE \"{role}\" LOGIN PASSWORD '{secret}';\n"
    )


if __name__ == "__main__":
    main()
