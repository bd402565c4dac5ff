"""win-acme command lines and PowerShell scripts of the Windows roles, checked on paper.

No Windows host runs here: these tests hold what the roles would run against win-acme 2.2's
documented interface (reference/cli.md, reference/plugins/*.md, reference/settings.md of
win-acme.github.io) and its source (JsonSecretService, ProtectedString, TaskSchedulerService,
StringExtensions.CleanBaseUri). The filter plugin is called directly.
"""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path
from types import ModuleType

import pytest
import yaml
from ansible.errors import AnsibleFilterError

ROOT = Path(__file__).resolve().parents[2]
ROLES = ROOT / "roles"


def _load_filters() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "win_acme_filters", ROOT / "plugins" / "filter" / "win_acme.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


wa = _load_filters()

# win-acme 2.2's documented arguments that the roles use: name -> takes a value.
# Source: https://www.win-acme.com/reference/cli (Main, Account, IIS source, Manual source,
# IIS and Script installation, PemFiles and CertificateStore store, FileSystem validation).
DOCUMENTED = {
    "--baseuri": True,
    "--id": True,
    "--friendlyname": True,
    "--source": True,
    "--validation": True,
    "--csr": True,
    "--store": True,
    "--installation": True,
    "--closeonfinish": False,
    "--setuptaskscheduler": False,
    "--verbose": False,
    "--accepttos": False,
    "--emailaddress": True,
    "--eab-key-identifier": True,
    "--eab-key": True,
    "--eab-algorithm": True,
    "--siteid": True,
    "--host": True,
    "--sslport": True,
    "--script": True,
    "--scriptparameters": True,
    "--pemfilespath": True,
    "--pemfilesname": True,
    "--webroot": True,
}
# Plugin names each of these arguments accepts (win-acme's plugin references).
PLUGINS = {
    "--source": {"iis", "manual"},
    "--validation": {"filesystem", "selfhosting"},
    "--store": {"certificatestore", "pemfiles"},
    "--installation": {"iis", "script"},
    "--csr": {"ec", "rsa"},
}
# Tokens the script installation plugin replaces (reference/plugins/installation/script.md).
SCRIPT_TOKENS = {
    "{CertCommonName}",
    "{CachePassword}",
    "{CacheFile}",
    "{CertFriendlyName}",
    "{CertThumbprint}",
    "{RenewalId}",
    "{StorePath}",
    "{StoreType}",
}

SERVER = "https://acme1.example.net:8555/acme/private/directory"
EXE = r"C:\Program Files\win-acme\wacs.exe"


def parse(argv: list[str]) -> dict[str, str | None]:
    """Pair each documented flag with its value; fail on anything undocumented."""
    assert argv[0].lower().endswith("wacs.exe")
    seen: dict[str, str | None] = {}
    i = 1
    while i < len(argv):
        flag = argv[i]
        assert flag in DOCUMENTED, f"{flag} is not a documented win-acme argument"
        assert flag not in seen, f"{flag} given twice"
        if DOCUMENTED[flag]:
            value = argv[i + 1]
            assert not value.startswith("--"), f"{flag} lacks its value"
            seen[flag] = value
            i += 2
        else:
            seen[flag] = None
            i += 1
    for flag, names in PLUGINS.items():
        if flag in seen:
            assert set(str(seen[flag]).split(",")) <= names, f"{flag} {seen[flag]}"
    return seen


def options(**extra: object) -> dict[str, object]:
    return {
        "exe": EXE,
        "baseuri": SERVER,
        "id": "acmefleet-0123456789abcdef",
        "friendlyname": "acmefleet www.example.com",
        "csr": "ec",
        "email": "ops@example.com",
        "plugin_args": wa.iis_plugin_args(["1"], ["www.example.com", "example.com"]),
        **extra,
    }


