"""No token in any log, whatever goes wrong.

Pipelit's WebSocket token travels in the query string, and its clients
reconnect in a loop while the backend is down. The edge logs each request
(access log) and what went wrong (nginx's error log, Caddy's journal): none
of them may hold a token, however the client spells or repeats it, and
whatever happens upstream (refused, timed out) or at the edge (413).

These checks stop the Pipelit stand-in, so they wait for the suite's
background checks (after_background_checks). One of those is the timeout
case: the suite's hung request (conftest.hung_request), sent when the suite
starts, so its read timeout (60 s) passes while other checks run.
"""

import secrets
import shlex

import pytest
from conftest import FLAVOUR, HUNG_REQUEST_TOKEN, PIPELIT, READ_TIMEOUT_SECONDS, curl, ws_check

# Each case gets a secret of its own, so a leak names the case.
SECRETS = {
    case: f"leak-{case}-{secrets.token_hex(6)}"
    for case in (
        "plain",
        "repeated",
        "encoded-t",
        "encoded-e",
        "upper",
        "encoded-upper",
        "middle",
        "api-key",
        "api-key-encoded",
        "api-key-upper",
        "down-ws",
        "down-api",
        "down-repeated",
        "down-api-key",
        "too-large",
    )
}
SECRETS["timeout"] = HUNG_REQUEST_TOKEN  # sent by the suite's hung request
STAND_IN = "stand-in-pipelit"  # the Pipelit backend's unit on the edge


def fetch_quietly(probe, ca, url, *options):
    """A request whose answer does not matter (502, 504, 413): its status."""
    result = probe.run(
        shlex.join(["curl", "-sS", "--max-time", "90", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", ca, *options, url])
    )
    return int(result.stdout or 0)


@pytest.fixture(scope="module")
def logs_after_failures(edge, probe, ca_files, hung_request, after_background_checks):
    ca = ca_files["pipelit"]
    # The backend hangs: the edge gave up after the route's read timeout
    # (the suite's hung request, answered by now: after_background_checks).
    hung = hung_request()
    since = hung["sent_at"]
    statuses = {"timeout": hung["status"]}
    # Spellings the backend decodes to the token, and repeats.
    for case, query in {
        "plain": "token={}",
        "repeated": "token={}&token=x",
        "encoded-t": "%74oken={}",
        "encoded-e": "tok%65n={}",
        "upper": "TOKEN={}",
        "encoded-upper": "%54OKEN={}&x=1",
        "middle": "a=1&token={}&b=2",
        # Pipelit's webhook trigger takes its key as ?api_key= (the profile's
        # secret_query_params), under the same spellings.
        "api-key": "api_key={}",
        "api-key-encoded": "api%5Fkey={}&x=1",
        "api-key-upper": "API_KEY={}",
    }.items():
        statuses[case] = fetch_quietly(probe, ca, f"https://{PIPELIT}/ws/?{query.format(SECRETS[case])}")

    # The backend down: WebSocket clients reconnecting, and plain requests.
    edge.check_output(f"systemctl stop {STAND_IN}")
    try:
        for _ in range(3):
            ws_check(probe, f"wss://{PIPELIT}/ws/?token={SECRETS['down-ws']}", ca)
        statuses["down-api"] = fetch_quietly(probe, ca, f"https://{PIPELIT}/api/x?token={SECRETS['down-api']}")
        statuses["down-repeated"] = fetch_quietly(probe, ca, f"https://{PIPELIT}/api/x?token={SECRETS['down-repeated']}&token=again")
        statuses["down-api-key"] = fetch_quietly(probe, ca, f"https://{PIPELIT}/api/v1/hooks/x?api_key={SECRETS['down-api-key']}")
    finally:
        edge.check_output(f"systemctl start {STAND_IN}")
        # Started is not listening yet: wait for its port.
        edge.check_output("timeout 30 bash -c 'until : </dev/tcp/127.0.0.1/8000; do sleep 0.2; done' 2>/dev/null")

    # A body too large is refused at the edge: the backend, which would wait
    # for the announced body, never sees it.
    statuses["too-large"] = fetch_quietly(
        probe,
        ca,
        f"https://{PIPELIT}/upload?token={SECRETS['too-large']}",
        "--http1.1",
        "-X",
        "POST",
        "-H",
        "Content-Length: 99999999999",
    )
    assert curl(probe, f"https://{PIPELIT}/api/back", ca=ca).status == 200

    files = edge.check_output(f"find {' '.join(FLAVOUR['log_dirs'])} -type f -print0 | xargs -0 cat")
    journal = edge.check_output(f"journalctl -u {FLAVOUR['unit']} --since '{since}' --no-pager -o cat")
    access = edge.file(FLAVOUR["access_log"]).content_string
    return {"statuses": statuses, "waited": hung["seconds"], "files": files, "journal": journal, "access": access}


def test_the_failures_happened(logs_after_failures):
    statuses = logs_after_failures["statuses"]
    assert statuses["down-api"] == 502
    assert statuses["timeout"] == 504 or (FLAVOUR["unit"] == "caddy" and statuses["timeout"] == 502), statuses
    assert logs_after_failures["waited"] > READ_TIMEOUT_SECONDS - 10  # the read timeout, not a refusal
    assert statuses["too-large"] == 413


@pytest.mark.parametrize("case", sorted(SECRETS))
def test_no_token_in_any_log(logs_after_failures, case):
    for where in ("files", "journal"):
        assert SECRETS[case] not in logs_after_failures[where], f"{case}'s token is in the {where}"


def test_the_requests_are_logged_without_their_tokens(logs_after_failures):
    access = logs_after_failures["access"]
    for path in ("/api/x?", "/api/slow?", "/upload?"):
        assert path in access
    assert "token=REDACTED" in access
    assert "api_key=REDACTED" in access
