"""atheris harness: containerd's filter language (:mod:`pycontainerd.filters`) on
arbitrary strings. Findings: any exception other than InvalidArgument while parsing or
matching.

    .venv/bin/python fuzz/fuzz_filters.py -max_total_time=60    # corpus: fuzz/corpus/filters
"""

import atheris

from _common import run

with atheris.instrument_imports(include=["pycontainerd"]):
    from pycontainerd import filters
    from pycontainerd.errdefs import InvalidArgument

OBJECT = {("labels", "a"): "b", ("name",): "busybox", ("topic",): "/tasks/exit", ("labels", "x.y"): ""}


def adaptor(path):
    if path and path[0] == "labels" and len(path) > 1:
        return OBJECT.get(("labels", ".".join(path[1:])))
    return OBJECT.get(tuple(path))


def test_one(data: bytes) -> None:
    text = atheris.FuzzedDataProvider(data).ConsumeUnicodeNoSurrogates(300)
    try:
        f = filters.parse(text)
    except InvalidArgument:
        return
    f.match(adaptor)
    filters.parse_all([text, text]).match(adaptor)


def seeds():
    for s in ['labels."a"==b,name~=/^bus/', 'topic=="/tasks/exit"', "name!=x", 'labels.x.y', '"q\\x41"==|a\\|b|']:
        yield b"\x01" + s.encode()


if __name__ == "__main__":
    run(test_one, "filters", seeds)
