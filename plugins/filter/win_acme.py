# Copyright: acmefleet developers
# Apache License 2.0
"""Filters that build win-acme (wacs.exe) command lines and names, as win-acme 2.2 derives them.

Pure functions, so the role's rendering can be checked without a Windows host
(tests/unit/test_win_acme_commands.py calls them directly).
"""

from __future__ import annotations

import hashlib
import re
import string
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from ansible.errors import AnsibleFilterError

# System.IO.Path.GetInvalidFileNameChars() on Windows: ", <, >, |, NUL, 1-31, :, *, ?, \, /
_INVALID_FILE_NAME_CHARS = frozenset('"<>|:*?\\/' + "".join(chr(c) for c in range(32)))

# wacs.exe arguments whose value is a secret (AccountArguments.EabKey is Secret = true).
SECRET_ARGUMENTS = frozenset({"--eab-key"})
CENSORED = "********"

_DEFAULT_PORTS = {"https": 443, "http": 80}
_ESCAPE = re.compile(r"%([0-9A-Fa-f]{2})")
# RFC 3986 unreserved characters: System.Uri shows their percent-escapes decoded.
_UNRESERVED = frozenset(string.ascii_letters + string.digits + "-._~")


def _dotnet_uri_string(uri: str) -> str:
    """``new System.Uri(uri).ToString()`` for the absolute http(s) URLs an ACME server has.

    What .NET's canonical form changes and this copies: surrounding blanks trimmed, scheme
    and host lower-cased, the scheme's default port (443 for https, 80 for http) dropped,
    back slashes in the path turned into slashes, ``.``/``..`` segments removed, an empty path
    made ``/``, percent-escapes of unreserved characters decoded (other escapes are kept as
    given; an ACME directory URL has none). User info, query and fragment are kept here
    (``CleanUri`` removes the user info itself).
    """
    text = str(uri).strip()
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.netloc:
        raise AnsibleFilterError(f"win_acme_clean_base_uri: {uri!r} is not an http(s) URL")
    try:
        port = parts.port
    except ValueError as exc:
        raise AnsibleFilterError(f"win_acme_clean_base_uri: {uri!r}: {exc}") from exc
    host = parts.hostname or ""
    if ":" in host:  # IPv6 literal: urlsplit drops the brackets
        host = f"[{host}]"
    netloc = host if port in (None, _DEFAULT_PORTS[scheme]) else f"{host}:{port}"
    userinfo = parts.netloc.rpartition("@")[0] if "@" in parts.netloc else ""
    if userinfo:
        netloc = f"{userinfo}@{netloc}"
    path = _ESCAPE.sub(_decode_unreserved, parts.path.replace("\\", "/"))
    path = _remove_dot_segments(path) or "/"
    out = f"{scheme}://{netloc}{path}"
    if parts.query or text.split("#", 1)[0].endswith("?"):
        out += f"?{parts.query}"
    if parts.fragment or text.endswith("#"):
        out += f"#{parts.fragment}"
    return out


def _decode_unreserved(match: re.Match[str]) -> str:
    char = chr(int(match.group(1), 16))
    return char if char in _UNRESERVED else match.group(0)


def _remove_dot_segments(path: str) -> str:
    """RFC 3986 section 5.2.4, which .NET applies to http(s) paths."""
    out: list[str] = []
    segments = path.split("/")
    for i, seg in enumerate(segments):
        last = i == len(segments) - 1
        if seg == ".":
            if last:
                out.append("")
        elif seg == "..":
            if len(out) > 1:
                out.pop()
            if last:
                out.append("")
        else:
            out.append(seg)
    return "/".join(out)


