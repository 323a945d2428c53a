"""Plain HTTP: everything but the ACME challenge goes to HTTPS, path and query kept."""

import pytest
from conftest import PIPELIT, VAULT, curl


@pytest.mark.parametrize("domain", [PIPELIT, "www.pipelit.test", VAULT])
def test_http_redirects_to_https_with_path_and_query(probe, domain):
    response = curl(probe, f"http://{domain}/api/x?y=1&z=%20")
    assert response.status == 308
    assert response.redirect == f"https://{domain}/api/x?y=1&z=%20"


def test_post_redirect_keeps_method_and_body(probe):
    # 308, unlike 301, tells the client to repeat the POST with its body.
    response = curl(probe, f"http://{PIPELIT}/api/items", "-d", "a=1", "-L", "-k")
    assert response.status == 200
    echoed = response.json()
    assert echoed["method"] == "POST"
    assert echoed["body_bytes"] == 3
