"""Request body limits from the model: 50 MB for Pipelit, 100 MB for AliasVault."""

import pytest
from conftest import PIPELIT, VAULT

MB = 1024 * 1024


@pytest.fixture(scope="module")
def bodies(probe):
    for size in (49, 51):
        probe.run(f"test -f /tmp/body-{size}m || head -c {size * MB} /dev/zero > /tmp/body-{size}m")
    return {size: f"@/tmp/body-{size}m" for size in (49, 51)}


def test_pipelit_accepts_49_mb(fetch, bodies):
    response = fetch(f"https://{PIPELIT}/api/upload", "--data-binary", bodies[49])
    assert response.status == 200
    assert response.json()["body_bytes"] == 49 * MB


def test_pipelit_refuses_51_mb(fetch, bodies):
    response = fetch(f"https://{PIPELIT}/api/upload", "--data-binary", bodies[51])
    assert response.status == 413


def test_aliasvault_accepts_51_mb(fetch, bodies):
    response = fetch(f"https://{VAULT}/api/upload", "--data-binary", bodies[51])
    assert response.status == 200
    assert response.json()["body_bytes"] == 51 * MB
