"""Where an admin command works: a data directory (local) or a server's REST API (remote).

Local: ``--data-dir`` or ``ACMEFLEET_DATA_DIR``. Remote: ``--url`` or ``ACMEFLEET_URL`` or ``url``
in the CLI configuration file (``~/.config/acmefleet/cli.toml``, or ``ACMEFLEET_CLI_CONFIG``),
with the token from ``--token-file``/``ACMEFLEET_TOKEN_FILE``, ``ACMEFLEET_TOKEN``, or the
configuration's ``token_file`` or ``token``, and the CA bundle from ``--ca-bundle``,
``ACMEFLEET_CA_BUNDLE`` or ``ca_bundle``. Never a token on the command line: other users
can read it there. The configuration file is not read in local mode.
"""

from __future__ import annotations

import os
import stat
import tomllib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from acmefleet.cli.common import actor, fail, register_secret, usage_error
from acmefleet.console.client import ApiError, check_token, normalise_url
from acmefleet.console.errors import ConsoleError

if TYPE_CHECKING:
    from acmefleet.cli.backend import Backend
    from acmefleet.cli.local import LocalBackend

F = TypeVar("F", bound=Callable[..., Any])

CONFIG_ENV = "ACMEFLEET_CLI_CONFIG"
TOKEN_ENV = "ACMEFLEET_TOKEN"  # noqa: S105 - a variable name
CONFIG_KEYS = ("url", "token", "token_file", "ca_bundle")
MAX_TOKEN_FILE = 64 * 1024
_META = "acmefleet.connection"
_TARGET = "acmefleet.target"


class SetupError(Exception):
    """The connection settings are wrong; ``code`` 2 when it is a usage error."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def _remember(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    ctx.meta.setdefault(_META, {})[param.name] = value
    return value


_OPTIONS = (
    click.option(
        "--data-dir",
        type=click.Path(path_type=Path, file_okay=False),
        envvar="ACMEFLEET_DATA_DIR",
        expose_value=False,
        callback=_remember,
        help="Work on this server data directory (local mode; env ACMEFLEET_DATA_DIR).",
    ),
    click.option(
        "--url",
        metavar="URL",
        envvar="ACMEFLEET_URL",
        expose_value=False,
        callback=_remember,
        help="Work on the server at URL over its REST API, e.g. https://acme.example.net:8555 "
        "(remote mode; env ACMEFLEET_URL, or url in the CLI configuration file).",
    ),
    click.option(
        "--token-file",
        type=click.Path(path_type=Path, dir_okay=False),
        envvar="ACMEFLEET_TOKEN_FILE",
        expose_value=False,
        callback=_remember,
        help="File holding the API token (or env ACMEFLEET_TOKEN_FILE, ACMEFLEET_TOKEN).",
    ),
    click.option(
        "--ca-bundle",
        type=click.Path(path_type=Path, dir_okay=False),
        envvar="ACMEFLEET_CA_BUNDLE",
        expose_value=False,
        callback=_remember,
        help="CA certificates that verify the server (env ACMEFLEET_CA_BUNDLE; "
        "default: the system's trust store).",
    ),
)


def connection_options(func: F) -> F:
    """``--data-dir`` or ``--url`` (+ ``--token-file``, ``--ca-bundle``) on an admin command."""
    for option in reversed(_OPTIONS):
        func = option(func)
    return func


@dataclass(frozen=True)
class LocalTarget:
    data_dir: Path


@dataclass(frozen=True)
class RemoteTarget:
    url: str
    token: str = field(repr=False)
    ca_bundle: Path | None


@dataclass(frozen=True)
class CliConfig:
    path: Path
    url: str | None = None
    token: str | None = field(default=None, repr=False)
    token_file: Path | None = None
    ca_bundle: Path | None = None


def config_path() -> tuple[Path, bool]:
    """The CLI configuration file, and whether the environment named it."""
    named = os.environ.get(CONFIG_ENV)
    if named:
        return Path(named).expanduser(), True
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path("~/.config").expanduser())
    return Path(base) / "acmefleet" / "cli.toml", False


def _path_value(config: Path, value: str) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else config.parent / path


def load_cli_config() -> CliConfig | None:
    path, named = config_path()
    try:
        with path.open("rb") as handle:
            mode = os.fstat(handle.fileno()).st_mode
            raw = handle.read(MAX_TOKEN_FILE)
    except FileNotFoundError:
        if named:
            raise SetupError(f"{CONFIG_ENV} names {path}, which does not exist") from None
        return None
    except OSError as exc:
        raise SetupError(f"cannot read {path}: {exc.strerror}") from exc
    try:
        data = tomllib.loads(raw.decode())
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise SetupError(f"{path} is not valid TOML: {exc}") from exc
    unknown = sorted(set(data) - set(CONFIG_KEYS))
    if unknown:
        raise SetupError(f"{path}: unknown key {unknown[0]!r} (known: {', '.join(CONFIG_KEYS)})")
    for key, value in data.items():
        if not isinstance(value, str) or not value.strip():
            raise SetupError(f"{path}: {key} must be a non-empty string")
    if "token" in data and stat.S_IMODE(mode) & 0o077:
        raise SetupError(
            f"refusing to use {path}: it holds a token and its mode "
            f"{stat.S_IMODE(mode):04o} lets other users read it (chmod 600 {path}, "
            "or keep the token in a token_file)"
        )
    if "token" in data and "token_file" in data:
        raise SetupError(f"{path}: give token or token_file, not both")
    return CliConfig(
        path=path,
        url=data.get("url"),
        token=data.get("token"),
        token_file=_path_value(path, data["token_file"]) if "token_file" in data else None,
        ca_bundle=_path_value(path, data["ca_bundle"]) if "ca_bundle" in data else None,
    )


def read_token_file(path: Path) -> str:
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_TOKEN_FILE)
    except OSError as exc:
        raise SetupError(f"cannot read the token file {path}: {exc.strerror}") from exc
    try:
        return check_token(raw.decode(), f"the token file {path}")
    except (UnicodeDecodeError, ApiError) as exc:
        raise SetupError(
            str(exc) if isinstance(exc, ApiError) else f"the token file {path} is not text"
        ) from exc


def _same_server(a: str, b: str) -> bool:
    try:
        return normalise_url(a) == normalise_url(b)
    except ApiError:
        return False


def _token(options: dict[str, Any], url: str, config: CliConfig | None) -> str:
    token_file: Path | None = options.get("token_file")
    if token_file is not None:
        return read_token_file(token_file)
    from_env = os.environ.get(TOKEN_ENV)
    if from_env:
        try:
            return check_token(from_env, TOKEN_ENV)
        except ApiError as exc:
            raise SetupError(str(exc)) from exc
    # The configuration's token goes to the configuration's server only.
    if config is not None and (config.url is None or _same_server(url, config.url)):
        if config.token_file is not None:
            return read_token_file(config.token_file)
        if config.token is not None:
            try:
                return check_token(config.token, str(config.path))
            except ApiError as exc:
                raise SetupError(str(exc)) from exc
    raise SetupError(
        f"no API token for {url}: give --token-file FILE or set {TOKEN_ENV} "
        f"(or token_file in {config_path()[0]})",
        2,
    )


def resolve(options: dict[str, Any]) -> LocalTarget | RemoteTarget:
    data_dir: Path | None = options.get("data_dir")
    url: str | None = options.get("url")
    if data_dir is not None and url is not None:
        raise SetupError(
            "give --data-dir (local mode) or --url (remote mode), not both "
            "(check ACMEFLEET_DATA_DIR and ACMEFLEET_URL)",
            2,
        )
    if data_dir is not None:
        return LocalTarget(data_dir)
    config = load_cli_config()
    url = url or (config.url if config else None)
    if not url:
        raise SetupError(
            "no server: give --data-dir DIR (local mode) or --url URL (remote mode), "
            f"or set url in {config_path()[0]}",
            2,
        )
    try:
        url = normalise_url(url)
    except ApiError as exc:
        raise SetupError(str(exc), 2) from exc
    token = _token(options, url, config)
    ca_bundle = options.get("ca_bundle") or (config.ca_bundle if config else None)
    return RemoteTarget(url, token, ca_bundle)


def current_target() -> LocalTarget | RemoteTarget:
    """The command's target, resolved once (a usage error ends the command, exit 2)."""
    meta = click.get_current_context().meta
    if _TARGET not in meta:
        try:
            meta[_TARGET] = resolve(meta.get(_META, {}))
        except SetupError as exc:
            fail(str(exc), exc.code)
    found: LocalTarget | RemoteTarget = meta[_TARGET]
    return found


