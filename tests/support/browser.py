"""Headless Chromium (Debian's /usr/bin/chromium) driven by Playwright for the web console tests.

Trust, without ``ignore_https_errors`` (which would hide every certificate error):

- the browser accepts exactly the server's own TLS key, by the SHA-256 of its
  SubjectPublicKeyInfo (``--ignore-certificate-errors-spki-list``), read from the running
  server; Chromium honours the flag because Playwright always passes ``--user-data-dir``;
- Playwright's own HTTP client (``context.request``, used for forged POSTs) runs in its Node
  driver, which trusts the server's CA bundle through ``NODE_EXTRA_CA_CERTS``.
"""

from __future__ import annotations

import base64
import hashlib
import os
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, sync_playwright

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"


def spki_sha256(host: str, port: int) -> str:
    """Base64 SHA-256 of the SubjectPublicKeyInfo of the certificate served at host:port."""
    pem = ssl.get_server_certificate((host, port))
    spki = (
        x509.load_pem_x509_certificate(pem.encode())
        .public_key()
        .public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    )
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()


@contextmanager
def chromium(pinned_spki: str, ca_bundle: Path) -> Iterator[Browser]:
    """Headless Chromium that accepts the one pinned server key; raises if it cannot start."""
    saved = os.environ.get("NODE_EXTRA_CA_CERTS")
    os.environ["NODE_EXTRA_CA_CERTS"] = str(ca_bundle)  # read once, when the driver starts
    try:
        playwright: Playwright = sync_playwright().start()
    finally:
        if saved is None:
            del os.environ["NODE_EXTRA_CA_CERTS"]
        else:
            os.environ["NODE_EXTRA_CA_CERTS"] = saved
    with _launched(playwright, f"--ignore-certificate-errors-spki-list={pinned_spki}") as browser:
        yield browser


@contextmanager
def local_chromium() -> Iterator[Browser]:
    """Headless Chromium for local files (a rendered report page): no server, no trust to pin."""
    with _launched(sync_playwright().start()) as browser:
        yield browser


@contextmanager
def _launched(playwright: Playwright, *extra_args: str) -> Iterator[Browser]:
    """Chromium launched by a started ``playwright``; both stopped when the block ends."""
    try:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=[*CHROMIUM_ARGS, *extra_args]
        )
        try:
            yield browser
        finally:
            browser.close()
    finally:
        playwright.stop()


@dataclass
class Session:
    """One fresh browser context (own cookies and storage) and the URLs it requested."""

    context: BrowserContext
    page: Page
    base_url: str
    requested: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)  # CSP violations land here too

    def goto(self, path: str) -> Any:
        return self.page.goto(self.base_url + path)

    def screenshot(self, name: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def csrf(self) -> str:
        """The page's CSRF token (every signed-in page has one in the sign-out form)."""
        value = self.page.locator("input[name=csrf_token]").first.get_attribute("value")
        assert value
        return value


@contextmanager
def browser_session(browser: Browser, base_url: str) -> Iterator[Session]:
    context = browser.new_context(viewport={"width": 1280, "height": 800}, base_url=base_url)
    context.set_default_timeout(10_000)
    try:
        page = context.new_page()
        session = Session(context, page, base_url)
        page.on("request", lambda request: session.requested.append(request.url))
        page.on(
            "console",
            lambda message: (
                session.console_errors.append(message.text) if message.type == "error" else None
            ),
        )
        yield session
    finally:
        context.close()
