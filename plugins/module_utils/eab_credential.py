# Copyright: acmefleet developers
# Apache License 2.0
"""What the eab_credential module and its action plugin share: the arguments and the work.

The action plugin (plugins/action/eab_credential.py) does the work in Ansible's worker on the
controller; the module is the same work as a module (its documentation, and a run on a host
where the action plugin is not used). A module run on the controller starts a Python that
compiles Ansible's module_utils from the payload first: about 0.9 s of CPU per call, twice
per enrolled host (mint, then the unused-credential check), which the action plugin saves.
"""

from __future__ import annotations

from typing import Any

from ansible_collections.acmefleet.fleet.plugins.module_utils.console_api import (
    ConsoleApi,
    ConsoleApiError,
    read_token,
)

ARGUMENT_SPEC: dict[str, dict[str, Any]] = {
    "api_url": {"type": "str", "required": True},
    "token": {"type": "str", "no_log": True},
    "token_file": {"type": "path"},
    "ca_bundle": {"type": "path"},
    "validate_certs": {"type": "bool", "default": True},
    "org": {"type": "str"},
    "endpoint": {"type": "str"},
    "days": {"type": "float"},
    "kid": {"type": "str"},
    "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
}
REQUIRED_ONE_OF = [("token", "token_file")]
MUTUALLY_EXCLUSIVE = [("token", "token_file")]
REQUIRED_IF = [("state", "present", ("org", "endpoint")), ("state", "absent", ("kid",))]


def run(params: dict[str, Any], check_mode: bool) -> dict[str, Any]:
    """The task's result (``failed`` and ``msg`` when the server refuses)."""
    try:
        api = ConsoleApi(
            params["api_url"],
            read_token(params["token"], params["token_file"]),
            params["ca_bundle"],
            params["validate_certs"],
        )
        if params["state"] == "present":
            if check_mode:
                return {"changed": True, "kid": None, "hmac_key": None, "directory": None}
            minted = api.mint_eab(params["org"], params["endpoint"], params["days"])
            return {
                "changed": True,
                "kid": minted["kid"],
                "hmac_key": minted["hmac_key"],
                "directory": minted["directory"],
                "expires": minted["expires"],
            }
        current = api.credential(params["kid"])
        if current["status"] != "unused":
            return {"changed": False, "kid": params["kid"], "status": current["status"]}
        if check_mode:
            return {"changed": True, "kid": params["kid"], "status": "revoked"}
        revoked = api.revoke_eab(params["kid"])
        return {"changed": True, "kid": params["kid"], "status": revoked["status"]}
    except ConsoleApiError as exc:
        return {"failed": True, "msg": str(exc), "status": exc.status}