def describe(exc: Exception) -> str:
    """One line for an expected error; SQLAlchemy's own messages run over several."""
    original = getattr(exc, "orig", None)
    if original is not None:
        first = str(original).strip().splitlines()
        return f"database error: {first[0] if first else type(original).__name__}"
    return str(exc) or type(exc).__name__


@contextmanager
def _local(target: LocalTarget) -> Iterator[LocalBackend]:
    from acmefleet.cli.local import LOCAL_ERRORS, LocalBackend

    try:
        with LocalBackend(target.data_dir, actor=actor()) as backend:
            yield backend
    except LOCAL_ERRORS as exc:
        fail(describe(exc))


@contextmanager
def open_backend() -> Iterator[Backend]:
    """The command's backend; any expected error ends the command with one line, exit 1.

    Local mode: one transaction, committed when the ``with`` block ends without an error.
    """
    target = current_target()
    if isinstance(target, LocalTarget):
        with _local(target) as local:
            yield local
        return
    from acmefleet.console.client import RemoteBackend

    register_secret(target.token)
    try:
        with RemoteBackend(target.url, target.token, ca_bundle=target.ca_bundle) as remote:
            yield remote
    except (ConsoleError, OSError) as exc:
        fail(str(exc))


@contextmanager
def open_local(what: str) -> Iterator[LocalBackend]:
    """For what only the data directory can do (console tokens)."""
    data_dir = click.get_current_context().meta.get(_META, {}).get("data_dir")
    if data_dir is None:
        usage_error(f"{what} work on the server's data directory only: give --data-dir DIR")
    target = current_target()
    assert isinstance(target, LocalTarget)
    with _local(target) as local:
        yield local
