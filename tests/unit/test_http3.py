"""HTTP/3 (issue 21), the roles' side: the model's http3 field and
proxy_sites_http3, the one decision per proxy (proxy_sites_http3_ports) that
the templates and the served ports read, the rendered nginx and Caddy
configurations, nginx's refusal and warning on Debian 12 (through
ansible-playbook, nothing reached), and the firewall's helpers with a UDP
port. Whether nginx and Caddy accept and serve what is rendered here is the
Molecule tier's."""

from __future__ import annotations

import copy
import re

import edge_verify
import jinja2
import proxy_sites
import pytest
import ufw
import yaml
from conftest import ROOT, ansible_playbook
from templates import render, role_vars

APP = {"servers": ["127.0.0.1:8000"]}
DEFAULTS = yaml.safe_load((ROOT / "roles/proxy_sites/defaults/main.yml").read_text())


def site(name="a", **fields):
    result = {
        "name": name,
        "domains": [f"{name}.example.com"],
        "tls": {"mode": "self_signed"},
        "upstreams": {"app": copy.deepcopy(APP)},
        "routes": [{"path": "/", "upstream": "app"}],
    }
    result.update(fields)
    return result


def model(*sites, http3=False, extra_profiles=None, available=True):
    return proxy_sites.proxy_sites_model(
        list(sites),
        DEFAULTS["proxy_sites_profiles"],
        DEFAULTS["proxy_sites_security_headers"],
        DEFAULTS["proxy_sites_tls_dir"],
        extra_profiles or {},
        http3,
        available,
    )


def normal(*sites, **kwargs):
    result = model(*sites, **kwargs)
    assert result["errors"] == [], result["errors"]
    return result["sites"]


def messages(*sites, **kwargs):
    return [error["message"] for error in model(*sites, **kwargs)["errors"]]


# --- the model ------------------------------------------------------------------


def test_off_by_default():
    assert DEFAULTS["proxy_sites_http3"] is False and DEFAULTS["proxy_sites_http3_available"] is True
    (only,) = normal(site())
    assert (only["http3"], only["http3_requested"], only["http3_explicit"]) == (False, False, False)


def test_a_host_whose_proxy_cannot_serves_no_site_with_http3():
    # proxy_sites_http3_available false (nginx on Debian 12, as the playbooks
    # wire it): each site still says what it asked for, and how.
    inherits, asks = normal(site("a"), site("b", http3=True, https_port=8443), http3=True, available="false")
    assert (inherits["http3"], inherits["http3_requested"], inherits["http3_explicit"]) == (False, True, False)
    assert (asks["http3"], asks["http3_requested"], asks["http3_explicit"]) == (False, True, True)
    assert proxy_sites.proxy_sites_served_ports([inherits, asks]) == ["80/tcp", "443/tcp", "8443/tcp"]
    # The sites of a port still have to agree on what they ask.
    assert messages(site("a", http3=True), site("b"), available=False)[0].startswith("site 'b': http3: is false")
    assert messages(site(), available="maybe") == [
        "site '*': proxy_sites_http3_available: must be true or false (as a string also yes, no, on, off, 1 or 0), not 'maybe'"
    ]


def test_the_global_default_is_inherited_and_a_sites_own_value_wins():
    inherits, refuses, asks = normal(site("a"), site("b", http3=False, https_port=8443), site("c", http3=True, https_port=9443), http3=True)
    assert (inherits["http3"], inherits["http3_requested"], inherits["http3_explicit"]) == (True, True, False)
    assert (refuses["http3"], refuses["http3_explicit"]) == (False, True)
    assert (asks["http3"], asks["http3_explicit"]) == (True, True)


def test_a_profiles_http3_is_the_sites_own_wish():
    (only,) = normal(site("a", profile="h3"), extra_profiles={"h3": {"http3": True}})
    assert (only["http3"], only["http3_explicit"]) == (True, True)


@pytest.mark.parametrize(("value", "expected"), [("true", True), ("yes", True), ("On", True), ("1", True), ("false", False), ("no", False)])
def test_the_global_default_is_read_as_ansible_reads_a_boolean(value, expected):
    (only,) = normal(site(), http3=value)
    assert only["http3"] is expected