def test_clean_base_uri_names_folder_and_task_as_win_acme_does() -> None:
    # The docs name Let's Encrypt's folder %ProgramData%\win-acme\acme-v02.api.letsencrypt.org.
    assert wa.clean_base_uri("https://acme-v02.api.letsencrypt.org/") == (
        "acme-v02.api.letsencrypt.org"
    )
    assert wa.clean_base_uri(SERVER) == "acme1.example.net8555acmeprivatedirectory"


@pytest.mark.parametrize(
    ("base_uri", "folder"),
    [
        # System.Uri lower-cases scheme and host; the path keeps its case.
        ("HTTPS://ACME1.Example.NET:8555/acme/Private/dir", "acme1.example.net8555acmePrivatedir"),
        # The scheme's default port is not part of Uri.ToString().
        ("https://acme1.example.net:443/acme/private/dir", "acme1.example.netacmeprivatedir"),
        ("http://acme1.example.net:80/directory", "acme1.example.netdirectory"),
        # Any other port stays (its ':' is invalid in a file name and goes).
        ("https://acme1.example.net:8443/directory", "acme1.example.net8443directory"),
        ("http://acme1.example.net:443/directory", "acme1.example.net443directory"),
        # An empty path becomes "/"; dot segments are resolved; the query stays.
        ("https://acme1.example.net", "acme1.example.net"),
        ("https://acme1.example.net/acme/./x/../dir?p=1", "acme1.example.netacmedirp=1"),
        # CleanUri drops the user info; blanks around the argument are trimmed.
        ("  https://user:pw@acme1.example.net:443/dir ", "acme1.example.netdir"),
        # Escaped unreserved characters are shown decoded.
        ("https://acme1.example.net/%61cme/dir", "acme1.example.netacmedir"),
        ("https://[2001:DB8::1]:443/dir", "[2001db81]dir"),
    ],
)
def test_clean_base_uri_follows_system_uri_to_string(base_uri: str, folder: str) -> None:
    assert wa.clean_base_uri(base_uri) == folder
    assert not set(folder) & wa._INVALID_FILE_NAME_CHARS


def test_clean_base_uri_refuses_what_win_acme_cannot_parse() -> None:
    for bad in ("acme1.example.net/directory", "ftp://acme1.example.net/", "https://h:99999/"):
        with pytest.raises(AnsibleFilterError, match="win_acme_clean_base_uri"):
            wa.clean_base_uri(bad)


def test_iis_command_line_is_exactly_the_documented_unattended_form() -> None:
    argv = wa.wacs_argv(options())
    assert argv == [
        EXE,
        "--baseuri",
        SERVER,
        "--source",
        "iis",
        "--siteid",
        "1",
        "--host",
        "www.example.com,example.com",
        "--store",
        "certificatestore",
        "--installation",
        "iis",
        "--id",
        "acmefleet-0123456789abcdef",
        "--friendlyname",
        "acmefleet www.example.com",
        "--csr",
        "ec",
        "--accepttos",
        "--emailaddress",
        "ops@example.com",
        "--closeonfinish",
    ]
    parsed = parse(argv)
    assert "--eab-key" not in parsed and "--eab-key-identifier" not in parsed


def test_new_account_adds_both_eab_arguments() -> None:
    argv = wa.wacs_argv(options(eab_kid="kid-1", eab_key="HMACVALUE", eab_algorithm="HS256"))
    parsed = parse(argv)
    assert parsed["--eab-key-identifier"] == "kid-1"
    assert parsed["--eab-key"] == "HMACVALUE"
    assert parsed["--eab-algorithm"] == "HS256"
    assert argv[-1] == "--closeonfinish"
    with pytest.raises(AnsibleFilterError, match="go together"):
        wa.wacs_argv(options(eab_kid="kid-1"))


def test_secret_values_are_censored_but_vault_references_are_shown() -> None:
    argv = wa.wacs_argv(options(eab_kid="kid-1", eab_key="HMACVALUE"))
    shown = wa.censor_argv(argv)
    assert "HMACVALUE" not in shown and shown[shown.index("--eab-key") + 1] == "********"
    assert shown[shown.index("--eab-key-identifier") + 1] == "kid-1"
    ref = wa.censor_argv(wa.wacs_argv(options(eab_kid="kid-1", eab_key="vault://json/x")))
    assert ref[ref.index("--eab-key") + 1] == "vault://json/x"


