"""Fuzzing image reference parsing (``[host[:port]/]repo[:tag][@digest]``,
:mod:`pycontainerd.remotes.reference`): arbitrary strings parse or raise InvalidArgument;
references generated from the grammar round-trip exactly; normalisation is idempotent
and agrees with the familiar form. ``FUZZ_EXAMPLES=N`` scales the example counts.
"""

from __future__ import annotations

import os
import string

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pycontainerd.errdefs import InvalidArgument
from pycontainerd.remotes import reference as ref_mod


def fuzz_settings(default: int):
    n = int(os.environ.get("FUZZ_EXAMPLES", "0") or 0)
    return settings(max_examples=n or default, deadline=None, suppress_health_check=[HealthCheck.too_slow])


ALNUM = st.text(string.ascii_lowercase + string.digits, min_size=1, max_size=6)
SEPARATOR = st.sampled_from([".", "_", "__", "-", "--"])


@st.composite
def component(draw):
    parts = draw(st.lists(ALNUM, min_size=1, max_size=3))
    out = parts[0]
    for p in parts[1:]:
        out += draw(SEPARATOR) + p
    return out


DOMAIN_LABEL = st.from_regex(r"[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,6}[a-zA-Z0-9])?", fullmatch=True)


@st.composite
def domain(draw):
    """A domain docker recognises as one: it has a ``.`` or a port (or is ``localhost``);
    otherwise the first component is a path (and ``A/b`` is then an invalid upper-case path)."""
    labels = draw(st.lists(DOMAIN_LABEL, min_size=1, max_size=3))
    d = ".".join(labels)
    if len(labels) == 1 and draw(st.booleans()):
        d = "localhost"
    if draw(st.booleans()) or "." not in d and d != "localhost":
        d += f":{draw(st.integers(1, 65535))}"
    return d


TAG = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}", fullmatch=True)
DIGEST = st.one_of(st.text("0123456789abcdef", min_size=64, max_size=64).map(lambda h: "sha256:" + h),
                   st.text("0123456789abcdef", min_size=128, max_size=128).map(lambda h: "sha512:" + h))


@st.composite
def valid_ref(draw):
    dom = draw(st.one_of(st.none(), domain()))
    path = "/".join(draw(st.lists(component(), min_size=1, max_size=3)))
    tag = draw(st.one_of(st.none(), TAG))
    digest = draw(st.one_of(st.none(), DIGEST))
    text = (f"{dom}/" if dom else "") + path + (f":{tag}" if tag else "") + (f"@{digest}" if digest else "")
    return text, dom, path, tag, digest


@fuzz_settings(500)
@given(st.one_of(st.text(max_size=120), st.text(string.printable, max_size=300),
                 valid_ref().map(lambda r: r[0]).flatmap(
                     lambda s: st.tuples(st.just(s), st.integers(0, len(s)), st.text(max_size=3))
                     .map(lambda t: t[0][:t[1]] + t[2] + t[0][t[1]:]))))  # valid ones with an insertion
def test_fuzz_arbitrary_strings(text):
    for parse in (ref_mod.parse, ref_mod.parse_normalized, ref_mod.normalize):
        try:
            parse(text)
        except InvalidArgument:
            pass


@fuzz_settings(400)
@given(valid_ref())
def test_valid_references_round_trip(r):
    text, dom, path, tag, digest = r
    if len(text) > 255 + 200 or len((f"{dom}/" if dom else "") + path) > ref_mod.NAME_TOTAL_LENGTH_MAX:
        return  # over docker's length limits: a refusal is the right answer, checked below
    parsed = ref_mod.parse(text)
    assert str(parsed) == text
    assert (parsed.tag, parsed.digest) == (tag or "", digest or "")
    assert parsed.name == ((f"{dom}/" if dom else "") + path)
    norm = ref_mod.parse_normalized(text)
    assert ref_mod.parse_normalized(str(norm)) == norm  # idempotent
    assert ref_mod.parse_normalized(norm.familiar()) == norm  # the short form means the same image
    assert norm.tag or norm.digest
    if dom:
        assert norm.domain == ("docker.io" if dom == "index.docker.io" else dom)
    # (without one, a first component like "0.0_0" looks like a domain to docker's split but
    # is not a valid one: the name then has no domain at all, as in docker's own parser)
    if digest:
        assert norm.digest == digest and norm.tag == ""  # docker keeps only the digest


@fuzz_settings(100)
@given(valid_ref(), st.integers(256, 400))
def test_overlong_names_are_invalid(r, n):
    text = "a" * n + "/" + r[2]
    try:
        ref_mod.parse(text)
    except InvalidArgument:
        return
    raise AssertionError(f"accepted a {len(text)} character name")
