"""AliasVault through the edge: one hostname, paths untouched, to its internal
proxy's routes (the stand-in routes /, /api and /admin as AliasVault's does)."""

import json

import pytest
from conftest import APP, PEBBLE_ROOT, curl

pytestmark = pytest.mark.skipif(APP != "aliasvault", reason="the AliasVault scenario's routes")


@pytest.mark.parametrize(
    "path,route",
    [
        ("/", "client"),
        ("/vaults/abc?x=1", "client"),
        ("/api/v1/Auth/status", "api"),
        ("/admin", "admin"),
        ("/admin/users/a%40b%20c", "admin"),
        ("/_framework/blazor.webassembly.js", "client"),
    ],
)
def test_each_path_reaches_its_route_untouched(probe, path, route):
    response = curl(probe, f"https://vault.test{path}", ca=PEBBLE_ROOT)
    assert response.status == 200
    echoed = response.json()
    assert echoed["route"] == route
    assert echoed["target"] == path
    assert echoed["tls"] is True


@pytest.mark.parametrize("path", ["/admin/users/%2Fodd", "//api/v1/Auth/status", "/api/../admin"])
def test_ambiguous_paths_are_refused_before_aliasvault(probe, path):
    # The aliasvault profile's path guard: none of AliasVault's routes (the
    # client, /api, /admin and its hub, above) needs such a path.
    assert curl(probe, f"https://vault.test{path}", "--path-as-is", ca=PEBBLE_ROOT).status == 400


def test_the_health_check_answers_ok(probe):
    response = curl(probe, "https://vault.test/api", ca=PEBBLE_ROOT)
    assert (response.status, response.body) == (200, "OK")


@pytest.mark.parametrize("path,upgrades", [("/admin/_blazor?id=1", True), ("/api/hub", False), ("/", False)])
def test_websocket_upgrades_only_on_the_admin_route(probe, path, upgrades):
    # A real client (the websockets library): text and binary echoes on /admin;
    # AliasVault's other routes refuse the upgrade, and the edge passes that on.
    result = probe.run(f"python3 /usr/local/bin/ws_check.py 'wss://vault.test{path}' --cafile {PEBBLE_ROOT}")
    report = json.loads(result.stdout or "{}")
    assert (result.rc == 0) is upgrades, report
