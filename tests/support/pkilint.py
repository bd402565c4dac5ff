"""Lint the leaf of an issued chain with pkilint's CLIs; report the ERROR/FATAL findings.

Same approach as tests/unit/ca/test_ca_pkilint.py: the venv's pkilint console scripts,
JSON output, one finding per ``finding_descriptions`` entry.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

BLOCKING = frozenset({"ERROR", "FATAL"})
LINT_TIMEOUT = 60

_COMMANDS: dict[str, tuple[str, list[str]]] = {
    # CA/B Forum TLS BRs, subscriber certificate of a DV final certificate.
    "public": ("lint_cabf_serverauth_cert", ["-t", "DV-FINAL-CERTIFICATE"]),
    # RFC 5280 only: the private CA is not bound by the BRs.
    "private": ("lint_pkix_cert", []),
}


def pkilint_tool(name: str) -> str:
    """The path of a pkilint console script; missing is an error, never a skip.

    pkilint comes with the dev extra that scripts/quickstart installs, so a run without it
    (CI or a developer's) would silently prove nothing.
    """
    local = Path(sys.executable).parent / name
    found = str(local) if local.exists() else shutil.which(name)
    if found is None:
        raise FileNotFoundError(
            f"{name} (pkilint) is not installed in {local.parent} or on PATH: "
            "install the dev extra (scripts/quickstart setup)"
        )
    return found


def leaf_pem(pem_or_der: bytes) -> bytes:
    """The first certificate of a PEM chain (or a lone DER certificate), as PEM."""
    if b"-----BEGIN" in pem_or_der:
        leaf = x509.load_pem_x509_certificates(pem_or_der)[0]
    else:
        leaf = x509.load_der_x509_certificate(pem_or_der)
    return leaf.public_bytes(Encoding.PEM)


def lint_all(
    pem_or_der: bytes, kind: Literal["public", "private"], severity: str = "NOTICE"
) -> list[tuple[str, str, str]]:
    """(severity, code, message) of every finding at ``severity`` or above on the leaf."""
    tool, args = _COMMANDS[kind]
    with tempfile.TemporaryDirectory(prefix="pkilint-") as tmp:
        document = Path(tmp) / "leaf.pem"
        document.write_bytes(leaf_pem(pem_or_der))
        result = subprocess.run(
            [pkilint_tool(tool), "lint", *args, "-s", severity, "-f", "JSON", str(document)],
            capture_output=True,
            text=True,
            check=False,
            timeout=LINT_TIMEOUT,
        )
    try:
        report = json.loads(result.stdout)
    except json.JSONDecodeError as exc:
        raise RuntimeError(
            f"{tool} exited {result.returncode} without a JSON report:\n"
            f"stdout: {result.stdout}\nstderr: {result.stderr}"
        ) from exc
    return [
        (finding["severity"], finding["code"], finding.get("message") or "")
        for entry in report["results"]
        for finding in entry["finding_descriptions"]
    ]


def lint_findings(pem_or_der: bytes, kind: Literal["public", "private"]) -> list[str]:
    """The ERROR/FATAL findings on the leaf, as ``"SEVERITY code: message"`` strings.

    ``public``: ``lint_cabf_serverauth_cert lint -t DV-FINAL-CERTIFICATE``;
    ``private``: ``lint_pkix_cert lint``. An empty list means the leaf lints clean.
    """
    return [
        f"{severity} {code}: {message}" if message else f"{severity} {code}"
        for severity, code, message in lint_all(pem_or_der, kind, severity="ERROR")
        if severity in BLOCKING
    ]
