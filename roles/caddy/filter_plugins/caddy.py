"""What the caddy role needs beyond the site model's own checks.

The site model (roles/proxy_sites) accepts everything nginx can render. Caddy
from the distribution (2.6.2 on Debian 12 and 13) cannot do all of it; this
module names each such request, site and field, so the play stops before any
host changes instead of rendering something that behaves differently. What
the model refuses for both proxies ('*' in a path, braces in a header value)
is not checked again here.
"""

from __future__ import annotations


def caddy_unsupported(sites):
    """One message per thing the model asks for that Caddy 2.6 cannot do."""
    problems = []
    for site in sites or []:
        name = site.get("name")
        if (site.get("tls") or {}).get("challenge") == "dns-01":
            problems.append(
                f"site '{name}': tls.challenge dns-01 needs a DNS provider module, which Debian's Caddy package "
                "does not include; use edge_proxy: nginx (certbot), or tls mode files"
            )
        for index, route in enumerate(site.get("routes", [])):
            field = f"routes[{index}]"
            if route.get("rate_limit"):
                problems.append(
                    f"site '{name}': {field}.rate_limit: Caddy from the distribution has no rate limiting "
                    "(it needs the caddy-ratelimit plugin, which Debian's build lacks); remove rate_limit "
                    "from this route or use the nginx role"
                )
            if route.get("allow") and site.get("trusted_proxies"):
                problems.append(
                    f"site '{name}': {field}.allow: with trusted_proxies, Caddy 2.6 can only match the "
                    "connecting address (the front proxy), not the client it forwards for; drop one of "
                    "them or use the nginx role"
                )
    return problems


class FilterModule:
    def filters(self):
        return {"caddy_unsupported": caddy_unsupported}
