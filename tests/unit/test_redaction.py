"""The secret-parameter pattern (roles/proxy_sites/filter_plugins/redaction.py),
applied as both renderers apply it: case-insensitively, to a query string,
with the name followed by '=' (nginx's `~*`, Go's `(?i)`). Python's `re`
reads the pattern as PCRE and RE2 do: it has only non-capturing groups,
alternations and character classes."""

from __future__ import annotations

import re

import pytest
from redaction import FilterModule, proxy_sites_param_name_regex

PATTERN = proxy_sites_param_name_regex(["token"])
# A parameter begins the query or follows '&'; its name ends at '='.
QUERY_PARAM = re.compile(r"(?:^\?|&)" + PATTERN + "=", re.IGNORECASE)


@pytest.mark.parametrize(
    "query",
    [
        "?token=x",
        "?%74oken=x",
        "?tok%65n=x",
        "?%54%4F%4B%45%4E=x",
        "?TOKEN=x",
        "?ToKeN=x",
        "?a=1&token=x",
        "?a=1&b=2&%74ok%65n=x",
    ],
)
def test_the_token_in_every_spelling_is_matched(query):
    assert QUERY_PARAM.search(query), (query, PATTERN)


@pytest.mark.parametrize("query", ["?tokens=x", "?mytoken=x", "?a=token", "?toke=x", "?t%6Fke=x", "?tok%2565n=x"])
def test_other_parameters_are_not_matched(query):
    assert not QUERY_PARAM.search(query), (query, PATTERN)


def test_no_capturing_group_and_no_backslash():
    assert re.compile(PATTERN).groups == 0
    assert "\\" not in PATTERN and '"' not in PATTERN


def test_several_names_and_punctuation():
    pattern = re.compile("^" + proxy_sites_param_name_regex(["api_key", "x.sig"]) + "$", re.IGNORECASE)
    for name in ("api_key", "API%5FKEY", "api%5fkey", "x.sig", "x%2esig"):
        assert pattern.match(name), name
    # '.' is a literal character here, not any character.
    assert not pattern.match("xysig")


@pytest.mark.parametrize("char", ["]", "\\", "^", '"', "'"])
def test_a_name_with_a_character_that_would_break_the_config_is_refused(char):
    with pytest.raises(ValueError, match="cannot hold"):
        proxy_sites_param_name_regex([f"a{char}b"])


def test_the_filter_is_registered():
    assert FilterModule().filters()["proxy_sites_param_name_regex"] is proxy_sites_param_name_regex
