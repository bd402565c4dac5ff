"""``acmefleet server run``: HTTPS for ACME and plain HTTP for /pki/, in one or more workers.

The parent binds both sockets, then each worker serves both on the shared sockets, so
workers hold no state of their own (everything shared lives in the database).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import signal
import socket
from collections.abc import Generator
from pathlib import Path
from types import FrameType

import uvicorn

from acmefleet.acme.app import AcmeApp
from acmefleet.config import load_config, public_pki_warnings
from acmefleet.console.app import build_console
from acmefleet.server.app import ServerApp
from acmefleet.server.build import build_context, console_context_of
from acmefleet.server.datadir import require_initialised
from acmefleet.server.edge import HSTS, edge_loop, limited_protocol, tls_context
from acmefleet.store.migrate import upgrade

log = logging.getLogger(__name__)


class ListenError(ValueError):
    pass


class WorkerError(RuntimeError):
    """A worker process died: the server must exit non-zero so its supervisor restarts it."""


def parse_listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ListenError(f"--listen must be HOST:PORT, not {value!r}")
    return host.strip("[]") or "0.0.0.0", int(port)  # noqa: S104 - the user asked for all


def bind(value: str) -> socket.socket:
    host, port = parse_listen(value)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ListenError(f"cannot listen on {value}: {exc.strerror}") from exc
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


class _QuietServer(uvicorn.Server):
    """The second listener of a worker: the first one owns the signal handlers."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


async def _serve(
    root: Path, https_sock: socket.socket, http_sock: socket.socket | None, log_level: str
) -> None:
    ctx = build_context(root)
    data = require_initialised(root)
    for warning in public_pki_warnings(ctx.config):
        log.warning(warning)
    limits = ctx.config.limits
    common = {
        "log_level": log_level,
        "access_log": False,
        "http": limited_protocol(limits),  # httptools, with acmefleet's limits (server/edge.py)
        "ws": "none",
        "loop": "uvloop",
        "timeout_keep_alive": limits.idle_timeout,
        "server_header": False,
        # Client addresses come from the socket unless a trusted proxy sent them.
        "proxy_headers": bool(ctx.config.trusted_proxies),
        "forwarded_allow_ips": list(ctx.config.trusted_proxies) or None,
    }
    main = uvicorn.Server(
        uvicorn.Config(
            ServerApp(AcmeApp(ctx), build_console(console_context_of(ctx))),
            ssl_certfile=str(data.tls_cert),
            ssl_keyfile=str(data.tls_key),
            ssl_context_factory=tls_context,
            headers=[HSTS],  # on every HTTPS answer, uvicorn's own errors included
            lifespan="on",
            **common,  # type: ignore[arg-type]
        )
    )
    tasks = [asyncio.create_task(main.serve(sockets=[https_sock]))]
    if http_sock is not None:
        pki = _QuietServer(uvicorn.Config(AcmeApp(ctx, pki_only=True), lifespan="off", **common))  # type: ignore[arg-type]
        tasks.append(asyncio.create_task(pki.serve(sockets=[http_sock])))
        await tasks[0]
        pki.should_exit = True
    await asyncio.gather(*tasks)


def _worker(
    root: Path, https_sock: socket.socket, http_sock: socket.socket | None, log_level: str
) -> None:
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    import uvloop

    loop = edge_loop(load_config(root).limits)
    uvloop.run(_serve(root, https_sock, http_sock, log_level), loop_factory=loop)


def run(root: Path, *, listen: str, pki_listen: str | None, workers: int, log_level: str) -> None:
    data = require_initialised(root)
    database = data.open_database()
    try:
        upgrade(database)
    finally:
        database.dispose()
    build_context(root).db.dispose()  # fail before binding: keys, passphrase, configuration
    https_sock = bind(listen)
    http_sock = bind(pki_listen) if pki_listen else None
    if workers <= 1:
        _worker(root, https_sock, http_sock, log_level)
        return
    spawn = multiprocessing.get_context("spawn")
    processes = [
        spawn.Process(
            target=_worker,
            args=(root, https_sock, http_sock, log_level),
            name=f"acmefleet-worker-{n}",
        )
        for n in range(workers)
    ]
    for process in processes:
        process.start()

    def _stop(signum: int, _frame: FrameType | None) -> None:
        for process in processes:
            if process.is_alive():
                process.terminate()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    for process in processes:
        process.join()
    crashed = [p.exitcode for p in processes if p.exitcode not in (0, -signal.SIGTERM)]
    if crashed:
        raise WorkerError(f"{len(crashed)} worker(s) stopped with an error (exit {crashed[0]})")