def test_iis_selection_variants() -> None:
    assert wa.iis_plugin_args([], ["a.example.com"]) == [
        "--source",
        "iis",
        "--host",
        "a.example.com",
        "--store",
        "certificatestore",
        "--installation",
        "iis",
    ]
    sites = wa.iis_plugin_args(["1", 2], [], ssl_port=8443)
    assert sites[:4] == ["--source", "iis", "--siteid", "1,2"]
    assert sites[-2:] == ["--sslport", "8443"]
    parse([EXE, *sites])
    with pytest.raises(AnsibleFilterError):
        wa.iis_plugin_args([], [])
    with pytest.raises(AnsibleFilterError, match="without commas"):
        wa.iis_plugin_args([], ["a.example.com,b.example.com"])


def test_apache_command_line_uses_pemfiles_and_the_script_installation() -> None:
    plugin = wa.apache_plugin_args(
        ["wiki.example.com", "www.wiki.example.com"],
        r"C:\Apache24\htdocs",
        r"C:\ProgramData\acmefleet\apache",
        r"C:\ProgramData\acmefleet\Install-ApacheCertificate.ps1",
    )
    parsed = parse(wa.wacs_argv(options(plugin_args=plugin)))
    assert parsed["--source"] == "manual"
    assert parsed["--host"] == "wiki.example.com,www.wiki.example.com"
    assert parsed["--validation"] == "filesystem"
    assert parsed["--webroot"] == r"C:\Apache24\htdocs"
    assert parsed["--store"] == "pemfiles"
    assert parsed["--pemfilespath"] == r"C:\ProgramData\acmefleet\apache"
    assert parsed["--installation"] == "script"
    assert parsed["--script"].endswith(".ps1")
    # The .pem files get a fixed name and the script the same name: {CertCommonName} is the
    # subject CN only, empty for a certificate without one (acmefleet's public endpoint).
    assert parsed["--pemfilesname"] == "wiki.example.com"
    assert parsed["--scriptparameters"] == (
        "-PemFilesName 'wiki.example.com' -StorePath '{StorePath}'"
    )
    assert "{CertCommonName}" not in str(parsed["--scriptparameters"])
    assert set(re.findall(r"\{[A-Za-z]+\}", parsed["--scriptparameters"])) <= SCRIPT_TOKENS


def test_apache_pem_name_is_given_or_the_first_name() -> None:
    def args(names: list[str], name: str = "") -> dict[str, str | None]:
        plugin = wa.apache_plugin_args(names, r"C:\w", r"C:\p", r"C:\s.ps1", name)
        return parse(wa.wacs_argv(options(plugin_args=plugin)))

    wildcard = args(["*.example.com", "example.com"])
    # win-acme would write '_' for '*' itself; the script must see the same name.
    assert wildcard["--pemfilesname"] == "_.example.com"
    assert wildcard["--scriptparameters"] == (
        "-PemFilesName '_.example.com' -StorePath '{StorePath}'"
    )
    assert args(["a.example.com"], "apache-site")["--pemfilesname"] == "apache-site"
    for bad in ("it's", "two words", "a/b", "*.x"):
        with pytest.raises(AnsibleFilterError, match="win_acme_apache_pem_name"):
            args(["a.example.com"], bad)


def test_plugin_arguments_must_start_with_a_source() -> None:
    with pytest.raises(AnsibleFilterError, match="--source"):
        wa.wacs_argv(options(plugin_args=["--store", "pemfiles"]))
    with pytest.raises(AnsibleFilterError, match="'baseuri' is required"):
        wa.wacs_argv(options(baseuri=""))


