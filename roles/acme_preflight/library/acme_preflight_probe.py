#!/usr/bin/python
"""The ACME pre-flight's outside checks, run where the clients are."""

from __future__ import annotations

DOCUMENTATION = r"""
module: acme_preflight_probe
short_description: Check that acme domains resolve to an edge host and that its HTTP port serves this run's token.
description:
  - Runs on the machine it is delegated to (the controller, or a probe host), so resolution and connections happen
    there, as for any client on the internet.
  - For each check, resolves the domain (C(getaddrinfo)); every address it resolves to must be one of I(addresses).
    Then, unless I(http) is false, fetches C(http://DOMAIN:PORT/PATH/TOKEN) from each of those addresses (the Host
    header is the domain, as the CA sends it) and wants the token back, with no redirect.
  - Never fails and changes nothing; returns one result per check in C(results) and the failures' messages, each
    naming the site, the domain, what it resolved to and what answered, in C(failures).
  - Standard library only, so it runs on any host with Python 3.
options:
  checks:
    description: >-
      What to check, each with C(site), C(domain) and C(port), and optionally C(http) (false: resolve only, for a
      port whose listener cannot serve the token yet).
    type: list
    elements: dict
    required: true
  addresses:
    description: The host's addresses; entries that are not IP addresses (a host name) are ignored.
    type: list
    elements: str
    required: true
  path:
    description: The URL path of the pre-flight directory, ending in C(/).
    type: str
    required: true
  token:
    description: The file name and the content that the HTTP port must answer with.
    type: str
    default: ""
  http:
    description: Fetch the token (false in check mode, where no token was placed).
    type: bool
    default: true
  timeout:
    description: Seconds to wait for each resolution, connection and answer.
    type: float
    default: 10
"""

import http.client
import ipaddress
import socket

from ansible.module_utils.basic import AnsibleModule

# Enough of a body to show what answered instead of the token.
SHOWN_BYTES = 80


def normalized(address):
    """An address in one spelling (an IPv4-mapped IPv6 address as IPv4); None if it is not one."""
    try:
        parsed = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return None
    if parsed.version == 6 and parsed.ipv4_mapped:
        parsed = parsed.ipv4_mapped
    return str(parsed)


def resolve(domain, port):
    """The addresses a client here gets for the domain, in getaddrinfo's order."""
    found = []
    for _, _, _, _, sockaddr in socket.getaddrinfo(domain, port, type=socket.SOCK_STREAM):
        address = normalized(sockaddr[0])
        if address and address not in found:
            found.append(address)
    return found


def fetch(address, port, domain, path, timeout):
    """(status, what answered) of GET path from address with Host: domain;
    status None when nothing answered."""
    host = "[%s]" % address if ":" in address else address
    connection = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        connection.request(
            "GET",
            path,
            headers={
                "Host": domain if port == 80 else "%s:%d" % (domain, port),
                "User-Agent": "pipelit-edge-acme-preflight",
                "Connection": "close",
            },
        )
        response = connection.getresponse()
        body = response.read(4096)
        return response.status, body, response.getheader("Server", ""), response.getheader("Location", "")
    except ConnectionRefusedError:
        return None, "no answer (connection refused)", "", ""
    except TimeoutError:
        return None, "no answer within %g s" % timeout, "", ""
    except http.client.RemoteDisconnected:
        return None, "no answer (the connection was closed)", "", ""
    except (OSError, http.client.HTTPException) as exc:
        return None, "no answer (%s)" % (exc or type(exc).__name__), "", ""
    finally:
        connection.close()


def check(item, addresses, params):
    site, domain, port = item["site"], item["domain"], int(item.get("port", 80))
    prefix = "site '%s': domain %s" % (site, domain)
    result = {"site": site, "domain": domain, "port": port, "resolved": [], "answers": [], "ok": False}
    try:
        result["resolved"] = resolve(domain, port)
    except (OSError, UnicodeError) as exc:
        result["failure"] = "%s does not resolve from %s (%s)" % (prefix, socket.gethostname(), exc)
        return result
    elsewhere = [a for a in result["resolved"] if a not in addresses]
    if not result["resolved"] or elsewhere:
        host = ", ".join(sorted(addresses)) or "no address known"
        if len(elsewhere) == len(result["resolved"]):
            result["failure"] = "%s resolves to [%s], not this host (%s)" % (prefix, ", ".join(elsewhere), host)
        else:
            result["failure"] = "%s resolves to [%s], and %s is not this host (%s)" % (
                prefix,
                ", ".join(result["resolved"]),
                ", ".join(elsewhere),
                host,
            )
        return result
    if not (params["http"] and item.get("http", True)):
        result["ok"] = True
        return result
    path = params["path"] + params["token"]
    url = "http://%s%s%s" % (domain, "" if port == 80 else ":%d" % port, path)
    wrong = []
    for address in result["resolved"]:
        status, body, server, location = fetch(address, port, domain, path, params["timeout"])
        if status is None:
            answer = body
        elif status == 200 and body.strip() == params["token"].encode():
            result["answers"].append({"address": address, "status": status, "token": True})
            continue
        else:
            shown = body[:SHOWN_BYTES].decode("utf-8", "replace").strip()
            answer = "answered %d%s%s%s" % (
                status,
                " (Server: %s)" % server if server else "",
                " to %s" % location if location else "",
                ", body %r" % shown if shown else ", empty body",
            )
        result["answers"].append({"address": address, "status": status, "token": False, "answer": answer})
        wrong.append("%s from %s" % (answer, address))
    if wrong:
        result["failure"] = "%s resolves to this host, but %s: %s, not the token" % (prefix, url, "; ".join(wrong))
    else:
        result["ok"] = True
    return result


def main():
    module = AnsibleModule(
        argument_spec=dict(
            checks=dict(type="list", elements="dict", required=True),
            addresses=dict(type="list", elements="str", required=True),
            path=dict(type="str", required=True),
            # Random per run, and useless once the run has removed its file.
            token=dict(type="str", default="", no_log=False),
            http=dict(type="bool", default=True),
            timeout=dict(type="float", default=10),
        ),
        supports_check_mode=True,
    )
    socket.setdefaulttimeout(module.params["timeout"])
    addresses = {a for a in map(normalized, module.params["addresses"]) if a}
    results = [check(item, addresses, module.params) for item in module.params["checks"]]
    module.exit_json(changed=False, results=results, failures=[r["failure"] for r in results if "failure" in r])


if __name__ == "__main__":
    main()