@pytest.mark.parametrize("value", ["maybe", "", 2, None, ["true"]])
def test_a_global_default_that_is_no_boolean_is_refused(value):
    assert messages(site(), http3=value)[0].startswith(
        "site '*': proxy_sites_http3: must be true or false (as a string also yes, no, on, off, 1 or 0), not "
    )


@pytest.mark.parametrize(("value", "shown"), [("yes", "'yes'"), (1, "the number 1"), (None, "null"), ({}, "a mapping")])
def test_a_sites_http3_is_exactly_true_or_false(value, shown):
    # As websocket, verify and path_guard: YAML's own booleans only.
    assert messages(site(http3=value)) == [f"site 'a': http3: must be true or false, not {shown}"]


def test_a_profiles_bad_http3_names_the_profile():
    assert "profile 'h3': http3: must be true or false, not 'on'" in messages(site(), extra_profiles={"h3": {"http3": "on"}})


def test_sites_of_one_https_port_must_agree():
    assert messages(site("a", http3=True), site("b", http3=False)) == [
        "site 'b': http3: is false, but site 'a' on the same https_port 443 has http3 true; HTTP/3 is on or off for a "
        "whole HTTPS port (give both sites the same http3, or different https_ports)"
    ]
    # The inherited default counts as the site's value.
    assert messages(site("a"), site("b", http3=False), http3=True)[0].startswith("site 'b': http3: is false, but site 'a'")
    assert messages(site("a", http3=True), site("b", http3=False, https_port=8443)) == []


# --- the decision and the served ports -----------------------------------------


def test_served_ports_add_udp_for_the_ports_that_serve_http3():
    sites = normal(site("a", http3=True), site("b", https_port=8443), site("c", http3=True, https_port=9443))
    assert proxy_sites.proxy_sites_http3_ports(sites) == [443, 9443]
    assert proxy_sites.proxy_sites_served_ports(sites) == ["80/tcp", "443/tcp", "8443/tcp", "9443/tcp", "443/udp", "9443/udp"]
    # A proxy that cannot serve HTTP/3: no port, no UDP.
    assert proxy_sites.proxy_sites_http3_ports(sites, False) == []
    assert proxy_sites.proxy_sites_served_ports(sites, []) == ["80/tcp", "443/tcp", "8443/tcp", "9443/tcp"]
    assert proxy_sites.proxy_sites_served_ports(normal(site())) == ["80/tcp", "443/tcp"]
    assert proxy_sites.proxy_sites_served_ports([]) == []


def test_the_filters_are_registered():
    filters = proxy_sites.FilterModule().filters()
    assert filters["proxy_sites_http3_ports"] is proxy_sites.proxy_sites_http3_ports
    assert filters["proxy_sites_served_ports"] is proxy_sites.proxy_sites_served_ports


@pytest.mark.parametrize(("distribution", "udp"), [("Debian-13.yml", ["443/udp"]), ("default.yml", [])])
def test_nginx_serves_udp_only_where_it_can(distribution, udp):
    values = role_vars("nginx", distribution, [site(http3=True)])
    assert values["nginx_served_ports"] == ["80/tcp", "443/tcp", *udp]
    assert values["nginx_http3_ports"] == ([443] if udp else [])


def test_caddy_serves_udp_for_http3_sites():
    values = role_vars("caddy", "-", [site("a", http3=True), site("b", https_port=8443)])
    assert values["caddy_http3_ports"] == [443]
    assert values["caddy_served_ports"] == ["80/tcp", "443/tcp", "8443/tcp", "443/udp"]


# --- nginx's configuration -------------------------------------------------------


def nginx_config(distribution, sites, **overrides):
    """nginx.conf and every site's file, as one text, and the values."""
    values = role_vars("nginx", distribution, sites, **overrides)
    parts = [render("nginx", "nginx.conf.j2", values)]
    parts += [render("nginx", "site.conf.j2", values, site=one) for one in values["proxy_sites_normalized"]]
    return "\n".join(parts), values