def test_renewal_id_is_stable_per_server_and_selection() -> None:
    one = wa.renewal_id(SERVER, ["www.example.com", "--source", "iis"])
    assert one == wa.renewal_id(SERVER, ["www.example.com", "--source", "iis"])
    assert re.fullmatch(r"acmefleet-[0-9a-f]{16}", one)
    assert one != wa.renewal_id(SERVER.replace("private", "public"), ["www.example.com"])
    assert one != wa.renewal_id(SERVER, ["www.example.com", "--source", "manual"])


def test_powershell_quoting() -> None:
    assert wa.ps_quote("it's") == "'it''s'"
    assert wa.ps_quote("$env:X `n") == "'$env:X `n'"
    # PowerShell ends a single-quoted literal at a typographic quote too: each is doubled.
    for quote in "\u2018\u2019\u201a\u201b":
        assert wa.ps_quote(f"a{quote}; calc; {quote}") == f"'a{quote}{quote}; calc; {quote}{quote}'"
    assert wa.ps_argv([EXE, "--host", "a"]) == f"& '{EXE}' '--host' 'a'"
    assert wa.apache_path(r"C:\Apache24\conf\x.conf") == "C:/Apache24/conf/x.conf"


def _param_names(script: str) -> set[str]:
    block = re.search(r"param\((.*?)\n\)", script, re.S)
    assert block, "no param() block"
    return set(re.findall(r"\]\$(\w+)", block.group(1)))


def _render_parameter_keys() -> dict[str, set[str]]:
    tasks = yaml.safe_load((ROLES / "win_acme" / "tasks" / "render.yml").read_text())
    keys: dict[str, set[str]] = {}
    for task in tasks:
        facts = task["ansible.builtin.set_fact"]
        for name, value in (facts.get("win_acme__ps_scripts") or {}).items():
            keys[name] = set(value["parameters"])
        if "win_acme__write_secret_parameters" in facts:
            keys["write_secret"] = set(facts["win_acme__write_secret_parameters"])
    return keys


def test_powershell_scripts_take_exactly_the_parameters_the_role_passes() -> None:
    files = ROLES / "win_acme" / "files"
    passed = _render_parameter_keys()
    for name, keys in passed.items():
        script = (files / f"{name.replace('_', '-')}.ps1").read_text()
        assert _param_names(script) == keys, name
        assert "$ErrorActionPreference = 'Stop'" in script
        assert "Invoke-Expression" not in script
    include = (ROLES / "win_acme_apache" / "files" / "apache-include.ps1").read_text()
    assert _param_names(include) == {"HttpdConf", "Line"}
    installer = ROLES / "win_acme_apache" / "templates" / "Install-ApacheCertificate.ps1.j2"
    assert _param_names(installer.read_text()) == {"PemFilesName", "StorePath"}


def test_secret_store_file_is_written_as_win_acmes_json_secret_service_reads_it() -> None:
    # JsonSecretService: a list of {Key, Secret}; ProtectedString: "enc-" + base64 of DPAPI
    # ProtectedData.Protect(utf8, null, DataProtectionScope.LocalMachine).
    script = (ROLES / "win_acme" / "files" / "write-secret.ps1").read_text()
    assert "[System.Security.Cryptography.ProtectedData]::Protect(" in script
    assert "$bytes, $null, [System.Security.Cryptography.DataProtectionScope]::LocalMachine" in (
        script
    )
    assert "'enc-' + [System.Convert]::ToBase64String($protected)" in script
    assert "Key = $Key; Secret = $value" in script
    assert "ConvertTo-Json -InputObject @($entries)" in script


def _single_expression(value: object) -> bool:
    text = str(value).strip()
    return (
        isinstance(value, str)
        and text.startswith("{{")
        and text.endswith("}}")
        and text.count("{{") == 1
    )


