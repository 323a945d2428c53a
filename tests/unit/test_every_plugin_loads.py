"""Every Python file of the roles loads, and every module's DOCUMENTATION is
YAML that names it and its options, as ansible-doc and ansible-lint read it.
This also puts every file, host-only ones too, in the coverage figure."""

from __future__ import annotations

import importlib.util

import pytest
import yaml
from conftest import ROOT, load_script

PLUGINS = sorted(
    path
    for pattern in ("roles/*/library/*.py", "roles/*/filter_plugins/*.py", "roles/*/action_plugins/*.py", "callback_plugins/*.py")
    for path in ROOT.glob(pattern)
)
SCRIPTS = ["roles/nginx/files/pipelit-edge-nginx", "roles/certificate_alerts/files/pipelit-edge-certificate-alert"]


def load(path):
    spec = importlib.util.spec_from_file_location(f"loaded_{path.parent.name}_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_roles_have_python():
    assert len(PLUGINS) >= 12


@pytest.mark.parametrize("path", PLUGINS, ids=lambda path: str(path.relative_to(ROOT)))
def test_it_loads_and_documents_itself(path):
    module = load(path)
    if path.parent.name == "library":
        doc = yaml.safe_load(module.DOCUMENTATION)
        assert doc["module"] == path.stem and doc["short_description"]
        assert isinstance(doc.get("options", {}), dict)
        assert callable(module.main)
    elif path.parent.name == "filter_plugins":
        assert all(callable(f) for f in module.FilterModule().filters().values())
    elif path.parent.name == "action_plugins":
        assert hasattr(module, "ActionModule")
    else:
        assert yaml.safe_load(module.DOCUMENTATION)["name"] == path.stem


@pytest.mark.parametrize("relative", SCRIPTS)
def test_the_scripts_load_and_say_how_to_use_them(relative):
    module = load_script(relative, relative.rsplit("/", 1)[1].replace("-", "_") + "_loaded")
    assert module.__doc__.startswith(relative.rsplit("/", 1)[1] + ":")
