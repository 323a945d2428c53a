"""The edge guards the application's own weak spots (issue 18), on both proxies.

Pipelit's UI route serves `dist / decoded_path` without normalising it; the
stand-ins have the same flaw on purpose (echo_backend.py --serve-files), and
a secret file lies outside their dist/ (molecule/shared/prepare.yml). Both
profiles turn the path guard on, so every spelling that could reach it is
refused with 400 before any upstream sees it, over HTTP/1.1, HTTP/2 and (where
served and the probe speaks it) HTTP/3, and in absolute form, while ordinary paths still reach the backend byte for byte.
Pipelit's private endpoints are answered 404 at the edge; one inventory
setting (a site's exposed_paths) serves one of them again.
"""

import json
import shlex

import pytest
from conftest import FLAVOUR, HTTP3_CHECKED, HTTP3_CURL, PIPELIT, VAULT, run_converge, tried_again_over_http3, valid_sites

SECRET_FILE = "/etc/pipelit-edge-fixture-secret"
SECRET = "pipelit-edge-fixture-secret-never-served"
UI_FILE = "console.log('pipelit-edge fixture app');"
# dist/ is /opt/pipelit-edge-fixture/dist: four '..' reach the root.
UP = "/".join([".."] * 4)
TAIL = SECRET_FILE.lstrip("/")

# Raw paths, sent as they are (curl --path-as-is, --request-target), each a way
# to make a backend that decodes and joins without normalising read the file.
SPELLINGS = {
    "empty segment": f"//{TAIL}",
    "three slashes": f"///{TAIL}",
    "empty segment after a directory": f"/assets//..//..//..//..//{TAIL}",
    "encoded slash": f"/%2F{TAIL}",
    "encoded slash, lower case": f"/%2f{TAIL}",
    "two encoded slashes": f"/%2F%2F{TAIL}",
    "double-encoded slash": f"/%252F{TAIL}",
    "triple-encoded slash": f"/%25252f{TAIL}",
    "double encoding of each digit": f"/%25%32%66{TAIL}",
    "dot segments": f"/assets/{UP}/../{TAIL}",
    "dot segment alone": f"/./{TAIL}",
    "encoded slashes between dots": "/" + "..%2F" * 4 + TAIL,
    "encoded slashes between dots, lower case": "/" + "..%2f" * 4 + TAIL,
    "encoded dots": "/" + "%2e%2e/" * 4 + TAIL,
    "encoded dots, upper case": "/" + "%2E%2E/" * 4 + TAIL,
    "one dot encoded": "/" + ".%2e/" * 4 + TAIL,
    "double-encoded dots": "/" + "%252e%252e/" * 4 + TAIL,
    "all encoded": "/assets/" + "%2e%2e%2f" * 5 + TAIL.replace("/", "%2f"),
    "encoded backslashes": "/" + "..%5c" * 4 + TAIL,
    "encoded backslashes, upper case": "/" + "..%5C" * 4 + TAIL,
    "raw backslashes": "/" + "..\\" * 4 + TAIL,
    "overlong slash": "/" + "..%c0%af" * 4 + TAIL,
    "overlong dots, upper case": "/" + "%C0%AE%C0%AE/" * 4 + TAIL,
    "three-byte overlong slash": "/" + "..%e0%80%af" * 4 + TAIL,
    "semicolon parameters": "/" + "..;/" * 4 + TAIL,
    "NUL byte": f"/assets/%00/{UP}/{TAIL}",
    "trailing dot segment": "/assets/..",
}
# What the backend must still get exactly as sent.
LEGITIMATE = ["/", "/api/v1/workflows/?q=a%2Fb", "/a%20b", "/caf%C3%A9/x", "/api/v1/x?next=../../etc&p=%2F%2E%2E"]
# The pipelit profile's denied_paths, as a client might ask for them.
DENIED = [
    "/docs",
    "/docs/",
    "/docs/oauth2-redirect",
    "/DOCS",
    "/%64ocs",
    "/redoc",
    "/openapi.json",
    "/OpenAPI.json?x=1",
    "/ws/executions/123/",
    "/ws/executions",
    "/api/v1/inbound",
    "/api/v1/inbound/",
]


