"""Secret query parameters, as both renderers' log filters match them.

A backend decodes a parameter's name before it reads it, so `?%74oken=` and
`?tok%65n=` are the token as much as `?token=` is. The pattern this module
makes matches a name in every spelling of it: each character as itself or
percent-encoded in either case. Applied case-insensitively (nginx's `~*`,
Go's `(?i)`) it also matches upper-case names (`TOKEN`), which the backend
may not read as the token, but which are redacted all the same.
"""

from __future__ import annotations


def _char_pattern(char):
    codes = {f"%{ord(variant):02x}" for variant in {char.lower(), char.upper()}}
    # No backslashes: the pattern goes into quoted strings of nginx.conf and
    # the Caddyfile. A character class takes any punctuation but these.
    if char in "]\\^\"'":
        raise ValueError(f"a redacted query parameter name cannot hold {char!r}")
    literal = char if char.isalnum() or char == "_" else f"[{char}]"
    return "(?:" + "|".join([literal] + sorted(codes)) + ")"


def proxy_sites_param_name_regex(names):
    """['token'] -> a regular expression (nginx PCRE and Go RE2 alike) matching
    any of the names, any character of them percent-encoded; no groups that
    capture."""
    alternatives = ["".join(_char_pattern(char) for char in str(name)) for name in names]
    return "(?:" + "|".join(alternatives) + ")"


class FilterModule:
    def filters(self):
        return {"proxy_sites_param_name_regex": proxy_sites_param_name_regex}