def clean_base_uri(uri: str) -> str:
    """win-acme's ``StringExtensions.CleanUri(Uri)`` of the ``--baseuri`` value.

    win-acme 2.2 parses ``--baseuri`` into a ``System.Uri`` and names its configuration folder
    (``%ProgramData%\\win-acme\\<this>``) and its scheduled task (``win-acme renew (<this>)``)
    after ``uri.ToString()`` with the user info and every ``https://``/``http://`` removed and
    then every character invalid in a file name (``CleanPath``). So the host is lower-cased
    and ``:443`` disappears, exactly as on the host.
    """
    text = _dotnet_uri_string(uri)
    userinfo = urlsplit(text).netloc.rpartition("@")[0]
    if userinfo:
        text = text.replace(f"{userinfo}@", "")
    text = text.replace("https://", "").replace("http://", "")
    return "".join(c for c in text if c not in _INVALID_FILE_NAME_CHARS)


def renewal_id(base_uri: str, selection: Sequence[Any]) -> str:
    """A stable renewal id (--id) for one server and one selection of sites/hosts/plugins.

    The same server and selection give the same id, hence the same
    ``<ConfigurationPath>\\<id>.renewal.json``: that file's presence is how the role knows the
    renewal already exists.
    """
    material = "\n".join([str(base_uri), *(str(item) for item in selection)])
    return "acmefleet-" + hashlib.sha256(material.encode()).hexdigest()[:16]


def _csv(values: Any, name: str) -> str:
    if isinstance(values, str | int):
        values = [values]
    items = [str(v).strip() for v in values or []]
    if any(not v or "," in v or " " in v for v in items):
        raise AnsibleFilterError(f"win_acme_argv: {name} must be a list of values without commas")
    return ",".join(items)


def wacs_argv(options: Mapping[str, Any]) -> list[str]:
    """The unattended ``wacs.exe`` argument vector for a new renewal.

    ``options`` keys: exe, baseuri, id, friendlyname, email, eab_kid, eab_key, eab_algorithm,
    csr, plugin_args (source/validation/store/installation arguments from the stack role),
    verbose. Arguments and their meaning: https://www.win-acme.com/reference/cli
    """
    for key in ("exe", "baseuri", "id", "plugin_args"):
        if not options.get(key):
            raise AnsibleFilterError(f"win_acme_argv: '{key}' is required")
    plugin_args = [str(a) for a in options["plugin_args"]]
    if not plugin_args or plugin_args[0] != "--source":
        raise AnsibleFilterError("win_acme_argv: plugin_args must start with --source")
    argv = [str(options["exe"]), "--baseuri", str(options["baseuri"])]
    argv += plugin_args
    argv += ["--id", str(options["id"])]
    if options.get("friendlyname"):
        argv += ["--friendlyname", str(options["friendlyname"])]
    if options.get("csr"):
        argv += ["--csr", str(options["csr"])]
    argv += ["--accepttos"]
    if options.get("email"):
        argv += ["--emailaddress", str(options["email"])]
    kid, key = options.get("eab_kid") or "", options.get("eab_key") or ""
    if bool(kid) != bool(key):
        raise AnsibleFilterError("win_acme_argv: eab_kid and eab_key go together")
    if kid:
        argv += ["--eab-key-identifier", str(kid), "--eab-key", str(key)]
        if options.get("eab_algorithm"):
            argv += ["--eab-algorithm", str(options["eab_algorithm"])]
    if options.get("verbose"):
        argv += ["--verbose"]
    argv += ["--closeonfinish"]
    return argv


def censor_argv(argv: Sequence[str]) -> list[str]:
    """The argument vector with secret values replaced (as win-acme logs its command line).

    A ``vault://`` reference is no secret and is shown.
    """
    shown: list[str] = []
    hide = False
    for arg in argv:
        if hide and not str(arg).startswith("vault://"):
            shown.append(CENSORED)
        else:
            shown.append(str(arg))
        hide = str(arg).lower() in SECRET_ARGUMENTS
    return shown


