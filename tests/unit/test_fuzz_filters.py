"""Fuzzing containerd's filter language (:mod:`pycontainerd.filters`): arbitrary strings
parse or raise InvalidArgument (never another exception); filters generated from the
grammar — any field path, operator and value, quoted and escaped as needed — parse back
to exactly what was generated, and match an object exactly when a direct evaluation of
the same selectors says so. ``FUZZ_EXAMPLES=N`` scales the example counts.
"""

from __future__ import annotations

import os
import re
import string

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pycontainerd import filters
from pycontainerd.errdefs import InvalidArgument


def fuzz_settings(default: int):
    n = int(os.environ.get("FUZZ_EXAMPLES", "0") or 0)
    return settings(max_examples=n or default, deadline=None, suppress_health_check=[HealthCheck.too_slow])


SYNTAX = '"/|\\.,=!~ \t\nabcAB_09xuU'


@fuzz_settings(600)
@given(st.one_of(st.text(max_size=60), st.text(SYNTAX, max_size=60)),
       st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=3))
def test_fuzz_arbitrary_strings(text, labels):
    try:
        f = filters.parse(text)
    except InvalidArgument:
        return
    f.match(lambda path: filters.adapt_labels(path, labels) if path and path[0] == "labels" else None)
    filters.parse_all([text, ""]).match(lambda path: None)


# --- generated filters -------------------------------------------------------------------------

BARE_FIELD = st.text(string.ascii_letters + string.digits + "_", min_size=1, max_size=6)
ANY_FIELD = st.text(st.characters(blacklist_categories=("Cs",)), min_size=0, max_size=6)
VALUE = st.text(st.characters(blacklist_categories=("Cs",)), max_size=8)


def quote(text: str, q: str = '"') -> str:
    """The filter language's quoted form: the quote and backslash escaped, every other
    non-printable or non-ASCII character as ``\\UXXXXXXXX`` (newline cannot appear raw)."""
    out = [q]
    for ch in text:
        if ch == q or ch == "\\":
            out.append("\\" + ch)
        elif ch.isascii() and ch.isprintable():
            out.append(ch)
        else:
            out.append(f"\\U{ord(ch):08x}")
    out.append(q)
    return "".join(out)


def render_field(name: str) -> str:
    return name if re.fullmatch(r"[A-Za-z0-9_]+", name) else quote(name)


def render_value(value: str, op: str, q: str) -> str:
    if q == "bare" and value and re.fullmatch(r"[A-Za-z0-9_:/-]+", value) and not value.startswith(("/", "|")):
        return value
    return quote(value, '"' if q == "bare" else q)


@st.composite
def selector(draw):
    path = tuple(draw(st.lists(st.one_of(BARE_FIELD, ANY_FIELD), min_size=1, max_size=3)))
    op = draw(st.sampled_from(["?", "==", "!=", "~="]))
    if op == "?":
        return path, op, "", "bare"
    if op == "~=":
        value = re.escape(draw(VALUE)) + draw(st.sampled_from(["", ".*", "^", "$", "[a-z]+"]))
        q = draw(st.sampled_from(["bare", '"', "/", "|"]))
    else:
        value = draw(VALUE)
        q = draw(st.sampled_from(["bare", '"']))
    return path, op, value, q


def render(selectors) -> str:
    parts = []
    for path, op, value, q in selectors:
        s = ".".join(render_field(f) for f in path)
        if op != "?":
            s += op + render_value(value, op, q)
        parts.append(s)
    return ",".join(parts)


def direct(selectors, obj: dict) -> bool:
    """The semantics, computed without the parser."""
    for path, op, value, _ in selectors:
        got = obj.get(path)
        if op == "?" and got is None:
            return False
        if op == "==" and got != value:
            return False
        if op == "!=" and (got or "") == value:
            return False
        if op == "~=" and re.search(value, got or "") is None:
            return False
    return True


@fuzz_settings(400)
@given(st.lists(selector(), min_size=1, max_size=4), st.data())
def test_generated_filters_round_trip_and_match(selectors, data):
    text = render(selectors)
    parsed = filters.parse(text)
    assert [(s.fieldpath, s.operator, s.value) for s in parsed.selectors] == \
           [(p, op, v) for p, op, v, _ in selectors], text
    # objects that take values from the filter itself (so matches happen) or random ones
    obj = {}
    for path, _op, value, _ in selectors:
        choice = data.draw(st.sampled_from(["same", "other", "absent"]))
        if choice == "same":
            obj[path] = value
        elif choice == "other":
            obj[path] = data.draw(VALUE)
    assert parsed.match(lambda p: obj.get(tuple(p))) == direct(selectors, obj), (text, obj)
    # OR of several filter strings
    any_of = filters.parse_all([text, "", render(selectors[:1])])
    assert any_of.match(lambda p: obj.get(tuple(p))) == (direct(selectors, obj) or direct(selectors[:1], obj))
