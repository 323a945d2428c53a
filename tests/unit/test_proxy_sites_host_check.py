"""The host checks (roles/proxy_sites/library/proxy_sites_host_check.py) on
real files: certificates and keys made with the openssl command in a
temporary folder (matching, mismatched, encrypted, garbage, missing), and
upstream names resolved by this machine's resolver ('localhost', a name under
'.invalid', which never resolves: RFC 6761)."""

from __future__ import annotations

import os
import socket
import subprocess
import time

import proxy_sites_host_check as host_check
import pytest
from ansible_module import run_module


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def self_signed(folder, name, *key_options):
    openssl(
        "req",
        "-x509",
        *key_options,
        "-nodes",
        "-days",
        "2",
        "-subj",
        f"/CN={name}",
        "-keyout",
        f"{name}.key",
        "-out",
        f"{name}.crt",
        cwd=folder,
    )
    return str(folder / f"{name}.crt"), str(folder / f"{name}.key")


@pytest.fixture(scope="module")
def pem(tmp_path_factory):
    """Paths of: two EC pairs (a, b), an RSA 1024 pair (weak), an encrypted
    key, garbage, a PEM block that is not base64, a link to nothing, a folder."""
    folder = tmp_path_factory.mktemp("pem")
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256")
    paths = {}
    paths["a.crt"], paths["a.key"] = self_signed(folder, "a", *ec)
    paths["b.crt"], paths["b.key"] = self_signed(folder, "b", *ec)
    paths["weak.crt"], paths["weak.key"] = self_signed(folder, "weak", "-newkey", "rsa:1024")
    openssl("pkey", "-in", "a.key", "-aes256", "-passout", "pass:secret", "-out", "encrypted.key", cwd=folder)
    paths["encrypted.key"] = str(folder / "encrypted.key")
    (folder / "garbage.pem").write_text("not a certificate\n")
    paths["garbage.pem"] = str(folder / "garbage.pem")
    (folder / "broken.crt").write_text("-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n")
    paths["broken.crt"] = str(folder / "broken.crt")
    (folder / "fullchain.pem").write_text((folder / "a.crt").read_text() + (folder / "b.crt").read_text())
    paths["fullchain.pem"] = str(folder / "fullchain.pem")
    os.symlink("gone.pem", folder / "dangling.pem")
    paths["dangling.pem"] = str(folder / "dangling.pem")
    (folder / "folder").mkdir()
    paths["folder"] = str(folder / "folder")
    paths["missing"] = str(folder / "missing.pem")
    return paths


def files_site(name, certificate, key, upstreams=()):
    return {"name": name, "tls": {"mode": "files", "certificate": certificate, "certificate_key": key}, "upstreams": list(upstreams)}


def upstream_site(name, servers, ca_file=None, mode="self_signed"):
    return {"name": name, "tls": {"mode": mode}, "upstreams": [{"name": "app", "servers": servers, "ca_file": ca_file}]}


def messages(*sites, **options):
    return [item["message"] for item in host_check.check(list(sites), **options)[0]]


def test_a_matching_pair_passes(pem):
    problems, checked = host_check.check([files_site("pipelit", pem["a.crt"], pem["a.key"])])
    assert problems == []
    assert checked == {"files": 2, "names": 0}


def test_a_full_chain_whose_first_certificate_is_the_keys_passes(pem):
    assert messages(files_site("pipelit", pem["fullchain.pem"], pem["a.key"])) == []


def test_a_weak_key_is_not_this_checks_business(pem):
    # The proxies' own policies judge key sizes; this check only parses and matches.
    assert messages(files_site("pipelit", pem["weak.crt"], pem["weak.key"])) == []


def test_a_key_that_is_not_the_certificates_is_refused(pem):
    assert messages(files_site("pipelit", pem["a.crt"], pem["b.key"])) == [
        f"site 'pipelit': tls.certificate_key: '{pem['b.key']}' is not the key of the certificate '{pem['a.crt']}' (their public keys differ)"
    ]


