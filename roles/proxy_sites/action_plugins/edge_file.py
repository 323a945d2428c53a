"""edge_file: run template, copy or file only when the host-state read says it would change something.

The edge roles read their managed files in one round trip (proxy_sites'
edge_host_state module, each role's tasks/state.yml): per path a signature
`TYPE|MODE|OWNER|GROUP|SHA1`, such as `regular file|644|root|root|<sha1>` or
`directory|755|root|root|`. This action wraps ansible.builtin.template, copy or
file: given that module's own arguments, unchanged, and the read's map, it
works out on the controller, without a call to the host, the signature the
module would leave at `dest` (`path` for file): the type; the mode, owner and
group the task sets; the SHA-1 of the template as the template action renders
it, of `content`, or of the local `src` file. When the map holds exactly that,
the module would change nothing, so it is not run: the result is ok with
`unchanged: true`, a `msg` saying so and the signature compared (`wanted`).
Otherwise the real action runs with the task's arguments and its result is
returned as it is, so `notify`,
`register`, `validate`, check mode, diff mode and loops behave as with the
module itself. Each task states its mode, owner and template once, and the
skip cannot drift from what the task writes.

    - name: Write the Caddyfile, checked by caddy validate first
      edge_file:
        module: ansible.builtin.template   # or copy, file (FQCN or short)
        known: "{{ __caddy_files }}"       # edge_host_state's `files`
        src: Caddyfile.j2
        dest: /etc/caddy/Caddyfile
        owner: root
        group: root
        mode: "0644"
        lstrip_blocks: true
        validate: "{{ caddy_check_command }} %s"
      notify: caddy configuration changed

In doubt, the real action runs and decides: a path the map does not hold, an
entry of another type, a numeric owner or group (the read reports names, as
stat(1) does), a symbolic mode, an argument the signature does not cover
(SELinux context, attributes, times, remote_src, recurse), a `src` directory,
a `state` of file other than `directory` or `file`, or a template that does
not render. A mode, owner or group the task leaves out is not compared, as the
module leaves it as it is on a path that exists. Modes are read as the file
module reads them: an int as it is, a string as octal (`"0644"`, `"644"`).
module_defaults of the wrapped module do not apply (the task's action is
edge_file). When the read says a path differs but the module then changes
nothing, the comparison itself is wrong: the task warns, naming both
signatures, instead of quietly running the module on every run.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections.abc import Mapping

from ansible.errors import AnsibleActionFail, AnsibleError
from ansible.module_utils.common.text.converters import to_bytes
from ansible.module_utils.parsing.convert_bool import boolean
from ansible.plugins.action import ActionBase

try:
    # How ansible-core 2.19's template action renders (its own helpers). The
    # roles claim ansible-core 2.15 and later: where these are missing, no
    # template is rendered here and the real template action always runs.
    from ansible._internal._templating import _template_vars
    from ansible.template import trust_as_template
except ImportError:
    _template_vars = trust_as_template = None
from jinja2.defaults import (
    BLOCK_END_STRING,
    BLOCK_START_STRING,
    COMMENT_END_STRING,
    COMMENT_START_STRING,
    VARIABLE_END_STRING,
    VARIABLE_START_STRING,
)

WRAPPED = ("template", "copy", "file")
# Arguments that change what a module does in ways the signature does not show.
UNCOVERED = ("attributes", "attr", "seuser", "serole", "setype", "selevel", "remote_src", "recurse", "_original_basename", "_diff_peek")
TIMES = ("access_time", "modification_time")


class Unknown(Exception):
    """What the task would leave cannot be told on the controller: run the real action."""


def short_name(module):
    """template, copy or file, from a short name or an ansible.builtin / ansible.legacy FQCN."""
    name = str(module or "")
    for prefix in ("ansible.builtin.", "ansible.legacy."):
        if name.startswith(prefix):
            name = name[len(prefix) :]
    if name not in WRAPPED:
        raise AnsibleActionFail(f"edge_file wraps {', '.join(WRAPPED)} (or their ansible.builtin names), not {module!r}")
    return name


def octal_mode(mode):
    """The mode as edge_host_state reports it (octal, no leading zeros), read the way the file module
    reads it: an int as it is, a string as octal. None when the task sets none; Unknown for a symbolic
    mode (u=rw,...) or anything else."""
    if mode is None:
        return None
    if isinstance(mode, bool):
        raise Unknown(f"mode {mode!r}")
    if isinstance(mode, int):
        value = mode
    elif isinstance(mode, str):
        try:
            value = int(mode, 8)
        except ValueError:
            raise Unknown(f"symbolic mode {mode!r}") from None
    else:
        raise Unknown(f"mode {mode!r}")
    if not 0 <= value <= 0o7777:
        raise Unknown(f"mode {mode!r}")
    return format(value, "o")


def account(name, what):
    """An owner or group by name, as edge_host_state reports it; None when the task sets none."""
    if name is None:
        return None
    text = str(name)
    if not text or text.isdigit():
        raise Unknown(f"{what} {name!r} (the read reports names)")
    return text


def wanted_state(kind, mode, owner, group, digest):
    """The five fields of the signature the task would leave; None in a field: not set by the task, any value will do."""
    return (kind, octal_mode(mode), account(owner, "owner"), account(group, "group"), digest)


def is_unchanged(entry, wanted):
    """Whether the read's signature ENTRY (or None: not there) is what the task would leave."""
    if not isinstance(entry, str):
        return False
    fields = entry.split("|")
    if len(fields) != 5:
        return False
    return all(want is None or have == want for have, want in zip(fields, wanted, strict=True))