def directives(text, name):
    return [line.strip() for line in text.splitlines() if line.strip().startswith(name + " ")]


def test_nginx_on_debian_13_serves_http3_for_the_sites_that_ask():
    text, _ = nginx_config("Debian-13.yml", [site("a", http3=True), site("b", http3=True), site("c", https_port=8443)])
    listens = directives(text, "listen")
    # reuseport exactly once per address and port, on the catch-all of 443.
    reuseport = [line for line in listens if "reuseport" in line]
    assert sorted(reuseport) == ["listen 443 quic reuseport;", "listen [::]:443 quic reuseport;"]
    # Each h3 site listens for QUIC on its own port, IPv4 and IPv6.
    assert listens.count("listen 443 quic;") == 2 and listens.count("listen [::]:443 quic;") == 2
    assert not [line for line in listens if "8443" in line and "quic" in line]
    assert directives(text, "http3") == ["http3 on;", "http3 on;"]
    assert directives(text, "quic_retry") == ["quic_retry off;"]
    assert directives(text, "ssl_early_data") == ["ssl_early_data off;"]
    assert "ssl_early_data on;" not in text
    assert directives(text, "add_header Alt-Svc") == ["add_header Alt-Svc 'h3=\":443\"; ma=86400' always;"] * 2


def test_the_catch_all_refuses_unknown_names_over_quic_too():
    text, values = nginx_config("Debian-13.yml", [site("a", http3=True)])
    conf = render("nginx", "nginx.conf.j2", values)
    (catch_all,) = [block for block in re.findall(r"\n    server \{\n.*?\n    \}\n", conf, re.S) if "ssl_reject_handshake" in block]
    assert "listen 443 quic reuseport;" in catch_all and "ssl_reject_handshake on;" in catch_all
    # The catch-all comes before the sites' files: the port's first server.
    assert conf.index("listen 443 quic reuseport;") < conf.index("include sites-enabled/*;")


def test_alt_svc_is_on_every_https_response_of_the_site():
    # nginx drops a server's add_header in a location with an add_header of
    # its own: the site's locations have none, so the refusals (421, 400,
    # 404) and the proxied answers all carry Alt-Svc, as the security headers.
    text, values = nginx_config("Debian-13.yml", [site("a", http3=True, profile="pipelit", routes=[])])
    site_text = render("nginx", "site.conf.j2", values, site=values["proxy_sites_normalized"][0])
    https = site_text[site_text.index("listen 443 ssl") :]
    assert https.count("add_header ") == len(values["proxy_sites_normalized"][0]["headers"]) + 1
    for location in re.findall(r"\n    location [^\n]*\{\n(.*?)\n    \}", https, re.S):
        assert "add_header" not in location


@pytest.mark.parametrize("explicit", [False, True])
def test_nginx_on_debian_12_renders_no_quic_at_all(explicit):
    sites = [site("a", http3=True)] if explicit else [site("a")]
    text, values = nginx_config("default.yml", sites, proxy_sites_http3=True)
    for word in ("quic", "http3", "Alt-Svc", "ssl_early_data", "reuseport"):
        assert word not in text.replace("http3: ", ""), word
    assert values["nginx_served_ports"] == ["80/tcp", "443/tcp"]


def test_nginx_without_http3_renders_no_quic_on_debian_13():
    text, _ = nginx_config("Debian-13.yml", [site("a")])
    assert not [line for line in directives(text, "listen") if "quic" in line]
    assert "Alt-Svc" not in text and "quic_retry" not in text


# --- Caddy's configuration -------------------------------------------------------


def caddyfile(sites, **overrides):
    return render("caddy", "Caddyfile.j2", role_vars("caddy", "-", sites, **overrides))


def global_options(text):
    return text[text.index("\n{\n") : text.index("\n}\n")]