def test_missing_files_are_refused_each(pem):
    assert messages(files_site("pipelit", pem["missing"], pem["missing"])) == [
        f"site 'pipelit': tls.certificate: '{pem['missing']}' does not exist on the host",
        f"site 'pipelit': tls.certificate_key: '{pem['missing']}' does not exist on the host",
    ]


def test_a_link_to_nothing_and_a_folder_are_refused(pem):
    assert messages(files_site("pipelit", pem["dangling.pem"], pem["folder"])) == [
        f"site 'pipelit': tls.certificate: '{pem['dangling.pem']}' is a link to nothing ('gone.pem' does not exist on the host)",
        f"site 'pipelit': tls.certificate_key: '{pem['folder']}' is not a regular file on the host",
    ]


@pytest.mark.parametrize("certificate", ["garbage.pem", "broken.crt", "a.key"])
def test_a_certificate_file_without_a_certificate_is_refused(pem, certificate):
    # The key is not matched then; it is there, so nothing is said of it.
    assert messages(files_site("pipelit", pem[certificate], pem["a.key"])) == [
        f"site 'pipelit': tls.certificate: '{pem[certificate]}' holds no PEM certificate"
    ]


def test_a_key_file_without_a_key_is_refused(pem):
    assert messages(files_site("pipelit", pem["a.crt"], pem["garbage.pem"])) == [
        f"site 'pipelit': tls.certificate_key: '{pem['garbage.pem']}' holds no PEM private key"
    ]


def test_an_encrypted_key_is_refused(pem):
    assert messages(files_site("pipelit", pem["a.crt"], pem["encrypted.key"])) == [
        f"site 'pipelit': tls.certificate_key: '{pem['encrypted.key']}' is encrypted: nginx and Caddy need the key without a passphrase"
    ]


def test_a_file_the_user_cannot_read_names_the_user(pem, monkeypatch):
    # The tests run as root, who reads everything: os.access stands in.
    monkeypatch.setattr(host_check.os, "access", lambda path, mode: False)
    monkeypatch.setattr(host_check, "user_name", lambda: "deploy")
    assert messages(files_site("pipelit", pem["a.crt"], pem["a.key"])) == [
        f"site 'pipelit': tls.certificate: '{pem['a.crt']}' cannot be read by user 'deploy' (run the play with become)",
        f"site 'pipelit': tls.certificate_key: '{pem['a.key']}' cannot be read by user 'deploy' (run the play with become)",
    ]


def test_other_tls_modes_have_no_files_to_check(pem):
    site = files_site("pipelit", pem["missing"], pem["missing"])
    for mode in ("acme", "self_signed"):
        site["tls"]["mode"] = mode
        assert host_check.check([site]) == ([], {"files": 0, "names": 0})


def test_an_upstream_ca_file_must_hold_a_certificate(pem):
    assert messages(upstream_site("vault", ["127.0.0.1:8443"], ca_file=pem["a.crt"])) == []
    assert messages(upstream_site("vault", ["127.0.0.1:8443"], ca_file=pem["missing"])) == [
        f"site 'vault': upstreams.app.ca_file: '{pem['missing']}' does not exist on the host"
    ]
    assert messages(upstream_site("vault", ["127.0.0.1:8443"], ca_file=pem["garbage.pem"])) == [
        f"site 'vault': upstreams.app.ca_file: '{pem['garbage.pem']}' holds no PEM certificate"
    ]


def test_the_acme_ca_bundle_names_the_variable(pem):
    assert messages(acme_ca_bundle=pem["a.crt"]) == []
    assert messages(upstream_site("a", ["127.0.0.1:1"], mode="acme"), acme_ca_bundle=pem["missing"]) == [
        f"proxy_sites_acme_ca_bundle: '{pem['missing']}' does not exist on the host"
    ]


def test_problems_come_in_the_sites_order_the_bundle_last(pem):
    first = files_site("first", pem["a.crt"], pem["a.key"], [{"name": "app", "servers": ["backend.invalid:80"]}])
    second = files_site("second", pem["missing"], pem["a.key"])
    sites = [item["site"] for item in host_check.check([first, second], acme_ca_bundle=pem["missing"])[0]]
    assert sites == ["first", "second", None]


