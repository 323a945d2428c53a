"""WebSocket through the edge: upgrade, text and binary echo, idle sockets, quiet logs."""

import secrets

from conftest import FLAVOUR, IDLE_SECONDS, PIPELIT, VAULT, ws_check

TOKEN = f"secret-{secrets.token_hex(8)}"


def test_pipelit_websocket_upgrades_and_echoes(probe, ca_files):
    rc, report = ws_check(probe, f"wss://{PIPELIT}/ws/?token={TOKEN}", ca_files["pipelit"])
    assert rc == 0, report
    assert report["status"] == 101
    assert report["text_echo"] and report["binary_echo"]


def test_aliasvault_admin_websocket_upgrades_and_echoes(probe, ca_files):
    # The Blazor admin's SignalR hub, through the HTTPS upstream.
    rc, report = ws_check(probe, f"wss://{VAULT}/admin/_blazor?id=abc", ca_files["aliasvault"])
    assert rc == 0, report
    assert report["text_echo"] and report["binary_echo"]


def test_plain_routes_do_not_upgrade(probe, ca_files):
    # Only routes marked websocket pass the Upgrade header on.
    rc, report = ws_check(probe, f"wss://{PIPELIT}/api/socket", ca_files["pipelit"])
    assert rc == 1
    assert report["status"] == 200


def test_token_never_reaches_the_access_log(edge, probe, ca_files):
    rc, _ = ws_check(probe, f"wss://{PIPELIT}/ws/?token={TOKEN}&session=1", ca_files["pipelit"])
    assert rc == 0
    log = edge.file(FLAVOUR["access_log"]).content_string
    assert "/ws/?token=REDACTED" in log  # the request was logged...
    assert TOKEN not in log  # ...without its token


def test_idle_websocket_survives(idle_socket):
    report = idle_socket()
    assert report["idle_seconds"] == IDLE_SECONDS
    assert report["after_idle_echo"] is True, report
