"""A real TLS server answering tls-alpn-01 (RFC 8737) with a chosen certificate, right or wrong.

Each variant of :func:`validation_certificate` breaks one rule (wrong digest, non-critical
extension, wrong or extra SAN, no extension); :class:`TlsAlpnResponder` serves it on a
loopback port with or without the ``acme-tls/1`` ALPN protocol.
"""

from __future__ import annotations

import hashlib
import socket
import ssl
import tempfile
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Self

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID, ObjectIdentifier

ACME_IDENTIFIER = ObjectIdentifier("1.3.6.1.5.5.7.1.31")


def validation_certificate(
    name: str,
    key_authorization: str,
    *,
    digest_of: str | None = None,
    critical: bool = True,
    sans: list[str] | None = None,
    extension: bool = True,
) -> tuple[bytes, bytes]:
    """(certificate PEM, key PEM): self-signed, as an ACME client would make it for
    tls-alpn-01, unless a keyword says otherwise (``digest_of``: hash this instead)."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "acme tls-alpn-01 test")])
    digest = hashlib.sha256((digest_of or key_authorization).encode()).digest()
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName(n) for n in (sans or [name])]),
            critical=False,
        )
    )
    if extension:
        value = b"\x04\x20" + digest  # DER OCTET STRING of the digest
        builder = builder.add_extension(
            x509.UnrecognizedExtension(ACME_IDENTIFIER, value), critical=critical
        )
    cert = builder.sign(key, hashes.SHA256())
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


class TlsAlpnResponder:
    """Serves ``cert``/``key`` on 127.0.0.1:``port``; ``alpn`` False: no ALPN at all."""

    def __init__(self, port: int, cert_pem: bytes, key_pem: bytes, *, alpn: bool = True) -> None:
        self.port = port
        self.handshakes = 0
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        with tempfile.TemporaryDirectory() as tmp:
            cert_file, key_file = Path(tmp) / "cert.pem", Path(tmp) / "key.pem"
            cert_file.write_bytes(cert_pem)
            key_file.write_bytes(key_pem)
            self.context.load_cert_chain(cert_file, key_file)
        if alpn:
            self.context.set_alpn_protocols(["acme-tls/1"])
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(5)
            try:
                with self.context.wrap_socket(conn, server_side=True) as tls:
                    self.handshakes += 1
                    tls.recv(1)  # the validator closes after the handshake
            except (OSError, ssl.SSLError):
                pass
            finally:
                conn.close()

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self.thread.join(timeout=5)
        self.sock.close()
