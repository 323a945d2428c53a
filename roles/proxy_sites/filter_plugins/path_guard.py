"""The path guard: request targets whose path could name another file.

A backend that serves `base_dir / decoded_path` without normalising it (as
Pipelit's UI route does) reads outside its directory when the path holds an
empty or dot segment, or a separator it decodes itself. A site with
`path_guard: true` refuses, with 400 and before any upstream sees it, a
request whose raw path (the target before '?', as the client sent it) holds:

- an empty segment: `//`;
- a dot segment: `/./`, `/../`, or `/.` or `/..` at the end, also when
  followed by `;` parameters (`/..;/`, which Java servers strip);
- a backslash, which Windows and some frameworks read as '/';
- a percent-encoded '/', '\\', '.' or NUL (`%2f`, `%5c`, `%2e`, `%00`), in
  either case;
- a double encoding: `%25` followed by a hex digit or another '%'
  (`%252f`, `%25%32%66`), which a second decoding turns into one of the above;
- an overlong UTF-8 form: the lead bytes `%c0` and `%c1` (never valid), and
  `%e0%8x`, `%e0%9x`, `%f0%8x` (three and four bytes spelling what fewer
  would): decoders that accept them read '/', '\\' or '.'.

Query strings pass untouched, and so do ordinary encodings in the path
(`%20`, UTF-8 such as `%c3%a9`). An absolute-form target
(`GET https://host//etc/x HTTP/1.1`) is judged by its path: the scheme and
authority are skipped first. nginx matches $request_uri, Caddy the original
request URI; both are the target as the client sent it.
"""

from __future__ import annotations

# One pattern, applied case-insensitively (nginx `~*`, Go `(?i)`); PCRE and
# RE2 read it alike. The optional scheme and authority must come first, and
# the path after them starts with '/', so the '//' of `https://` is never
# taken for an empty segment.
PATH_GUARD_PATTERN = (
    r"^(?:[a-z][a-z0-9+.-]*://[^/?#]*)?"  # absolute form: skip scheme://authority
    r"(?:/[^?]*)?"  # any part of the path before the finding
    r"(?:"
    r"//"  # an empty segment
    r"|/\.\.?(?:[/;?]|$)"  # a dot segment
    r"|\\"  # a backslash
    r"|%(?:2f|5c|2e|00"  # an encoded separator, dot or NUL
    r"|25[0-9a-f%]"  # a double encoding
    r"|c[01]|e0%[89]|f0%8)"  # overlong UTF-8
    r")"
)


def proxy_sites_path_guard_pattern(_unused=None):
    """The guard's regular expression (without the case-insensitive flag,
    which each renderer sets its own way)."""
    return PATH_GUARD_PATTERN


class FilterModule:
    def filters(self):
        return {"proxy_sites_path_guard_pattern": proxy_sites_path_guard_pattern}
