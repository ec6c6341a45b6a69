"""Validation of object identifiers (namespaces, containers, leases, …), as containerd's
``identifiers.Validate``: one or more ASCII alphanumeric runs joined by single ``.``, ``_`` or
``-``, at most 76 characters. An identifier that passes is safe as a path component and as
an LMDB key part."""

from __future__ import annotations

import re

from .errdefs import InvalidArgument, quote

MAX_LENGTH = 76
_IDENTIFIER = re.compile(r"^[A-Za-z0-9]+(?:[._-](?:[A-Za-z0-9]+))*$")


def validate(value: str) -> str:
    """Return ``value`` unchanged if it is a valid identifier.

    Raises:
        InvalidArgument: empty, longer than 76 characters, or not matching the pattern.
    """
    if not value:
        raise InvalidArgument("identifier must not be empty")
    if len(value) > MAX_LENGTH:
        raise InvalidArgument(
            f"identifier {quote(value)} greater than maximum length ({MAX_LENGTH} characters)"
        )
    if not _IDENTIFIER.match(value):
        raise InvalidArgument(f"identifier {quote(value)} must match {_IDENTIFIER.pattern}")
    return value