def signature(wanted):
    """The wanted state written as edge_host_state writes it, `*` for a field any value will do."""
    return "|".join("*" if field is None else field for field in wanted)


def sha1(data):
    return hashlib.sha1(data).hexdigest()


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _supports_check_mode = True
    _supports_async = False

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars if task_vars is not None else {}
        result = super().run(tmp, task_vars)
        args = dict(self._task.args)
        name = short_name(args.pop("module", None))
        known = args.pop("known", None)
        if not isinstance(known, Mapping):
            raise AnsibleActionFail("edge_file needs `known`: the `files` map of edge_host_state's result")
        target_key = "path" if name == "file" else "dest"
        target = args.get(target_key)
        if not isinstance(target, str) or target not in known:
            # Nothing read there (or not read at all): nothing to render twice.
            return self._run_wrapped(name, args, task_vars)
        try:
            wanted = self._wanted(name, args, task_vars)
        except Unknown:
            wanted = None
        if wanted is not None and is_unchanged(known[target], wanted):
            result.update(
                changed=False,
                unchanged=True,
                wanted=signature(wanted),
                msg=f"{target} is already {signature(wanted)} (host-state read); {name} not run",
            )
            result[target_key] = target
            return result
        outcome = self._run_wrapped(name, args, task_vars)
        if wanted is not None and not outcome.get("changed") and not outcome.get("failed"):
            # The read said the path differs from what the task leaves, yet the
            # module found nothing to change: the skip compared the wrong thing
            # (the rendering here drifted from the module's) and stopped
            # working. Said aloud, not silently paid for on every run.
            warning = (
                f"edge_file: the host-state read had {known[target]} at {target}, not {signature(wanted)}, "
                f"yet {name} changed nothing: the skip compares something other than what {name} writes"
            )
            outcome["warnings"] = list(outcome.get("warnings") or []) + [warning]
        return outcome

    def _wanted(self, name, args, task_vars):
        """The signature fields NAME with ARGS would leave; raises Unknown when that cannot be told here."""
        for key in UNCOVERED:
            if args.get(key) not in (None, False):
                raise Unknown(key)
        for key in TIMES:
            if args.get(key) not in (None, "preserve"):
                raise Unknown(key)
        mode = args.get("mode")
        if name == "file":
            state = args.get("state")
            if state == "directory":
                return wanted_state("directory", mode, args.get("owner"), args.get("group"), "")
            if state == "file":
                return wanted_state("regular file", mode, args.get("owner"), args.get("group"), None)
            raise Unknown(f"state {state!r}")
        if name == "copy" and args.get("content") is not None:
            if mode == "preserve":
                raise Unknown("mode preserve with content")
            return wanted_state("regular file", mode, args.get("owner"), args.get("group"), self._content_digest(args["content"]))
        source = args.get("src")
        if not isinstance(source, str) or not source or source.endswith(os.sep):
            raise Unknown("src")
        try:
            found = self._find_needle("templates" if name == "template" else "files", source)
        except AnsibleError:
            raise Unknown("src not found") from None
        if os.path.isdir(found):
            raise Unknown("src is a directory")
        if mode == "preserve":
            mode = "0%03o" % stat.S_IMODE(os.stat(found).st_mode)
        if name == "template":
            digest = self._template_digest(args, found, task_vars)
        else:
            digest = self._file_digest(found, args)
        return wanted_state("regular file", mode, args.get("owner"), args.get("group"), digest)

    @staticmethod
    def _content_digest(content):
        # As the copy action writes `content` to the file it sends.
        if isinstance(content, (dict, list)):
            content = json.dumps(content)
        return sha1(to_bytes(content))

    def _file_digest(self, found, args):
        # As the copy action reads src: through the loader, vault-decrypted unless decrypt is false.
        real = self._loader.get_real_file(found, decrypt=boolean(args.get("decrypt", True), strict=False))
        try:
            with open(real, "rb") as handle:
                return sha1(handle.read())
        finally:
            self._loader.cleanup_tmp_file(real)

    def _template_digest(self, args, source, task_vars):
        """SHA-1 of the template as ansible.builtin.template renders it (ansible-core 2.19's
        plugins/action/template.py, step for step up to the file it hands to copy)."""
        if _template_vars is None:
            raise Unknown("rendered the way of ansible-core 2.19 only")
        if args.get("state") is not None or args.get("dest") is None:
            raise Unknown("the template action would fail")
        try:
            trim_blocks = boolean(args.get("trim_blocks", True), strict=False)
            lstrip_blocks = boolean(args.get("lstrip_blocks", False), strict=False)
        except TypeError:
            raise Unknown("trim_blocks or lstrip_blocks") from None
        newline_sequence = args.get("newline_sequence", "\n")
        escaped = ["\\n", "\\r", "\\r\\n"]
        if newline_sequence in escaped:
            newline_sequence = ["\n", "\r", "\r\n"][escaped.index(newline_sequence)]
        if newline_sequence not in ("\n", "\r", "\r\n"):
            raise Unknown("newline_sequence")
        overrides = dict(
            block_start_string=args.get("block_start_string", BLOCK_START_STRING),
            block_end_string=args.get("block_end_string", BLOCK_END_STRING),
            variable_start_string=args.get("variable_start_string", VARIABLE_START_STRING),
            variable_end_string=args.get("variable_end_string", VARIABLE_END_STRING),
            comment_start_string=args.get("comment_start_string", COMMENT_START_STRING),
            comment_end_string=args.get("comment_end_string", COMMENT_END_STRING),
            trim_blocks=trim_blocks,
            lstrip_blocks=lstrip_blocks,
            newline_sequence=newline_sequence,
        )
        output_encoding = args.get("output_encoding", "utf-8") or "utf-8"
        try:
            template_data = trust_as_template(self._loader.get_text_file_contents(source))
            # A copy: the template action extends task_vars' own list, which the real action extends again.
            searchpath = list(task_vars.get("ansible_search_path", []))
            searchpath.extend([self._loader._basedir, os.path.dirname(source)])
            searchpath = [entry for path in searchpath for entry in (os.path.join(path, "templates"), path)]
            temp_vars = task_vars.copy()
            temp_vars.update(
                _template_vars.generate_ansible_template_vars(
                    path=args.get("src"),
                    fullpath=source,
                    dest_path=args.get("dest"),
                    include_ansible_managed="ansible_managed" not in temp_vars,
                )
            )
            templar = self._templar.copy_with_new_env(searchpath=searchpath, available_variables=temp_vars)
            resultant = templar.template(template_data, escape_backslashes=False, overrides=overrides)
            if resultant is None:
                resultant = ""
            return sha1(to_bytes(resultant, encoding=output_encoding, errors="surrogate_or_strict"))
        except Exception:
            # The real action renders it again and reports the error as the template module does.
            raise Unknown("the template does not render") from None

    def _run_wrapped(self, name, args, task_vars):
        """The real template, copy or file action on a copy of this task, its result as it is."""
        task = self._task.copy()
        task.args = args
        if name == "file":
            # file has no action of its own: the generic one runs the module the task names.
            task.action = "ansible.legacy.file"
            plugin = "ansible.legacy.normal"
        else:
            task.action = plugin = f"ansible.legacy.{name}"
        action = self._shared_loader_obj.action_loader.get(
            plugin,
            task=task,
            connection=self._connection,
            play_context=self._play_context,
            loader=self._loader,
            templar=self._templar,
            shared_loader_obj=self._shared_loader_obj,
        )
        return action.run(task_vars=task_vars)
