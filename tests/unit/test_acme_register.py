"""plugins/module_utils/acme_register.py (the module lego_account) without a server.

The pieces are checked against independent implementations: signatures and keys against
``cryptography``, the External Account Binding against the server's own EAB checks
(``acmefleet.jose.eab``), the account file against what Debian's lego 4.9.1 wrote, and the
openssl calls against the real ``openssl`` binary.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from acmefleet.jose.b64 import b64url_decode, b64url_encode
from acmefleet.jose.eab import parse_eab, verify_eab
from acmefleet.jose.keys import thumbprint

ROOT = Path(__file__).resolve().parents[2]
OPENSSL = shutil.which("openssl") or "/usr/bin/openssl"


def _load() -> ModuleType:
    path = ROOT / "plugins" / "module_utils" / "acme_register.py"
    spec = importlib.util.spec_from_file_location("acmefleet_acme_register", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


reg = _load()

# What Debian's lego 4.9.1 wrote (byte for byte) after registering with acmefleet.
LEGO_491_ACCOUNT_JSON = (
    '{\n\t"email": "ops@example.com",\n\t"registration": {\n\t\t"body": {\n\t\t\t"status": '
    '"valid",\n\t\t\t"contact": [\n\t\t\t\t"mailto:ops@example.com"\n\t\t\t],\n\t\t\t'
    '"termsOfServiceAgreed": true,\n\t\t\t"orders": "https://localhost:55003/acme/private/acct/'
    'hR0QWfFyz3TfQg7DIHwJVw/orders",\n\t\t\t"externalAccountBinding": {\n\t\t\t\t"kid": '
    '"zCTc-IPQDUuvKTFu4Joi0w"\n\t\t\t}\n\t\t},\n\t\t"uri": "https://localhost:55003/acme/private/'
    'acct/hR0QWfFyz3TfQg7DIHwJVw"\n\t}\n}'
)


def test_the_module_needs_the_standard_library_only() -> None:
    """Hosts have Python and openssl: nothing else may be imported (module_utils travel)."""
    for path in (
        ROOT / "plugins" / "module_utils" / "acme_register.py",
        ROOT / "plugins" / "modules" / "lego_account.py",
    ):
        imported = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module.split(".")[0])
        foreign = imported - set(sys.stdlib_module_names) - {"ansible", "ansible_collections"}
        assert not foreign, (path.name, foreign)


def test_der_signatures_become_raw_r_and_s() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    ders = [key.sign(b"message %d" % i, ec.ECDSA(hashes.SHA256())) for i in range(50)]
    # Short integers and integers with the high bit set (a leading 0x00 in DER).
    for r, s in [(1, 2), (1 << 255, 7), ((1 << 256) - 1, 1 << 200), (0x7F, (1 << 248) - 1)]:
        ders.append(encode_dss_signature(r, s))
    for der in ders:
        r, s = decode_dss_signature(der)
        assert reg.ecdsa_der_to_raw(der) == r.to_bytes(32, "big") + s.to_bytes(32, "big")
    for bad in (b"", b"\x30\x02\x02\x00", encode_dss_signature(1 << 256, 1), ders[0] + b"\x00"):
        with pytest.raises(ValueError):
            reg.ecdsa_der_to_raw(bad)


def test_jwk_of_a_p256_key_and_nothing_else() -> None:
    public = ec.generate_private_key(ec.SECP256R1()).public_key()
    spki = public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    jwk = reg.p256_jwk(spki)
    numbers = public.public_numbers()
    assert jwk == {
        "crv": "P-256",
        "kty": "EC",
        "x": b64url_encode(numbers.x.to_bytes(32, "big")),
        "y": b64url_encode(numbers.y.to_bytes(32, "big")),
    }
    others = [
        ec.generate_private_key(ec.SECP384R1()).public_key(),
        rsa.generate_private_key(65537, 2048).public_key(),
    ]
    for other in others:
        der = other.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        with pytest.raises(ValueError):
            reg.p256_jwk(der)


def test_hmac_key_base64url_with_or_without_padding() -> None:
    key = bytes(range(32))
    text = b64url_encode(key)
    assert reg.decode_hmac_key(text) == key
    assert reg.decode_hmac_key(text + "=") == key
    assert reg.decode_hmac_key(f" {text}\n") == key
    secret = "not+base64/url" + text
    for bad in ("", "====", "abcde", secret):
        with pytest.raises(reg.RegistrationError) as raised:
            reg.decode_hmac_key(bad)
        assert secret not in str(raised.value) and "eab_hmac_key" in str(raised.value)


def test_the_binding_passes_the_servers_eab_checks() -> None:
    """acmefleet's own RFC 8555 §7.3.4 checks accept the binding the module builds."""
    spki = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    jwk = reg.p256_jwk(spki)
    key = os.urandom(32)
    url = "https://acme.example/acme/private/new-account"
    binding = reg.eab_binding("kid-7", key, url, jwk)
    request = parse_eab(binding, url)
    assert request.kid == "kid-7" and request.alg == "HS256"
    verify_eab(request, b64url_encode(key), thumbprint(jwk))
    protected = json.loads(b64url_decode(binding["protected"]))
    assert protected == {"alg": "HS256", "kid": "kid-7", "url": url}
    assert json.loads(b64url_decode(binding["payload"])) == jwk


