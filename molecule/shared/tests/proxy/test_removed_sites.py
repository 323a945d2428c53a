"""A site that leaves the model takes its private key with it (issue 19): the
nginx role removes the certificate directory of a self_signed site once the
configuration without it is in place. (Caddy keeps its own certificates in
its storage: the edge's directory is nginx's.)"""

import pytest
from conftest import PROXY, run_converge, valid_sites

pytestmark = pytest.mark.skipif(PROXY != "nginx", reason="the edge's certificate directory is the nginx role's")

TLS_DIR = "/etc/ssl/pipelit-edge"


def test_a_removed_sites_key_is_removed(edge, after_background_checks):
    extra = {"name": "extra", "profile": "pipelit", "domains": ["extra.pipelit.test"], "tls": {"mode": "self_signed"}}
    added = run_converge({"proxy_sites": valid_sites() + [extra]})
    assert added.returncode == 0, added.output
    key = edge.file(f"{TLS_DIR}/extra/privkey.pem")
    assert key.exists and key.mode == 0o600
    removed = run_converge({"proxy_sites": valid_sites()})
    assert removed.returncode == 0, removed.output
    assert not edge.file(f"{TLS_DIR}/extra").exists
    # The sites that stay keep theirs.
    for site in ("pipelit", "aliasvault"):
        assert edge.file(f"{TLS_DIR}/{site}/privkey.pem").exists
