"""certbot's tree on disk, with certificates made here with openssl, for the
tests of the certificate-coverage rule and the modules that apply it."""

from __future__ import annotations

import shutil
import subprocess

import pytest

DIRECTORY = "https://acme.example/directory"
SITE = {"name": "pipelit", "domains": ["pipelit.test", "www.pipelit.test"], "http_port": 80}

needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command (Debian's openssl package)")


def openssl(argv):
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    return done.returncode, done.stdout, done.stderr


def make_cert(path, domains, key="ec"):
    path.parent.mkdir(parents=True, exist_ok=True)
    new_key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"] if key == "ec" else ["-newkey", "rsa:2048"]
    san = ",".join(f"DNS:{d}" for d in domains)
    rc, _, err = openssl(
        ["openssl", "req", "-x509", *new_key, "-nodes", "-keyout", str(path.parent / "privkey.pem"), "-out", str(path)]
        + ["-days", "2", "-subj", f"/CN={domains[0]}", "-addext", f"subjectAltName={san}"]
    )
    assert rc == 0, err


def make_letsencrypt(root):
    """certbot's tree with SITE's certificate as certbot would leave it."""
    make_cert(root / "live" / "pipelit-edge-pipelit" / "cert.pem", SITE["domains"])
    (root / "renewal").mkdir()
    (root / "renewal" / "pipelit-edge-pipelit.conf").write_text(f"version = 2.9.0\n[renewalparams]\nserver = {DIRECTORY}\n")
    return root
