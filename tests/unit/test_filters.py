import pytest

from pycontainerd import filters
from pycontainerd.errdefs import InvalidArgument

OBJ = {"name": "foo", "id": "abc", "labels": {"bar": "baz", "with.dot": "yes", "very complex": "v"}}


def adaptor(path):
    if path[0] == "labels":
        return filters.adapt_labels(path, OBJ["labels"])
    return OBJ.get(path[0]) if len(path) == 1 else None


@pytest.mark.parametrize(
    "text,expected",
    [
        ("name==foo", True),
        ("name==bar", False),
        ("name!=bar", True),
        ("name!=foo", False),
        ("name~=^f", True),
        ("name~=/^f.o$/", True),
        ("name~=|o+|", True),
        ("name~=^x", False),
        ("labels.bar", True),
        ("labels.nope", False),
        ("labels.bar==baz", True),
        ('labels."very complex"==v', True),
        ('labels."with.dot"==yes', True),
        ("name==foo,labels.bar", True),
        ("name==foo,labels.nope", False),
        ('name=="foo"', True),
        ("  name == foo ", True),
        ("missing!=x", True),
        ("missing==", None),  # value required
    ],
)
def test_match_table(text, expected):
    if expected is None:
        with pytest.raises(InvalidArgument):
            filters.parse(text)
        return
    assert filters.parse(text).match(adaptor) is expected


def test_parse_all_is_or_and_empty_matches_everything():
    assert filters.parse_all([]).match(adaptor)
    assert filters.parse_all(["name==nope", "id==abc"]).match(adaptor)
    assert not filters.parse_all(["name==nope", "id==nope"]).match(adaptor)


@pytest.mark.parametrize(
    "text",
    ["==foo", "name==foo,", "name foo", "name<>foo", "name===foo", 'name=="unterminated', "name~=(",
     "name==/x/", 'labels./a/==b', ",", "name==foo bar"],
)
def test_bad_syntax_is_invalid_argument(text):
    with pytest.raises(InvalidArgument, match="filters"):
        filters.parse(text)


def test_quoted_escapes():
    f = filters.parse(r'name=="a\"b\x41\n"')
    assert f.selectors[0].value == 'a"bA\n'
