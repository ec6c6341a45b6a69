"""atheris harness: image reference parsing (:mod:`pycontainerd.remotes.reference`) on
arbitrary strings. Findings: any exception other than InvalidArgument, and a parsed
reference that does not survive ``parse(str(ref))``, a normalised one that is not a
fixed point of normalisation, or whose familiar (short) form names another image.

    .venv/bin/python fuzz/fuzz_reference.py -max_total_time=60  # corpus: fuzz/corpus/reference
"""

import atheris

from _common import run

with atheris.instrument_imports(include=["pycontainerd"]):
    from pycontainerd.errdefs import InvalidArgument
    from pycontainerd.remotes import reference


def test_one(data: bytes) -> None:
    text = atheris.FuzzedDataProvider(data).ConsumeUnicodeNoSurrogates(400)
    try:
        ref = reference.parse(text)
    except InvalidArgument:
        pass
    else:
        assert reference.parse(str(ref)) == ref, (text, ref)
    try:
        norm = reference.parse_normalized(text)
    except InvalidArgument:
        return
    assert reference.parse_normalized(str(norm)) == norm, (text, norm)
    first = norm.familiar().split("/", 1)[0]
    if "/" in norm.familiar() and ("." in first or ":" in first or first == "localhost"):
        return  # docker.io/a.b/c → "a.b/c" names host a.b: docker's familiar form has the same ambiguity
    assert reference.parse_normalized(norm.familiar()) == norm, (text, norm)


def seeds():
    for s in ["busybox", "docker.io/library/busybox:latest", "127.0.0.1:5000/a/b-c__d:v1.2",
              "localhost/x@sha256:" + "a" * 64, "ghcr.io/o/r:t@sha512:" + "b" * 128]:
        yield b"\x01" + s.encode()


if __name__ == "__main__":
    run(test_one, "reference", seeds)
