# Copyright: acmefleet developers
# Apache License 2.0
"""Action plugin for acmefleet.fleet.eab_credential: the work done on the controller, in
Ansible's worker process, instead of a module run (module_utils/eab_credential.py says why).
"""

from __future__ import annotations

from typing import Any

from ansible.plugins.action import ActionBase

from ansible_collections.acmefleet.fleet.plugins.module_utils import eab_credential


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False  # it talks to the console API, never to the host

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result = super().run(tmp, task_vars)
        _, params = self.validate_argument_spec(
            argument_spec=eab_credential.ARGUMENT_SPEC,
            required_one_of=eab_credential.REQUIRED_ONE_OF,
            mutually_exclusive=eab_credential.MUTUALLY_EXCLUSIVE,
            required_if=eab_credential.REQUIRED_IF,
        )
        result.update(eab_credential.run(params, bool(self._task.check_mode)))
        return result
