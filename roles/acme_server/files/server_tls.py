"""Make the acmefleet server's TLS certificate carry exactly the names it should.

Usage (as the service user, with the server's virtualenv Python):
    server_tls.py DATA_DIR NAME...

Prints "unchanged" when the certificate in DATA_DIR/tls/server.pem carries exactly NAME...
(DNS names or IP addresses), else issues a new one from the private CA, as
'acmefleet server init' does, and prints "reissued". 'acmefleet server init' has no option
for extra names and acmefleet has no command to reissue the certificate, so this uses the
package's own functions.
"""

from __future__ import annotations

import ipaddress
import sys
from pathlib import Path


def normalise(name: str) -> str:
    try:
        return str(ipaddress.ip_address(name))
    except ValueError:
        return name.lower()


def current_names(cert_file: Path) -> set[str]:
    from cryptography import x509

    cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    names = [str(n) for n in san.get_values_for_type(x509.DNSName)]
    names += [str(a) for a in san.get_values_for_type(x509.IPAddress)]
    return {normalise(n) for n in names}


def main(data_dir: Path, names: list[str]) -> str:
    from acmefleet.ca.hierarchy import load_authority
    from acmefleet.ca.tls import issue_server_tls
    from acmefleet.clock import SystemClock
    from acmefleet.server.datadir import SERVER_CA_LEVEL, DataDir, read_passphrase

    data = DataDir(data_dir)
    wanted = list(dict.fromkeys(normalise(n) for n in names))
    if current_names(data.tls_cert) == set(wanted):
        return "unchanged"
    authority = load_authority(data.ca, SERVER_CA_LEVEL, read_passphrase())
    issue_server_tls(authority, wanted, data.tls_cert, data.tls_key, clock=SystemClock())
    return "reissued"


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    print(main(Path(sys.argv[1]), sys.argv[2:]))