@pytest.mark.parametrize(
    ("server", "directory"),
    [
        ("https://localhost:55003/acme/private/directory", "localhost_55003"),
        ("https://acme.example.net/directory", "acme.example.net"),
        ("https://user:pw@acme.example.net:8555/d", "acme.example.net_8555"),
        ("https://[::1]:8555/d", "[__1]_8555"),
    ],
)
def test_lego_paths(server: str, directory: str) -> None:
    """lego 4.9 NewAccountsStorage: url.Host with ':' → '_', then <email>/account.json."""
    paths = reg.LegoAccountPaths("/var/lib/lego", server, "ops@example.com")
    base = f"/var/lib/lego/accounts/{directory}/ops@example.com"
    assert paths.account_file == f"{base}/account.json"
    assert paths.key_file == f"{base}/keys/ops@example.com.key"


def test_account_json_is_what_lego_491_writes() -> None:
    uri = "https://localhost:55003/acme/private/acct/hR0QWfFyz3TfQg7DIHwJVw"
    body = {
        "status": "valid",
        "contact": ["mailto:ops@example.com"],
        "termsOfServiceAgreed": True,
        "orders": uri + "/orders",
        "externalAccountBinding": {"kid": "zCTc-IPQDUuvKTFu4Joi0w"},
        "createdAt": "2026-12-05T08:32:36Z",  # not in lego's acme.Account: dropped
    }
    written = reg.account_json("ops@example.com", uri, body)
    assert written.decode() == LEGO_491_ACCOUNT_JSON
    minimal = json.loads(reg.account_json("a@b.example", uri, {"status": "valid", "contact": []}))
    assert minimal["registration"] == {"body": {"status": "valid"}, "uri": uri}


def test_written_files_are_0600_and_removed_with_their_directories(tmp_path: Path) -> None:
    written = reg.Written()
    target = tmp_path / "lego" / "accounts" / "h_1" / "a@b" / "keys"
    old = os.umask(0)
    try:
        written.makedirs(str(target))
        written.write_atomically(str(target / "a@b.key"), b"key")
    finally:
        os.umask(old)
    assert stat.S_IMODE((target / "a@b.key").stat().st_mode) == 0o600
    assert stat.S_IMODE(target.stat().st_mode) == 0o700
    assert [p.name for p in target.iterdir()] == ["a@b.key"], "no temporary file left"
    written.remove()
    assert list(tmp_path.iterdir()) == []


def test_openssl_makes_signs_and_describes_p256_keys(tmp_path: Path) -> None:
    openssl = reg.OpenSSL(OPENSSL)
    pem = openssl.generate_p256_key()
    assert pem.startswith(b"-----BEGIN EC PRIVATE KEY-----\n")  # SEC1, as lego writes
    key_file = tmp_path / "account.key"
    key_file.write_bytes(pem)
    private = serialization.load_pem_private_key(pem, None)
    assert isinstance(private, ec.EllipticCurvePrivateKey)
    assert private.curve.name == "secp256r1"
    numbers = private.public_key().public_numbers()
    jwk = openssl.public_jwk(str(key_file))
    assert b64url_decode(jwk["x"]) == numbers.x.to_bytes(32, "big")
    assert b64url_decode(jwk["y"]) == numbers.y.to_bytes(32, "big")
    raw = openssl.sign_es256(str(key_file), b"header.payload")
    r, s = int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")
    private.public_key().verify(
        encode_dss_signature(r, s), b"header.payload", ec.ECDSA(hashes.SHA256())
    )


