"""The upstream CAs of ``[upstreams.NAME]``, made into clients: their account key, trust,
EAB credential and dns-01 updates, read from the data directory and the environment.

The upstream account is registered once and reused: its URL is kept in
``upstreams/NAME/account.json`` beside its key. After a restore that lost that file (or a
key copied from elsewhere), the account is found again with ``onlyReturnExisting`` before
anything is registered, so an EAB credential the CA made single-use is not needed twice.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from acmefleet.ca._files import PRIVATE_FILE, make_private_dir, write_atomic
from acmefleet.config import UpstreamConfig
from acmefleet.upstream.account_key import load_account_key, read_private_file
from acmefleet.upstream.client import UpstreamClient
from acmefleet.upstream.dns01 import Rfc2136Publisher, Rfc2136Target
from acmefleet.upstream.errors import AccountKeyError, UpstreamError

log = logging.getLogger(__name__)
ACCOUNT_FILE = "account.json"
MAX_SECRET = 4096


@dataclass(frozen=True)
class UpstreamAccount:
    url: str
    how: str  # "kept" (account.json), "found" (onlyReturnExisting) or "registered"


def upstream_dir(data_dir: Path, upstream: UpstreamConfig) -> Path:
    return data_dir / "upstreams" / upstream.name


def _under(data_dir: Path, path: Path) -> Path:
    return path if path.is_absolute() else data_dir / path


def account_key_path(data_dir: Path, upstream: UpstreamConfig) -> Path:
    if upstream.account_key is not None:
        return _under(data_dir, upstream.account_key)
    return upstream_dir(data_dir, upstream) / "account.key"


def eab_credential(data_dir: Path, upstream: UpstreamConfig) -> tuple[str, str] | None:
    """(kid, HMAC key) of the upstream's EAB, or None when it asks for none."""
    if upstream.eab_kid is None:
        return None
    if upstream.eab_hmac_key_file is not None:
        path = _under(data_dir, upstream.eab_hmac_key_file)
        raw = read_private_file(path, MAX_SECRET)
        try:
            hmac_key = raw.decode("ascii").strip()
        except UnicodeDecodeError as exc:
            raise AccountKeyError(f"{path} is not a base64url HMAC key") from exc
    else:
        assert upstream.eab_hmac_key_env is not None  # config.py requires one of the two
        hmac_key = os.environ.get(upstream.eab_hmac_key_env, "").strip()
        if not hmac_key:
            raise AccountKeyError(
                f"upstream {upstream.name}: ${upstream.eab_hmac_key_env} is not set"
            )
    return upstream.eab_kid, hmac_key


def trust(data_dir: Path, upstream: UpstreamConfig) -> ssl.SSLContext:
    """TLS 1.2+, verifying the upstream against its bundle or the system's trust store."""
    if upstream.ca_bundle is None:
        context = ssl.create_default_context()
    else:
        context = ssl.create_default_context(cafile=str(_under(data_dir, upstream.ca_bundle)))
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def dns_publisher(data_dir: Path, upstream: UpstreamConfig) -> Rfc2136Publisher | None:
    settings = upstream.dns01
    if settings is None:
        return None
    path = _under(data_dir, settings.secret_file)
    secret = read_private_file(path, MAX_SECRET).decode("ascii", "replace").strip()
    try:
        return Rfc2136Publisher(
            Rfc2136Target(
                settings.server,
                settings.port,
                settings.key_name,
                settings.algorithm,
                secret,
                settings.zone,
                timeout=upstream.timeout,
                propagation=settings.propagation_seconds,
            )
        )
    except ValueError as exc:
        raise AccountKeyError(f"{path}: {exc}") from None


def _kept_account(data_dir: Path, upstream: UpstreamConfig, thumbprint: str) -> str | None:
    """The account URL kept for this directory and key, if any."""
    path = upstream_dir(data_dir, upstream) / ACCOUNT_FILE
    try:
        kept = json.loads(read_private_file(path, MAX_SECRET))
    except (AccountKeyError, ValueError):
        return None
    if (
        isinstance(kept, dict)
        and kept.get("directory_url") == upstream.directory_url
        and kept.get("key_thumbprint") == thumbprint
        and isinstance(kept.get("url"), str)
    ):
        return str(kept["url"])
    return None


def _keep_account(data_dir: Path, upstream: UpstreamConfig, thumbprint: str, url: str) -> None:
    folder = upstream_dir(data_dir, upstream)
    make_private_dir(folder)
    body = {"directory_url": upstream.directory_url, "key_thumbprint": thumbprint, "url": url}
    write_atomic(folder / ACCOUNT_FILE, json.dumps(body, indent=2).encode(), PRIVATE_FILE)


def open_client(data_dir: Path, upstream: UpstreamConfig, *, create_key: bool) -> UpstreamClient:
    """A client for ``upstream`` with its account key (made now with ``create_key``)."""
    key_path = account_key_path(data_dir, upstream)
    if create_key:
        make_private_dir(key_path.parent)
    signer = load_account_key(key_path, create=create_key)
    return UpstreamClient(
        upstream.directory_url,
        signer,
        verify=trust(data_dir, upstream),
        timeout=upstream.timeout,
        account_url=_kept_account(data_dir, upstream, signer.thumbprint),
    )


async def bind_account(
    client: UpstreamClient, data_dir: Path, upstream: UpstreamConfig
) -> UpstreamAccount:
    """Give ``client`` its account: kept, found again by its key, or registered now."""
    if client.account_url is not None:
        return UpstreamAccount(client.account_url, "kept")
    thumbprint = client.signer.thumbprint
    found = await client.find_account()
    if found is not None:
        _keep_account(data_dir, upstream, thumbprint, found)
        return UpstreamAccount(found, "found")
    eab = eab_credential(data_dir, upstream)
    directory = await client.directory()
    meta = directory.get("meta")
    if eab is None and isinstance(meta, dict) and meta.get("externalAccountRequired"):
        raise UpstreamError(
            f"upstream {upstream.name} requires External Account Binding: set eab_kid and "
            "eab_hmac_key_file (or eab_hmac_key_env)"
        )
    url = await client.register(contact=upstream.contact, eab=eab)
    _keep_account(data_dir, upstream, thumbprint, url)
    return UpstreamAccount(url, "registered")


async def ensure_account(data_dir: Path, upstream: UpstreamConfig) -> UpstreamAccount:
    """The upstream account of this server: kept, found again, or registered now."""
    async with open_client(data_dir, upstream, create_key=True) as client:
        return await bind_account(client, data_dir, upstream)


def account_forgetter(
    client: UpstreamClient, data_dir: Path, upstream: UpstreamConfig
) -> Callable[[], None]:
    """Drop the account kept for ``upstream`` (the upstream said it does not know it)."""

    def forget() -> None:
        client.account_url = None
        (upstream_dir(data_dir, upstream) / ACCOUNT_FILE).unlink(missing_ok=True)
        log.warning(
            "upstream %s: the account is unknown there; it will be bound again", upstream.name
        )

    return forget


def account_binder(
    client: UpstreamClient, data_dir: Path, upstream: UpstreamConfig
) -> Callable[[], Awaitable[None]]:
    """What the relay calls before each attempt: binds the account once (one attempt at a
    time: two relayed orders must not register two accounts), then nothing."""
    lock = asyncio.Lock()

    async def ensure() -> None:
        if client.account_url is not None:
            return
        async with lock:
            if client.account_url is None:
                account = await bind_account(client, data_dir, upstream)
                log.info("upstream %s: account %s (%s)", upstream.name, account.url, account.how)

    return ensure