def requests(probe, ca, domain, cases):
    """Runs curl for each (label, target, options) in one probe command;
    {label: (status, whether the body holds the secret, body)}."""
    script = ["set +e"]
    for index, (_, target, options) in enumerate(cases):
        url = f"https://{domain}{target}" if target.startswith("/") else f"https://{domain}/"
        target_option = [] if target.startswith("/") else ["--request-target", target]
        command = ["curl", "-sS", "--max-time", "30", "--path-as-is", "--cacert", ca, "-o", f"/tmp/guard-{index}", "-w", "%{http_code}"]
        request = shlex.join([*command, *options, *target_option, url])
        if "--http3-only" in options:
            request = tried_again_over_http3(request)
        script.append(request + f"; echo ' {index}'")
    result = probe.run("bash -c " + shlex.quote("\n".join(script)))
    statuses = {}
    for line in result.stdout.splitlines():
        status, index = line.split()
        statuses[int(index)] = int(status)
    bodies = probe.check_output(
        "for f in " + " ".join(f"/tmp/guard-{i}" for i in range(len(cases))) + '; do echo "== $f"; cat $f 2>/dev/null; echo; done'
    )
    found = {}
    for chunk in bodies.split("== /tmp/guard-")[1:]:
        index, _, body = chunk.partition("\n")
        found[int(index)] = body
    return {
        label: (statuses.get(index, 0), SECRET in found.get(index, ""), found.get(index, "")) for index, (label, _, _) in enumerate(cases)
    }


def test_the_stand_in_has_the_flaw_the_guard_is_for(edge):
    # Straight to the backend, the spellings do read the file: a guard that
    # let them through would fail the checks below.
    # (http.client sends the target as given.)
    client = "import http.client, sys; c = http.client.HTTPConnection('127.0.0.1', 8000); c.request('GET', sys.argv[1]); print(c.getresponse().read().decode())"
    for target in (f"//{TAIL}", f"/%2F{TAIL}", "/" + "..%2F" * 4 + TAIL, f"/assets/{UP}/../{TAIL}"):
        body = edge.check_output(shlex.join(["python3", "-c", client, target]))
        assert SECRET in body, target


@pytest.fixture(scope="module")
def ambiguous(probe, ca_files):
    """Every spelling, over HTTP/1.1, HTTP/2 (and HTTP/3), and in absolute form, through
    both sites: {(domain, label): (status, secret seen, body)}."""
    results = {}
    for domain, site in ((PIPELIT, "pipelit"), (VAULT, "aliasvault")):
        cases = []
        for label, target in SPELLINGS.items():
            cases.append((f"{label} (HTTP/1.1)", target, ["--http1.1"]))
            cases.append((f"{label} (HTTP/2)", target, ["--http2"]))
            if HTTP3_CHECKED:
                cases.append((f"{label} (HTTP/3)", target, HTTP3_CURL))
        for label in ("empty segment", "encoded slash", "encoded slashes between dots", "encoded dots"):
            cases.append((f"{label} (absolute form)", f"https://{domain}{SPELLINGS[label]}", ["--http1.1"]))
        for label, outcome in requests(probe, ca_files[site], domain, cases).items():
            results[(domain, label)] = outcome
    return results


def test_there_are_at_least_twenty_five_spellings():
    assert len(SPELLINGS) >= 25


@pytest.mark.parametrize("domain", [PIPELIT, VAULT])
def test_no_spelling_reads_the_secret(ambiguous, domain):
    leaked = sorted(label for (where, label), (_, secret, _) in ambiguous.items() if where == domain and secret)
    assert leaked == [], f"the secret came back through {FLAVOUR['unit']} for: {leaked}"


@pytest.mark.parametrize("domain", [PIPELIT, VAULT])
def test_every_ambiguous_path_is_refused_with_400(ambiguous, domain):
    wrong = {label: status for (where, label), (status, _, _) in ambiguous.items() if where == domain and status != 400}
    assert wrong == {}, f"not refused with 400 by {FLAVOUR['unit']}"