def test_openssl_refuses_other_keys(tmp_path: Path) -> None:
    rsa_file = tmp_path / "rsa.key"
    subprocess.run(
        [OPENSSL, "genrsa", "-out", str(rsa_file), "2048"], check=True, capture_output=True
    )
    with pytest.raises(reg.RegistrationError, match="not an EC P-256 key"):
        reg.OpenSSL(OPENSSL).public_jwk(str(rsa_file))
    with pytest.raises(reg.RegistrationError, match="openssl ec failed"):
        reg.OpenSSL(OPENSSL).public_jwk(str(tmp_path / "missing.key"))
    with pytest.raises(reg.RegistrationError, match="openssl binary is not installed"):
        reg.OpenSSL(None).generate_p256_key()


def test_existing_account_and_check_mode_touch_nothing(tmp_path: Path) -> None:
    class NoOpenSSL:
        def __getattr__(self, name: str) -> object:
            raise AssertionError(f"openssl used: {name}")

    # The directory the account JSON's URL belongs to; nothing listens: no request made.
    server = "https://localhost:55003/acme/private/directory"
    args = {
        "path": str(tmp_path / "lego"),
        "server": server,
        "email": "ops@example.com",
        "eab_kid": "kid",
        "eab_hmac_key": b64url_encode(b"k" * 32),
        "ca_file": None,
        "openssl": NoOpenSSL(),
    }
    dry = reg.ensure_account(**args, check_mode=True)
    assert dry["changed"] and dry["account_uri"] is None
    assert not (tmp_path / "lego").exists()
    account = Path(dry["account_file"])
    account.parent.mkdir(parents=True)
    account.write_text(LEGO_491_ACCOUNT_JSON)
    for check_mode in (False, True):
        again = reg.ensure_account(**{**args, "eab_hmac_key": "?"}, check_mode=check_mode)
        assert not again["changed"]
        assert again["account_uri"].endswith("/acct/hR0QWfFyz3TfQg7DIHwJVw")


def test_another_directorys_account_is_replaced(tmp_path: Path) -> None:
    """lego shares account.json between endpoints of one server: the other one's is no account."""

    class NoOpenSSL:
        def __getattr__(self, name: str) -> object:
            raise AssertionError(f"openssl used: {name}")

    args = {
        "path": str(tmp_path / "lego"),
        "server": "https://localhost:55003/acme/public/directory",
        "email": "ops@example.com",
        "eab_kid": "kid",
        "eab_hmac_key": b64url_encode(b"k" * 32),
        "ca_file": None,
        "openssl": NoOpenSSL(),
    }
    account = Path(reg.LegoAccountPaths(args["path"], args["server"], args["email"]).account_file)
    account.parent.mkdir(parents=True)
    account.write_text(LEGO_491_ACCOUNT_JSON)  # an account of /acme/private/
    dry = reg.ensure_account(**args, check_mode=True)
    assert dry["changed"] and dry["account_uri"] is None
    assert account.read_text() == LEGO_491_ACCOUNT_JSON
    assert reg.directory_base(args["server"]) == "https://localhost:55003/acme/public/"
    with pytest.raises(reg.RegistrationError, match="eab_kid is empty"):
        reg.ensure_account(**{**args, "eab_kid": ""}, check_mode=True)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"email": "../x"}, "email must be an address"),
        ({"server": "http://acme.example/directory"}, "https directory URL"),
        ({"eab_kid": ""}, "eab_kid is empty"),
        ({"eab_hmac_key": "s3cr3t+key"}, "eab_hmac_key is not base64url"),
    ],
)
def test_bad_inputs_fail_before_anything_is_written(
    tmp_path: Path, change: dict[str, str], message: str
) -> None:
    args = {
        "path": str(tmp_path / "lego"),
        "server": "https://127.0.0.1:9/directory",
        "email": "ops@example.com",
        "eab_kid": "kid",
        "eab_hmac_key": b64url_encode(b"k" * 32),
        "ca_file": None,
        "openssl": reg.OpenSSL(OPENSSL),
        **change,
    }
    for check_mode in (True, False):
        with pytest.raises(reg.RegistrationError, match=message) as raised:
            reg.ensure_account(**args, check_mode=check_mode)
        assert "s3cr3t" not in str(raised.value)
    assert not (tmp_path / "lego").exists()


def test_unreachable_server_leaves_no_files(tmp_path: Path) -> None:
    with pytest.raises(
        reg.RegistrationError, match=re.escape("GET https://127.0.0.1:9/directory failed")
    ):
        reg.ensure_account(
            path=str(tmp_path / "lego"),
            server="https://127.0.0.1:9/directory",
            email="ops@example.com",
            eab_kid="kid",
            eab_hmac_key=b64url_encode(b"k" * 32),
            ca_file=None,
            openssl=reg.OpenSSL(OPENSSL),
            check_mode=False,
            timeout=5,
        )
    assert not (tmp_path / "lego").exists()
