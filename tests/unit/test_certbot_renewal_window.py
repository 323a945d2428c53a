"""The certbot role's renewal point (roles/certbot/files/
pipelit-edge-certbot-renewal-window): a third of each certificate's own
lifetime, written as `renew_before_expiry` into its lineage's renewal file
(certbot 2.1 and 4.0 both renew at a fixed 30 days left without it), and the
ACME profile renewals ask for; idempotent, and --check changes nothing."""

from __future__ import annotations

import datetime
import fractions
import json

import pytest
from certificates import make_cert, needs_openssl
from conftest import load_script

window = load_script("roles/certbot/files/pipelit-edge-certbot-renewal-window", "pipelit_edge_certbot_renewal_window")

THIRD = fractions.Fraction(1, 3)
START = datetime.datetime(2027, 2, 10, tzinfo=datetime.UTC)

# A renewal file as certbot 2.1 writes it on a first `certonly` (the
# commented default on the first line; 4.0 writes the same).
CERTBOT_RENEWAL_CONF = """# renew_before_expiry = 30 days
version = 2.1.0
archive_dir = /etc/letsencrypt/archive/pipelit-edge-pipelit
cert = /etc/letsencrypt/live/pipelit-edge-pipelit/cert.pem
privkey = /etc/letsencrypt/live/pipelit-edge-pipelit/privkey.pem
chain = /etc/letsencrypt/live/pipelit-edge-pipelit/chain.pem
fullchain = /etc/letsencrypt/live/pipelit-edge-pipelit/fullchain.pem

# Options used in the renewal process
[renewalparams]
account = 0123456789abcdef
authenticator = webroot
webroot_path = /var/www/pipelit-edge-acme,
server = https://acme.example/directory
key_type = ecdsa
[[webroot_map]]
pipelit.test = /var/www/pipelit-edge-acme
"""


def lifetime(days=0, hours=0, seconds=0):
    return START, START + datetime.timedelta(days=days, hours=hours, seconds=seconds)


@pytest.mark.parametrize(
    ("life", "expected"),
    [
        (lifetime(days=90, seconds=-1), "30 days"),  # Let's Encrypt's 90 days: notAfter is 1 s short
        (lifetime(days=90), "30 days"),
        (lifetime(days=64, seconds=-1), "512 hours"),  # from 2027-02-10: 21 days 8 hours
        (lifetime(days=45, seconds=-1), "15 days"),  # from 2028
        (lifetime(days=6), "2 days"),
        (lifetime(hours=160, seconds=-1), "53 hours"),  # Let's Encrypt's shortlived profile: 160 hours
        (lifetime(days=365 * 5), "14600 hours"),  # Pebble's five years
        (lifetime(hours=2), "1 hours"),  # the floor: 40 minutes would round to 1 hour
        (lifetime(seconds=60), "1 hours"),
        (lifetime(hours=1, seconds=30 * 60 - 3), "1 hours"),  # 29.98 minutes a third: halves up, one hour at least
        (lifetime(hours=4, seconds=30 * 60), "2 hours"),  # 1.5 hours: halves up
    ],
)
def test_a_third_of_the_lifetime_in_whole_hours_or_days(life, expected):
    assert window.renew_before(*life, THIRD) == expected


def test_the_fraction_is_the_operators():
    assert window.renew_before(*lifetime(days=90), fractions.Fraction(1, 2)) == "45 days"
    assert window.renew_before(*lifetime(days=90), window.parse_fraction("0.25")) == "540 hours"
    assert window.parse_fraction("1/3") == THIRD
    for bad in ("0", "1", "3/2", "-1/3", "a third"):
        with pytest.raises(ValueError):
            window.parse_fraction(bad)


def test_certbots_commented_default_becomes_the_line():
    new = window.set_renew_before(CERTBOT_RENEWAL_CONF, "15 days")
    assert new.splitlines()[0] == "renew_before_expiry = 15 days"
    assert new.splitlines()[1:] == CERTBOT_RENEWAL_CONF.splitlines()[1:]
    assert window.set_renew_before(new, "15 days") == new  # idempotent
    assert window.top_level_value(new, "renew_before_expiry") == "15 days"


def test_an_existing_line_is_rewritten_in_place_and_duplicates_dropped():
    text = CERTBOT_RENEWAL_CONF.replace("# renew_before_expiry = 30 days\n", "version = 2.1.0\n", 1).replace(
        "version = 2.1.0\n", "renew_before_expiry = 30 days\n", 1
    )
    text = text.replace("archive_dir", "renew_before_expiry = 3000 days\narchive_dir", 1)
    new = window.set_renew_before(text, "2 days")
    assert new.count("renew_before_expiry") == 1
    assert new.startswith("renew_before_expiry = 2 days\nversion = 2.1.0\narchive_dir")
    assert window.set_renew_before(new, "2 days") == new


def test_without_any_line_it_goes_before_the_first_key_never_into_a_section():
    text = CERTBOT_RENEWAL_CONF.replace("# renew_before_expiry = 30 days\n", "# a comment of the operator's\n")
    new = window.set_renew_before(text, "30 days")
    assert new.startswith("# a comment of the operator's\nrenew_before_expiry = 30 days\nversion = 2.1.0\n")
    # A key of that name inside [renewalparams] is not the top-level one.
    inside = text.replace("key_type = ecdsa\n", "key_type = ecdsa\nrenew_before_expiry = 9 days\n")
    assert window.top_level_value(inside, "renew_before_expiry") is None
    assert "renew_before_expiry = 9 days" in window.set_renew_before(inside, "30 days")


