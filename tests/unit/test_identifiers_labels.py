import pytest

from pycontainerd import identifiers, labels
from pycontainerd.errdefs import InvalidArgument


@pytest.mark.parametrize("name", ["default", "k8s.io", "a", "A-b_c.d", "x" * 76, "1.2.3", "moby"])
def test_valid_identifiers(name):
    assert identifiers.validate(name) == name


@pytest.mark.parametrize(
    "name",
    ["", "x" * 77, "-a", "a-", "a..b", "a/b", "a b", "ümlaut", ".hidden", "a__b", "a\0b", "../etc"],
)
def test_invalid_identifiers(name):
    with pytest.raises(InvalidArgument) as err:
        identifiers.validate(name)
    assert err.value.code == "INVALID_ARGUMENT"
    assert str(err.value).endswith(": invalid argument")


def test_label_size_limit_counts_key_and_value():
    labels.validate("k" * 2048, "v" * 2048)
    with pytest.raises(InvalidArgument, match="greater than maximum size"):
        labels.validate("k" * 2048, "v" * 2049)


def test_field_paths_set_delete_and_replace():
    cur = {"a": "1", "b": "2"}
    assert labels.apply_field_paths(cur, {"a": "9"}, ["labels.a"], "x") == {"a": "9", "b": "2"}
    assert labels.apply_field_paths(cur, {}, ["labels.b"], "x") == {"a": "1"}
    assert labels.apply_field_paths(cur, {"c": "3"}, [], "x") == {"c": "3"}
    assert labels.apply_field_paths(cur, {"c": "3"}, ["labels"], "x") == {"c": "3"}
    with pytest.raises(InvalidArgument, match='cannot update "name"'):
        labels.apply_field_paths(cur, {}, ["name"], "x")