def test_caddy_turns_h3_on_per_https_listener():
    options = global_options(caddyfile([site("a", http3=True), site("b", https_port=8443)]))
    assert "\tservers :443 {\n\t\tprotocols h1 h2 h3\n" in options
    assert "servers :8443" not in options
    # The general block comes last: Caddy applies the first that matches.
    assert options.index("servers :443 {") < options.index("\tservers {\n")
    assert re.findall(r"protocols .*", options) == ["protocols h1 h2 h3", "protocols h1 h2"]
    assert options.count("strict_sni_host on") == 2 and options.count("read_header 30s") == 2
    text = caddyfile([site("a", http3=True)])
    assert not re.search(r"^\s*(header\s+)?Alt-Svc", text, re.M | re.I)  # Caddy sends it itself


def test_caddy_without_http3_has_one_servers_block_without_h3():
    options = global_options(caddyfile([site("a")]))
    assert re.findall(r"servers.*\{", options) == ["servers {"]
    assert re.findall(r"protocols .*", options) == ["protocols h1 h2"]


# --- nginx's refusal and warning on Debian 12 -------------------------------------


def validate(tmp_path, major, sites, **extra):
    playbook = tmp_path / "play.yml"
    playbook.write_text(
        yaml.safe_dump(
            [
                {
                    "name": "HTTP/3",
                    "hosts": "localhost",
                    "connection": "local",
                    "gather_facts": False,
                    "tasks": [
                        {"name": "Check", "ansible.builtin.import_role": {"name": "nginx", "tasks_from": "validate.yml"}},
                        {"name": "Show the served ports", "ansible.builtin.debug": {"msg": "served {{ nginx_served_ports | join(' ') }}"}},
                    ],
                }
            ]
        )
    )
    facts = {"ansible_facts": {"distribution": "Debian", "distribution_major_version": major}}
    return ansible_playbook(
        "localhost,",
        playbook,
        {**facts, "proxy_sites_host_checks": False, "proxy_sites": sites, **extra},
        ANSIBLE_ROLES_PATH=str(ROOT / "roles"),
    )


def test_debian_12_refuses_a_sites_own_http3_before_any_change(tmp_path):
    rc, output = validate(tmp_path, "12", [site("a"), site("b", http3=True, https_port=8443)], proxy_sites_http3="true")
    assert rc != 0, output
    flat = " ".join(output.replace("''", "'").split())
    refusal = "site(s) 'b': http3: true, but this host runs Debian 12, whose nginx (1.22 on Debian 12) has no HTTP/3 module."
    assert refusal in flat, output[-3000:]
    assert "Nothing was changed." in flat
    assert "served " not in output


def test_debian_12_serves_an_inherited_http3_without_it_and_warns(tmp_path):
    rc, output = validate(tmp_path, "12", [site("a")], proxy_sites_http3="true")
    assert rc == 0, output[-3000:]
    flat = " ".join(output.split())
    assert "[WARNING]: proxy_sites_http3 is true, but Debian 12's nginx" in flat and "site(s) a on localhost" in flat
    assert "served 80/tcp 443/tcp" in flat and "udp" not in flat.split("served ", 1)[1].split('"')[0]


def test_debian_13_serves_http3_and_opens_udp(tmp_path):
    rc, output = validate(tmp_path, "13", [site("a", http3=True)])
    assert rc == 0, output[-3000:]
    assert "[WARNING]: proxy_sites_http3" not in output
    assert "served 80/tcp 443/tcp 443/udp" in output


# --- the firewall with a UDP port --------------------------------------------------


SERVICE = ["80/tcp", "443/tcp", "443/udp"]


def tuples(rule, port, proto, comment):
    suffix = f" in comment={comment.encode().hex()}"
    return [f"v4 {rule} {proto} {port} 0.0.0.0/0 any 0.0.0.0/0{suffix}", f"v6 {rule} {proto} {port} ::/0 any ::/0{suffix}"]


def test_ufw_takes_the_udp_port_beside_the_tcp_one():
    assert ufw.ufw_input_errors([], SERVICE, ["8000/tcp", "6379/tcp"], 22) == []
    assert ufw.ufw_ports(SERVICE) == [{"port": 80, "proto": "tcp"}, {"port": 443, "proto": "tcp"}, {"port": 443, "proto": "udp"}]