def test_the_profile_goes_into_renewalparams_and_leaves_with_an_empty_value():
    new = window.set_renewal_param(CERTBOT_RENEWAL_CONF, "preferred_profile", "shortlived")
    params = new.split("[renewalparams]\n", 1)[1].split("[[webroot_map]]", 1)[0]
    assert params.endswith("key_type = ecdsa\npreferred_profile = shortlived\n")
    assert window.set_renewal_param(new, "preferred_profile", "shortlived") == new
    assert window.set_renewal_param(new, "preferred_profile", "tlsserver").count("preferred_profile = tlsserver\n") == 1
    assert window.set_renewal_param(new, "preferred_profile", "") == CERTBOT_RENEWAL_CONF
    assert window.set_renewal_param(CERTBOT_RENEWAL_CONF, "preferred_profile", "") == CERTBOT_RENEWAL_CONF


def letsencrypt(tmp_path, days):
    """A lineage on disk with a real certificate of DAYS days."""
    cert = tmp_path / "live" / "pipelit-edge-pipelit" / "cert.pem"
    make_cert(cert, ["pipelit.test"])
    if days != 2:  # make_cert's own lifetime
        window.subprocess.run(
            ["openssl", "req", "-x509", "-key", str(cert.parent / "privkey.pem"), "-days", str(days), "-subj", "/CN=pipelit.test"]
            + ["-out", str(cert)],
            check=True,
            capture_output=True,
        )
    (tmp_path / "renewal").mkdir()
    conf = tmp_path / "renewal" / "pipelit-edge-pipelit.conf"
    conf.write_text(CERTBOT_RENEWAL_CONF.replace("/etc/letsencrypt", str(tmp_path)))
    conf.chmod(0o600)
    (tmp_path / "renewal" / "someone-else.conf").write_text(CERTBOT_RENEWAL_CONF)
    return conf


@needs_openssl
@pytest.mark.parametrize(("days", "expected"), [(90, "30 days"), (45, "15 days"), (6, "2 days")])
def test_each_lineage_follows_its_real_certificate_and_a_second_run_changes_nothing(tmp_path, days, expected):
    conf = letsencrypt(tmp_path, days)
    before = conf.read_text()
    checked = window.run(str(tmp_path), "pipelit-edge-", THIRD, check=True)
    assert checked["changed"] is True and conf.read_text() == before  # --check writes nothing
    assert checked["lineages"][0]["renew_before_expiry"] == expected
    done = window.run(str(tmp_path), "pipelit-edge-", THIRD)
    assert done == checked
    assert done["lineages"] == [
        {"name": "pipelit-edge-pipelit", "renew_before_expiry": expected, "previous": None, "lifetime_hours": days * 24.0, "changed": True}
    ]
    assert conf.read_text().startswith(f"renew_before_expiry = {expected}\n")
    assert conf.stat().st_mode & 0o777 == 0o600  # certbot's mode kept
    assert (tmp_path / "renewal" / "someone-else.conf").read_text() == CERTBOT_RENEWAL_CONF  # not the role's
    again = window.run(str(tmp_path), "pipelit-edge-", THIRD)
    assert again["changed"] is False and again["lineages"][0]["previous"] == expected


@needs_openssl
def test_a_fixed_interval_a_profile_and_the_deploy_hooks_one_lineage(tmp_path, capsys):
    conf = letsencrypt(tmp_path, 90)
    assert window.main(["--prefix", "pipelit-edge-", "--config-dir", str(tmp_path), "--renew-before", "10 days", "--profile", "x"]) == 0
    assert json.loads(capsys.readouterr().out)["lineages"][0]["renew_before_expiry"] == "10 days"
    assert conf.read_text().startswith("renew_before_expiry = 10 days\n") and "preferred_profile = x\n" in conf.read_text()
    # The deploy hook names the renewed lineage; another's is left alone.
    assert window.run(str(tmp_path), "pipelit-edge-", THIRD, lineage="someone-else")["lineages"] == []
    hooked = window.run(str(tmp_path), "pipelit-edge-", THIRD, lineage="pipelit-edge-pipelit")
    assert [lineage["renew_before_expiry"] for lineage in hooked["lineages"]] == ["30 days"]
    assert "preferred_profile = x\n" in conf.read_text()  # the hook leaves the profile to the role


def test_a_lineage_without_a_readable_certificate_is_reported_not_changed(tmp_path):
    (tmp_path / "renewal").mkdir()
    conf = tmp_path / "renewal" / "pipelit-edge-gone.conf"
    conf.write_text(CERTBOT_RENEWAL_CONF.replace("/etc/letsencrypt", str(tmp_path)))
    result = window.run(str(tmp_path), "pipelit-edge-", THIRD)
    assert result["changed"] is False and result["lineages"] == []
    assert result["problems"][0].startswith("pipelit-edge-gone: ")
    assert conf.read_text() == CERTBOT_RENEWAL_CONF.replace("/etc/letsencrypt", str(tmp_path))
