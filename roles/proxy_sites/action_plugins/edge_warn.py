"""edge_warn: show an operator a warning, the way modules do ([WARNING]: ...).

For the roles that depend on proxy_sites (every role of the edge), as the
ufw role has its own ufw_warn: ansible.builtin has no task that warns without
failing (debug prints an ordinary "ok" result that is easy to miss). This
action runs on the controller only, changes nothing, and returns its message
in the result's `warnings`, which Ansible prints as a [WARNING] under the
task, in check mode as well.

    - name: Warn that HTTP/3 is dropped on this host
      edge_warn:
        msg: nginx 1.22 cannot serve HTTP/3; sites a, b are served without it.
"""

from __future__ import annotations

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase


class ActionModule(ActionBase):
    _requires_connection = False
    _VALID_ARGS = frozenset(("msg",))
    TRANSFERS_FILES = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        msg = self._task.args.get("msg")
        if not isinstance(msg, str) or not msg.strip():
            raise AnsibleActionFail("edge_warn needs a non-empty msg")
        result.update(changed=False, msg=msg, warnings=[msg])
        return result