def test_ufw_closes_udp_443_when_no_site_serves_http3_any_more():
    held = [line for spec in ("80/tcp", "443/tcp", "443/udp") for line in tuples("allow", *spec.split("/"), "pipelit-edge service")]
    assert ufw.ufw_stale_rules(held, SERVICE, [], True) == []
    (stale,) = ufw.ufw_stale_rules(held, ["80/tcp", "443/tcp"], [], True)
    assert (stale["rule"], stale["port"], stale["proto"], stale["families"]) == ("allow", 443, "udp", ["v4", "v6"])
    assert ufw.ufw_own_ports(held, "pipelit-edge service") == SERVICE
    assert ufw.ufw_rule_in_place(held, "allow", 443, "udp", "pipelit-edge service")


def test_edge_verify_expects_the_udp_port_allowed():
    status = (
        "Status: active\nDefault: deny (incoming), allow (outgoing), deny (routed)\n"
        "443/tcp                    ALLOW IN    Anywhere                   # pipelit-edge service\n"
        "443/udp                    ALLOW IN    Anywhere                   # pipelit-edge service\n"
        "443/tcp (v6)               ALLOW IN    Anywhere (v6)              # pipelit-edge service\n"
    )
    rows = {row["target"]: row for row in edge_verify.firewall_rows(status, 0, ["443/tcp", "443/udp"], [])}
    assert rows["443/tcp"]["status"] == "pass"
    assert rows["443/udp"]["status"] == "fail" and rows["443/udp"]["detail"] == "not allowed from anywhere for IPv6"
    status += "443/udp (v6)               ALLOW IN    Anywhere (v6)              # pipelit-edge service\n"
    rows = {row["target"]: row for row in edge_verify.firewall_rows(status, 0, ["443/tcp", "443/udp"], [])}
    assert rows["443/udp"] == {"check": "firewall", "target": "443/udp", "status": "pass", "detail": "allowed from anywhere"}


def test_the_playbooks_wire_the_proxys_ability_into_the_model():
    edge = yaml.safe_load((ROOT / "playbooks/edge.yml").read_text())[1]
    wired = edge["vars"]["proxy_sites_http3_available"]
    environment = jinja2.Environment()
    for proxy, expected in (("nginx", "False"), ("caddy", "True")):
        assert environment.from_string(wired).render(edge_proxy=proxy, nginx_http3_supported=False, caddy_http3_supported=True) == expected
    # Before the roles: the model reads it.
    assert [task["ansible.builtin.import_tasks"] for task in edge["pre_tasks"] if "ansible.builtin.import_tasks" in task] == [
        "../roles/nginx/tasks/distribution.yml"
    ]
    verify = yaml.safe_load((ROOT / "playbooks/verify.yml").read_text())[1]
    wired = verify["vars"]["proxy_sites_http3_available"]
    assert environment.from_string(wired).render(nginx_http3_supported=False) == "False"
    assert environment.from_string(wired).render() == "True"  # Caddy's hosts: nginx's vars are not loaded
    assert "../roles/nginx/tasks/distribution.yml" in [task.get("ansible.builtin.import_tasks") for task in verify["pre_tasks"]]


def test_edge_yml_refuses_it_before_the_firewall(tmp_path):
    # playbooks/edge.yml imports validate.yml (and so the per-distribution
    # variables) before the firewall: the refusal comes first, on a host
    # that is never reached.
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(yaml.safe_dump({"edge_hosts": {"children": {"pipelit_edge": {"hosts": {"edge.invalid": {}}}}}}))
    extra = {
        "edge_proxy": "nginx",
        "ansible_connection": "local",
        "ansible_facts": {"distribution": "Debian", "distribution_major_version": "12"},
        "proxy_sites_host_checks": False,
        "proxy_sites": [site("a", http3=True)],
    }
    rc, output = ansible_playbook(inventory, ROOT / "playbooks" / "edge.yml", extra, ANSIBLE_GATHERING="explicit")
    assert rc != 0
    assert "site(s) ''a'': http3: true" in output or "site(s) 'a': http3: true" in output, output[-3000:]
    assert "TASK [ufw" not in output