def test_settings_json_is_built_in_one_expression() -> None:
    # ansible-core < 2.19 renders every templated leaf of a YAML mapping to a string: a
    # RenewalDays: "{{ days | int }}" leaf became "55" in settings.json, which win-acme refuses.
    # One expression over typed values keeps numbers and booleans what they are.
    render = yaml.safe_load((ROLES / "win_acme" / "tasks" / "render.yml").read_text())
    facts = next(
        t["ansible.builtin.set_fact"]
        for t in render
        if "win_acme__settings_overrides" in t.get("ansible.builtin.set_fact", {})
    )
    assert _single_expression(facts["win_acme__settings_overrides"])
    variables = yaml.safe_load((ROLES / "win_acme" / "vars" / "main.yml").read_text())
    assert _single_expression(variables["win_acme__settings_text"])
    assert "to_nice_json" in variables["win_acme__settings_text"]
    settings = yaml.safe_load((ROLES / "win_acme" / "tasks" / "settings.yml").read_text())
    write = next(t for t in settings if "ansible.windows.win_copy" in t)
    assert write["ansible.windows.win_copy"]["content"] == "{{ win_acme__settings_text }}"


def test_scheduled_task_name_is_win_acmes() -> None:
    # TaskSchedulerService.TaskName: "{ClientName} renew ({BaseUri.CleanBaseUri()})".
    render = (ROLES / "win_acme" / "tasks" / "render.yml").read_text()
    assert (
        'win_acme__task_name: "win-acme renew ({{ win_acme_server | '
        'acmefleet.fleet.win_acme_clean_base_uri }})"'
    ) in render


def _tasks(path: Path) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    for task in yaml.safe_load(path.read_text()) or []:
        out.append(task)
        for key in ("block", "rescue", "always"):
            out.extend(task.get(key) or [])
    return out


def test_every_task_that_handles_the_hmac_key_has_no_log() -> None:
    secret_markers = ("win_acme_eab_hmac_key", "argv_new_account", "write_secret")
    for path in (ROLES / "win_acme" / "tasks").glob("*.yml"):
        for task in _tasks(path):
            body = {k: v for k, v in task.items() if k not in {"name", "vars", "when"}}
            if "ansible.builtin.assert" in task:
                body = task["ansible.builtin.assert"]["that"]  # its fail_msg is prose
            # Only the key's length is looked at (validate.yml): nothing of it is printed.
            text = re.sub(r"win_acme_eab_hmac_key\s*\|\s*length", "", json.dumps(body))
            # What goes through the censoring filter shows no secret.
            text = re.sub(
                r"argv_new_account\s*\|\s*acmefleet\.fleet\.win_acme_censor_argv", "", text
            )
            if "ansible.builtin.fail" in task or "block" in task:
                continue
            if any(marker in text for marker in secret_markers):
                assert task.get("no_log") is True, f"{path.name}: {task.get('name')}"


# win_powershell decides whether a script may run in check mode from its param block's
# [CmdletBinding(...)] attribute (ansible.windows' win_powershell.ps1 reads the script's AST:
# ParamBlock.Attributes, TypeName CmdletBinding, named argument SupportsShouldProcess); without
# it the task is skipped and reports "changed" in check mode.
_SHOULD_PROCESS_PARAM_BLOCK = re.compile(
    r"^\[CmdletBinding\((?:[\w=$]+,\s*)?SupportsShouldProcess(?:=\$true)?(?:,\s*[\w=$]+)?\)\]"
    r"\s*\n(?:#[^\n]*\n|\s*\n)*param\(",
    re.M,
)


def test_scripts_that_change_the_host_support_check_mode() -> None:
    include = (ROLES / "win_acme_apache" / "files" / "apache-include.ps1").read_text()
    assert _SHOULD_PROCESS_PARAM_BLOCK.search(include), "apache-include.ps1 lacks ShouldProcess"
    # Every write sits inside $PSCmdlet.ShouldProcess(...), none is guarded by hand.
    body = include.split("param(", 1)[1]
    guarded = re.search(r"if \(\$PSCmdlet\.ShouldProcess\([^)]*\)\) \{\n([^}]*)\}", body)
    assert guarded and "Add-Content" in guarded.group(1)
    assert body.count("Add-Content") == 1
    assert "$Ansible.CheckMode" not in body