def iis_plugin_args(
    site_ids: Sequence[Any], hosts: Sequence[str], ssl_port: int = 443
) -> list[str]:
    """Source, store and installation arguments of the IIS stack (source and installation iis)."""
    if not site_ids and not hosts:
        raise AnsibleFilterError("win_acme_iis_plugin_args: give site ids, host names or both")
    args = ["--source", "iis"]
    if site_ids:
        args += ["--siteid", _csv(site_ids, "site ids")]
    if hosts:
        args += ["--host", _csv(hosts, "host names")]
    args += ["--store", "certificatestore", "--installation", "iis"]
    if int(ssl_port) != 443:
        args += ["--sslport", str(int(ssl_port))]
    return args


# What --pemfilesname may be here: a file name prefix that needs no quoting in
# --scriptparameters (win-acme itself would turn a '*' into '_').
_PEM_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]*$")


def apache_pem_name(names: Sequence[str], pem_name: str = "") -> str:
    """The ``--pemfilesname`` of the Apache stack: ``pem_name``, else the first DNS name.

    win-acme's PemFiles store names its files ``<name>-chain.pem``/``<name>-key.pem`` with
    ``name = --pemfilesname ?? subject CN ?? first SAN`` (``*`` → ``_``), while the script
    token ``{CertCommonName}`` is only the subject CN, empty for a certificate without one
    (acmefleet's public endpoint). So the role fixes the name and hands the same name to the
    installation script.
    """
    name = str(pem_name or "") or (str(names[0]).replace("*", "_") if names else "")
    if not _PEM_NAME.match(name):
        raise AnsibleFilterError(
            f"win_acme_apache_pem_name: {name!r} must be letters, digits, '.', '-' and '_'"
        )
    return name


def apache_plugin_args(
    hosts: Sequence[str], webroot: str, pem_dir: str, script: str, pem_name: str = ""
) -> list[str]:
    """Source, validation, store and installation arguments of the Apache stack.

    The certificate goes to .pem files (``--store pemfiles``) named ``--pemfilesname``; the
    installation script gets that same name and the .pem folder (win-acme's ``{StorePath}``).
    """
    if not hosts:
        raise AnsibleFilterError("win_acme_apache_plugin_args: host names are required")
    name = apache_pem_name(hosts, pem_name)
    return [
        "--source",
        "manual",
        "--host",
        _csv(hosts, "host names"),
        "--validation",
        "filesystem",
        "--webroot",
        str(webroot),
        "--store",
        "pemfiles",
        "--pemfilespath",
        str(pem_dir),
        "--pemfilesname",
        name,
        "--installation",
        "script",
        "--script",
        str(script),
        "--scriptparameters",
        f"-PemFilesName '{name}' -StorePath '{{StorePath}}'",
    ]


# PowerShell's tokenizer takes the typographic single quotes for ' too (its own
# CodeGeneration.EscapeSingleQuotedStringContent doubles all of them): one left undoubled
# would end the literal.
_PS_SINGLE_QUOTES = re.compile("['\u2018\u2019\u201a\u201b]")


def ps_quote(value: Any) -> str:
    """A PowerShell single-quoted string literal (quotes doubled, nothing expanded)."""
    return "'" + _PS_SINGLE_QUOTES.sub(lambda m: m.group(0) * 2, str(value)) + "'"


def ps_argv(argv: Sequence[str]) -> str:
    """A PowerShell call of the argument vector: ``& 'exe' 'arg' ...`` (for display and tests)."""
    return "& " + " ".join(ps_quote(a) for a in argv)


def apache_path(value: Any) -> str:
    """A Windows path as Apache wants it in its configuration (forward slashes)."""
    return str(value).replace("\\", "/")


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {
            "win_acme_clean_base_uri": clean_base_uri,
            "win_acme_renewal_id": renewal_id,
            "win_acme_argv": wacs_argv,
            "win_acme_censor_argv": censor_argv,
            "win_acme_iis_plugin_args": iis_plugin_args,
            "win_acme_apache_plugin_args": apache_plugin_args,
            "win_acme_ps_quote": ps_quote,
            "win_acme_ps_argv": ps_argv,
            "win_acme_apache_path": apache_path,
        }