@pytest.mark.parametrize("domain", [PIPELIT, VAULT])
@pytest.mark.parametrize("target", LEGITIMATE)
@pytest.mark.parametrize("protocol", ["--http1.1", "--http2"] + (["--http3-only"] if HTTP3_CHECKED else []))
def test_ordinary_paths_reach_the_backend_byte_for_byte(fetch, domain, target, protocol):
    options = HTTP3_CURL if protocol == "--http3-only" else [protocol]
    seen = fetch(f"https://{domain}{target}", *options, "--path-as-is").json()
    assert seen["target"] == target


def test_the_ui_files_are_still_served(fetch):
    response = fetch(f"https://{PIPELIT}/assets/app.js")
    assert response.status == 200
    assert UI_FILE in response.body
    assert response.headers["x-echo-target"] == "/assets/app.js"


@pytest.mark.parametrize("target", DENIED)
def test_pipelits_private_endpoints_are_not_served(fetch, target):
    response = fetch(f"https://{PIPELIT}{target}", "--path-as-is")
    assert response.status == 404, response.body
    assert '"name"' not in response.body  # the backend never answered


def test_the_unauthenticated_execution_websocket_is_not_served(probe, ca_files):
    # A WebSocket handshake for /ws/executions/{id}/ gets 404 from the edge;
    # the UI's own /ws/?token= still upgrades (test_websocket.py).
    status = probe.check_output(
        shlex.join(
            [
                "curl",
                "-sS",
                "--http1.1",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "--max-time",
                "10",
                "--cacert",
                ca_files["pipelit"],
                "-H",
                "Connection: Upgrade",
                "-H",
                "Upgrade: websocket",
                "-H",
                "Sec-WebSocket-Version: 13",
                "-H",
                "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
                f"https://{PIPELIT}/ws/executions/1/",
            ]
        )
    )
    assert status == "404"


def test_the_api_and_paths_beside_the_denied_ones_still_work(fetch):
    for target in ("/api/v1/workflows/", "/docsearch", "/api/v1/inbound-log", "/ws/?token=x"):
        assert fetch(f"https://{PIPELIT}{target}").json()["target"] == target


def test_aliasvault_keeps_every_path(fetch):
    # Its profile denies nothing: AliasVault's own documentation-like paths
    # are the application's business.
    seen = fetch(f"https://{VAULT}/docs").json()
    assert (seen["name"], seen["target"]) == ("aliasvault", "/docs")


def test_exposed_paths_serves_one_denied_path_again(edge, fetch, after_background_checks):
    sites = valid_sites()
    sites[0]["exposed_paths"] = ["/docs"]
    try:
        result = run_converge({"proxy_sites": sites})
        assert result.returncode == 0, result.output
        assert fetch(f"https://{PIPELIT}/docs").json()["target"] == "/docs"
        for still_denied in ("/redoc", "/openapi.json", "/ws/executions/1/", "/api/v1/inbound"):
            assert fetch(f"https://{PIPELIT}{still_denied}").status == 404, still_denied
    finally:
        restored = run_converge({"proxy_sites": valid_sites()})
    assert restored.returncode == 0, restored.output
    assert fetch(f"https://{PIPELIT}/docs").status == 404


def test_header_names_with_underscores_never_reach_the_backend(fetch, probe_address):
    # A CGI or WSGI backend reads X_Forwarded_For as X-Forwarded-For.
    seen = fetch(
        f"https://{PIPELIT}/api/x",
        "-H",
        "X_Forwarded_For: 127.0.0.1",
        "-H",
        "x_real_IP: 127.0.0.1",
        "-H",
        "X-Forwarded_Host: evil.example",
        "-H",
        "Custom_Header: 1",
    ).json()["headers"]
    assert [name for name in seen if "_" in name] == []
    assert seen["x-forwarded-for"] == probe_address
    assert json.dumps(seen).count("127.0.0.1") == 0
