"""containerd's filter language: parse once, match many objects.

Grammar (containerd ``filters`` package)::

    filter     := selector ("," selector)*           all selectors must match
    selector   := fieldpath [operator value]         no operator: the field is present
    fieldpath  := field ("." field)*
    field      := [A-Za-z0-9_]+ | "quoted"
    operator   := "==" | "!=" | "~="                  ~= is a regular expression search
    value      := bare (no "," or space) | "quoted" | /quoted/ | |quoted|   (/ | only after ~=)

Several filter strings given to one request are OR-ed (:func:`parse_all`); no filters
match everything. An object is seen through an *adaptor*: a callable taking the field path
(``["labels", "foo"]``) and returning the value as a string, or ``None`` when absent.

Bad syntax or an invalid regular expression raises :class:`InvalidArgument` (containerd
only logs a bad regex and matches nothing; a person is better served by the error).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from .errdefs import InvalidArgument, quote

Adaptor = Callable[[Sequence[str]], "str | None"]

_QUOTES = '"/|'
_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "\\": "\\"}


@dataclass(frozen=True)
class Selector:
    fieldpath: tuple[str, ...]
    operator: str  # "?", "==", "!=", "~="
    value: str = ""
    regex: re.Pattern[str] | None = None

    def match(self, adaptor: Adaptor) -> bool:
        value = adaptor(self.fieldpath)
        if self.operator == "?":
            return value is not None
        if self.operator == "==":
            return value is not None and value == self.value
        if self.operator == "!=":
            return (value or "") != self.value
        assert self.regex is not None
        return self.regex.search(value or "") is not None


@dataclass(frozen=True)
class Filter:
    """Selectors joined by AND (one filter string)."""

    selectors: tuple[Selector, ...]

    def match(self, adaptor: Adaptor) -> bool:
        return all(s.match(adaptor) for s in self.selectors)


@dataclass(frozen=True)
class AnyOf:
    """Filters joined by OR (the repeated ``filters`` field of a request)."""

    filters: tuple[Filter, ...]

    def match(self, adaptor: Adaptor) -> bool:
        return not self.filters or any(f.match(adaptor) for f in self.filters)


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def error(self, msg: str) -> InvalidArgument:
        return InvalidArgument(f"filters: parse error: [{self.text} >|{self.pos}|<]: {msg}")

    def skip_space(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def peek(self) -> str:
        self.skip_space()
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def parse(self) -> Filter:
        selectors = [self.selector()]
        while True:
            ch = self.peek()
            if ch == "":
                return Filter(tuple(selectors))
            if ch != ",":
                raise self.error(f"unexpected input: {ch}")
            self.pos += 1
            selectors.append(self.selector())

    def selector(self) -> Selector:
        path = [self.field()]
        while self.peek() == ".":
            self.pos += 1
            path.append(self.field())
        if self.peek() in ("", ","):
            return Selector(tuple(path), "?")
        op = self.operator()
        value = self.value(allow_alt_quotes=op == "~=")
        regex = None
        if op == "~=":
            try:
                regex = re.compile(value)
            except re.error as exc:
                raise self.error(f"invalid regular expression {quote(value)}: {exc}") from exc
        return Selector(tuple(path), op, value, regex)

    def field(self) -> str:
        ch = self.peek()
        if ch in _QUOTES and ch:
            if ch != '"':
                raise self.error("invalid quote encountered")
            return self.quoted()
        start = self.pos
        while self.pos < len(self.text) and (
            self.text[self.pos] == "_" or self.text[self.pos].isascii() and self.text[self.pos].isalnum()
        ):
            self.pos += 1
        if start == self.pos:
            raise self.error("expected field or quoted")
        return self.text[start : self.pos]

    def operator(self) -> str:
        self.skip_space()
        start = self.pos
        while self.pos < len(self.text) and self.text[self.pos] in "=!~":
            self.pos += 1
        op = self.text[start : self.pos]
        if not op:
            raise self.error('expected an operator ("=="|"!="|"~=")')
        if op not in ("==", "!=", "~="):
            raise self.error(f"unsupported operator {quote(op)}")
        return op

    def value(self, allow_alt_quotes: bool) -> str:
        ch = self.peek()
        if ch and ch in _QUOTES:
            if ch != '"' and not allow_alt_quotes:
                raise self.error("invalid quote encountered")
            return self.quoted()
        if ch in ("", ",", "."):
            raise self.error("expected value or quoted")
        start = self.pos
        while self.pos < len(self.text) and self.text[self.pos] != "," and not self.text[self.pos].isspace():
            self.pos += 1
        return self.text[start : self.pos]

    def quoted(self) -> str:
        quote = self.text[self.pos]
        self.pos += 1
        out: list[str] = []
        while True:
            if self.pos >= len(self.text) or self.text[self.pos] == "\n":
                raise self.error("quoted literal not terminated")
            ch = self.text[self.pos]
            self.pos += 1
            if ch == quote:
                return "".join(out)
            if ch != "\\":
                out.append(ch)
                continue
            if self.pos >= len(self.text):
                raise self.error("quoted literal not terminated")
            esc = self.text[self.pos]
            self.pos += 1
            if esc == quote:
                out.append(quote)
            elif esc in _ESCAPES:
                out.append(_ESCAPES[esc])
            elif esc in "xuU01234567":
                width, base, skip = {"x": (2, 16, 0), "u": (4, 16, 0), "U": (8, 16, 0)}.get(esc, (3, 8, -1))
                self.pos += skip
                digits = self.text[self.pos : self.pos + width]
                try:
                    if len(digits) != width:
                        raise ValueError(digits)
                    out.append(chr(int(digits, base)))
                except ValueError as exc:
                    raise self.error("escape sequence is invalid") from exc
                self.pos += width
            else:
                raise self.error("unknown escape sequence")


def parse(text: str) -> Filter:
    """Parse one filter string. Raises :class:`InvalidArgument` on bad syntax."""
    return _Parser(text).parse()


def parse_all(texts: Iterable[str]) -> AnyOf:
    """Parse the repeated ``filters`` of a request; empty strings are ignored, no filter
    matches everything."""
    return AnyOf(tuple(parse(t) for t in texts if t.strip()))


def adapt_labels(fieldpath: Sequence[str], labels: Mapping[str, str]) -> str | None:
    """Look up ``labels.<key>`` paths (the key may itself contain dots, as containerd joins
    the rest of the path with ``.``)."""
    if len(fieldpath) < 2:
        return None
    return labels.get(".".join(fieldpath[1:]))
