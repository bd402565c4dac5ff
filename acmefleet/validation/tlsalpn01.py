"""tls-alpn-01 (RFC 8737): a TLS handshake that proves control with a special certificate.

The server connects to the name on port 443 (``validation.tls_alpn01_port`` in closed
networks and tests), offers only the ALPN protocol ``acme-tls/1`` and sends the name as SNI.
The applicant answers with a self-signed certificate carrying

* a subjectAltName with exactly one entry: the dNSName being validated, and
* the critical acmeIdentifier extension (id-pe-acmeIdentifier, 1.3.6.1.5.5.7.1.31) whose
  value is the DER OCTET STRING of SHA-256(key authorization).

The certificate is not verified otherwise (it is self-signed on purpose; RFC 8737 §3).

Bounded like http-01, with the same address policy and static hosts mapping
(``addresses.py``): one deadline for resolution, connection and handshake; every resolved
address must be one validation may reach; problem details name the name and port, never an
address learnt or the TLS library's words (those are logged).

Not for wildcards (RFC 8737 §3: a wildcard authorization never offers it); IP identifiers
(RFC 8738 §6) are not validated here.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import ssl
from collections.abc import Mapping
from datetime import timedelta

from cryptography import x509
from cryptography.x509.oid import ObjectIdentifier

from acmefleet.errors import AcmeError, ProblemType
from acmefleet.identifiers import Identifier
from acmefleet.validation.addresses import check_reachable, resolve

log = logging.getLogger(__name__)

ALPN_PROTOCOL = "acme-tls/1"
ACME_IDENTIFIER_OID = ObjectIdentifier("1.3.6.1.5.5.7.1.31")
TLS_PORT = 443
# DER: OCTET STRING (tag 4), 32 bytes long, then the SHA-256 digest.
_OCTET_STRING_32 = b"\x04\x20"


def acme_identifier_value(key_authorization: str) -> bytes:
    """The extension's value (extnValue contents): DER OCTET STRING of the digest."""
    return _OCTET_STRING_32 + hashlib.sha256(key_authorization.encode("ascii")).digest()


def _refused(detail: str) -> AcmeError:
    return AcmeError(ProblemType.UNAUTHORIZED, detail)


def check_certificate(der: bytes, name: str, key_authorization: str) -> None:
    """RFC 8737 §3: raise ``unauthorized`` unless ``der`` is a validation certificate for
    ``name`` and ``key_authorization``."""
    where = f"the tls-alpn-01 certificate for {name}"
    try:
        cert = x509.load_der_x509_certificate(der)
        extensions = cert.extensions
    except ValueError as exc:  # malformed, or an extension twice (DuplicateExtension)
        log.info("tls-alpn-01 %s: certificate not parsed: %s", name, exc)
        raise _refused(f"{where} could not be parsed") from None
    try:
        san = extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        raise _refused(f"{where} has no subjectAltName") from None
    entries = list(san)
    if not (
        len(entries) == 1
        and isinstance(entries[0], x509.DNSName)
        and entries[0].value.lower() == name.lower()
    ):
        raise _refused(f"{where} must name exactly {name} (one dNSName) in its subjectAltName")
    try:
        found = extensions.get_extension_for_oid(ACME_IDENTIFIER_OID)
    except x509.ExtensionNotFound:
        raise _refused(f"{where} has no acmeIdentifier extension") from None
    if not found.critical:
        raise _refused(f"{where}: the acmeIdentifier extension is not marked critical")
    value = found.value
    if not (
        isinstance(value, x509.UnrecognizedExtension)
        and value.value == acme_identifier_value(key_authorization)
    ):
        raise _refused(f"{where}: the acmeIdentifier extension does not hold the expected digest")


def _client_context() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # self-signed by design; the extension is the proof
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols([ALPN_PROTOCOL])
    return context


class TlsAlpn01Validator:
    challenge_type = "tls-alpn-01"

    def __init__(
        self,
        *,
        port: int,
        timeout: timedelta,
        allow_private: bool,
        hosts: Mapping[str, str],
    ) -> None:
        if timeout <= timedelta(0):
            raise ValueError("the validation timeout must be positive")
        self._port = port
        self._allow_private = allow_private
        self._hosts = dict(hosts)
        self._context = _client_context()
        self.deadline = timeout

    async def validate(self, identifier: Identifier, token: str, key_authorization: str) -> None:
        if identifier.type != "dns" or identifier.is_wildcard:
            raise AcmeError(ProblemType.MALFORMED, "tls-alpn-01 validates DNS names only")
        name = identifier.value
        seconds = self.deadline.total_seconds()
        try:
            async with asyncio.timeout(seconds):
                der = await self._handshake(name)
        except TimeoutError:
            log.info("tls-alpn-01 %s: no handshake within %g s", name, seconds)
            raise AcmeError(
                ProblemType.CONNECTION,
                f"the TLS handshake with {name} port {self._port} did not finish within "
                f"{seconds:g} s (name resolution and connection included)",
            ) from None
        check_certificate(der, name, key_authorization)

    async def _handshake(self, name: str) -> bytes:
        """The peer's certificate (DER) after a handshake that agreed on acme-tls/1."""
        addresses = await resolve(name, self._hosts)
        for address in addresses:
            try:
                check_reachable(address, allow_private=self._allow_private)
            except AcmeError:
                log.info("tls-alpn-01 %s: %s is not an address to validate at", name, address)
                raise self._unreachable(name) from None
        address = addresses[0]
        try:
            reader, writer = await asyncio.open_connection(
                str(address), self._port, ssl=self._context, server_hostname=name
            )
        except ssl.SSLError as exc:
            log.info("tls-alpn-01 %s via %s: %s", name, address, exc)
            raise AcmeError(
                ProblemType.TLS,
                f"the TLS handshake with {name} port {self._port} failed "
                f"(it must accept ALPN {ALPN_PROTOCOL})",
            ) from None
        except OSError as exc:
            log.info("tls-alpn-01 %s via %s: %s: %s", name, address, type(exc).__name__, exc)
            raise self._unreachable(name) from None
        try:
            tls = writer.get_extra_info("ssl_object")
            protocol = tls.selected_alpn_protocol() if tls is not None else None
            der = tls.getpeercert(binary_form=True) if tls is not None else None
        finally:
            writer.close()
            # The applicant's server may close rudely; the certificate is in hand.
            with contextlib.suppress(OSError, ssl.SSLError):
                await writer.wait_closed()
        del reader
        if protocol != ALPN_PROTOCOL:
            raise AcmeError(
                ProblemType.TLS,
                f"{name} port {self._port} did not agree on ALPN {ALPN_PROTOCOL}",
            )
        if not der:
            raise _refused(f"{name} port {self._port} sent no certificate")
        return bytes(der)

    def _unreachable(self, name: str) -> AcmeError:
        """The one problem for every way of not getting a handshake (no port scanner)."""
        return AcmeError(
            ProblemType.CONNECTION, f"could not connect to {name} port {self._port} over TLS"
        )