@pytest.mark.parametrize(
    "server,host",
    [
        ("127.0.0.1:8000", None),
        ("[::1]:8000", None),
        ("[2001:db8::1]:443", None),
        ("localhost:8000", "localhost"),
        ("app.internal:443", "app.internal"),
        ("1a.example:80", "1a.example"),
        ("unix:/run/app.sock", None),
    ],
)
def test_only_host_names_are_looked_up(server, host):
    assert host_check.server_host(server) == host


def test_localhost_resolves_and_an_invalid_name_does_not():
    problems, checked = host_check.check([upstream_site("pipelit", ["localhost:8000", "127.0.0.1:8001", "backend.invalid:8000"])])
    assert checked == {"files": 0, "names": 2}
    (problem,) = problems
    prefix = "site 'pipelit': upstreams.app.servers[2]: 'backend.invalid:8000' names backend.invalid, which does not resolve on the host ("
    assert problem["message"].startswith(prefix), problem
    # The resolver's words: no such name, or no resolver reachable at all.
    assert problem["message"][len(prefix) : -1] in ("Name or service not known", "Temporary failure in name resolution")
    assert {key: problem[key] for key in ("site", "field", "value")} == {
        "site": "pipelit",
        "field": "upstreams.app.servers[2]",
        "value": "backend.invalid:8000",
    }


def test_each_name_is_looked_up_once_and_named_for_each_server(monkeypatch):
    asked = []

    def getaddrinfo(host, port, **_kwargs):
        asked.append(host)
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(host_check.socket, "getaddrinfo", getaddrinfo)
    site = upstream_site("pipelit", ["app.internal:8000", "10.0.0.5:8000"])
    site["upstreams"].append({"name": "api", "servers": ["app.internal:9000"], "ca_file": None})
    assert messages(site) == [
        "site 'pipelit': upstreams.app.servers[0]: 'app.internal:8000' names app.internal, "
        "which does not resolve on the host (Name or service not known)",
        "site 'pipelit': upstreams.api.servers[0]: 'app.internal:9000' names app.internal, "
        "which does not resolve on the host (Name or service not known)",
    ]
    assert asked == ["app.internal"]


def test_a_resolver_that_never_answers_costs_the_timeout_once(monkeypatch):
    def never(*_args, **_kwargs):
        time.sleep(5)

    monkeypatch.setattr(host_check.socket, "getaddrinfo", never)
    started = time.monotonic()
    answers = host_check.resolve_all(["a.example", "b.example"], 0.2)
    assert time.monotonic() - started < 2
    assert answers == {"a.example": "no answer within 0.2 s", "b.example": "no answer within 0.2 s"}


def test_the_module_fails_with_every_message_and_says_nothing_changed(pem, capsys):
    sites = [files_site("pipelit", pem["a.crt"], pem["b.key"]), upstream_site("other", ["backend.invalid:8000"])]
    code, result = run_module(host_check.main, capsys, sites=sites, _ansible_check_mode=True)
    assert code == 1
    assert result["failed"] is True
    lines = result["msg"].split("\n")
    assert lines[0] == "proxy_sites cannot be served by this host:"
    assert (
        lines[1]
        == f"- site 'pipelit': tls.certificate_key: '{pem['b.key']}' is not the key of the certificate '{pem['a.crt']}' (their public keys differ)"
    )
    assert lines[2].startswith("- site 'other': upstreams.app.servers[0]: 'backend.invalid:8000' names backend.invalid")
    assert lines[3:] == ["Nothing was changed."]
    assert [item["field"] for item in result["problems"]] == ["tls.certificate_key", "upstreams.app.servers[0]"]


def test_the_module_passes_and_changes_nothing(pem, capsys):
    sites = [files_site("pipelit", pem["a.crt"], pem["a.key"]), upstream_site("other", ["localhost:8000"])]
    code, result = run_module(host_check.main, capsys, sites=sites, acme_ca_bundle=pem["b.crt"])
    assert code == 0
    assert result["changed"] is False
    assert result["problems"] == []
    assert result["checked"] == {"files": 3, "names": 1}
