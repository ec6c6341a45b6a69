"""The shim's hand-written protobuf (pycontainerd.sysutil.protowire, pycontainerd.shim.proto)
against google.protobuf: every message has the generated descriptor's fields (numbers,
names, types, repeated, message types), and random values round-trip both ways with the
same bytes; unknown fields, packed and unpacked repeated numbers, defaults, negative ints,
wrong wire types and malformed input behave as protobuf's. The test may import protobuf;
the shim does not (tests/unit/test_shim_imports.py)."""

from __future__ import annotations

import importlib

import pytest
from google.protobuf import descriptor_pool
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import DecodeError as PbDecodeError
from google.protobuf.message_factory import GetMessageClass
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pycontainerd.shim import proto
from pycontainerd.sysutil import protowire as pw
from pycontainerd.ttrpc import wire

GENERATED = (
    "google.protobuf.any_pb2", "google.protobuf.empty_pb2", "google.protobuf.timestamp_pb2", "google.rpc.status_pb2",
    "pycontainerd.api.ttrpc.ttrpc_pb2", "pycontainerd.api.runtime.task.v2.shim_pb2",
    "pycontainerd.api.events.task_pb2", "pycontainerd.api.services.ttrpc.events.v1.events_pb2",
    "pycontainerd.api.runtime.runc.options.oci_pb2", "pycontainerd.api.cgroups.v1.metrics_pb2",
    "pycontainerd.api.cgroups.v2.metrics_pb2", "pycontainerd.api.runtime.linux.runctypes.runc_pb2",
)
for _mod in GENERATED:
    importlib.import_module(_mod)
POOL = descriptor_pool.Default()

ALL = (*proto.MESSAGES, wire.Request, wire.Response, wire.KeyValue, pw.Status)
IDS = [c.NAME for c in ALL]

_KIND = {
    FieldDescriptor.TYPE_STRING: pw.STRING, FieldDescriptor.TYPE_BYTES: pw.BYTES, FieldDescriptor.TYPE_BOOL: pw.BOOL,
    FieldDescriptor.TYPE_UINT32: pw.UINT32, FieldDescriptor.TYPE_UINT64: pw.UINT64,
    FieldDescriptor.TYPE_INT32: pw.INT32, FieldDescriptor.TYPE_ENUM: pw.INT32, FieldDescriptor.TYPE_INT64: pw.INT64,
    FieldDescriptor.TYPE_MESSAGE: pw.MESSAGE,
}


def pb_class(cls: type[pw.Message]):
    return GetMessageClass(POOL.FindMessageTypeByName(cls.NAME))


def test_every_shim_message_matches_its_generated_descriptor() -> None:
    assert len(set(IDS)) == len(IDS)
    for cls in ALL:
        desc = POOL.FindMessageTypeByName(cls.NAME)
        theirs = set()
        for f in desc.fields:
            kind = _KIND[f.type]
            sub = f.message_type.full_name if f.message_type else None
            if f.message_type is not None and f.message_type.GetOptions().map_entry:
                kt, vt = f.message_type.fields_by_name["key"].type, f.message_type.fields_by_name["value"].type
                assert (kt, vt) == (FieldDescriptor.TYPE_STRING, FieldDescriptor.TYPE_STRING)
                kind, sub = pw.MAP, None
            elif f.is_repeated:
                kind |= pw.REPEATED
            theirs.add((f.number, f.name, kind, sub))
        ours = {(n, name, kind, s.NAME if s else None) for n, name, kind, s in cls.FIELDS}
        assert ours == theirs, cls.NAME


def test_the_shim_answers_every_task_rpc_with_a_checked_message() -> None:
    svc = POOL.FindServiceByName("containerd.task.v2.Task")
    names = {c.NAME for c in ALL}
    for m in svc.methods:
        assert m.input_type.full_name in names, m.name
        assert m.output_type.full_name in names, m.name


# --- conversion between the two --------------------------------------------------------------------


def to_pb(obj: pw.Message):
    pb = pb_class(type(obj))()
    for _n, name, kind, _sub in obj.FIELDS:
        v = getattr(obj, name)
        if kind == pw.MAP:
            getattr(pb, name).update(v)
        elif kind & pw.REPEATED:
            if kind & ~pw.REPEATED == pw.MESSAGE:
                getattr(pb, name).extend(to_pb(x) for x in v)
            else:
                getattr(pb, name).extend(v)
        elif kind == pw.MESSAGE:
            if v is not None:
                getattr(pb, name).CopyFrom(to_pb(v))
        else:
            setattr(pb, name, v)
    return pb


def from_pb(cls: type[pw.Message], pb) -> pw.Message:
    kw = {}
    for _n, name, kind, sub in cls.FIELDS:
        v = getattr(pb, name)
        if kind == pw.MAP:
            kw[name] = dict(v)
        elif kind & pw.REPEATED:
            kw[name] = [from_pb(sub, x) for x in v] if kind & ~pw.REPEATED == pw.MESSAGE else list(v)
        elif kind == pw.MESSAGE:
            kw[name] = from_pb(sub, v) if pb.HasField(name) else None
        else:
            kw[name] = v
    return cls(**kw)


_SCALARS = {
    pw.STRING: st.text(max_size=20), pw.BYTES: st.binary(max_size=20), pw.BOOL: st.booleans(),
    pw.UINT32: st.integers(0, 2**32 - 1), pw.UINT64: st.integers(0, 2**64 - 1),
    pw.INT32: st.integers(-2**31, 2**31 - 1), pw.INT64: st.integers(-2**63, 2**63 - 1),
}
_EDGE = {
    pw.UINT32: st.sampled_from([0, 1, 127, 128, 2**32 - 1]), pw.UINT64: st.sampled_from([0, 2**63, 2**64 - 1]),
    pw.INT32: st.sampled_from([0, -1, -2**31, 2**31 - 1]), pw.INT64: st.sampled_from([0, -1, -2**63, 2**63 - 1]),
}


def values(cls: type[pw.Message], depth: int = 0) -> st.SearchStrategy:
    fields = {}
    for _n, name, kind, sub in cls.FIELDS:
        base = kind & ~pw.REPEATED
        if base == pw.MESSAGE:
            elem = values(sub, depth + 1) if depth < 4 else st.builds(sub)
        elif base == pw.MAP:
            fields[name] = st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=3)
            continue
        else:
            elem = _SCALARS[base] | _EDGE[base] if base in _EDGE else _SCALARS[base]
        if kind & pw.REPEATED:
            fields[name] = st.lists(elem, max_size=3)
        elif base == pw.MESSAGE:
            fields[name] = st.none() | elem
        else:
            fields[name] = elem
    return st.fixed_dictionaries(fields).map(lambda kw: cls(**kw))


_MAPS = {c for c in ALL if any(f[2] == pw.MAP for f in c.FIELDS)}


@pytest.mark.parametrize("cls", ALL, ids=IDS)
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_random_values_round_trip_through_google_protobuf(cls, data) -> None:
    obj = data.draw(values(cls))
    ours = obj.encode()
    pb = to_pb(obj)
    theirs = pb.SerializeToString()
    if cls not in _MAPS:  # map entries have no defined order
        assert ours == theirs
    assert pb_class(cls).FromString(ours) == pb
    assert cls.decode(theirs) == obj
    assert from_pb(cls, pb) == obj


@pytest.mark.parametrize("cls", ALL, ids=IDS)
def test_defaults_encode_to_nothing(cls) -> None:
    assert cls().encode() == b"" == pb_class(cls)().SerializeToString()
    assert cls.decode(b"") == cls()


def test_an_empty_submessage_is_present() -> None:
    r = proto.WaitResponse(exit_status=0, exited_at=pw.Timestamp.from_ns(0))
    pb = to_pb(r)
    assert pb.HasField("exited_at")
    assert r.encode() == pb.SerializeToString() == b"\x12\x00"
    assert proto.WaitResponse.decode(b"\x12\x00").exited_at == pw.Timestamp()


def test_negative_ints_take_ten_bytes() -> None:
    st_ = pw.Status(code=-1)
    assert st_.encode() == b"\x08" + b"\xff" * 9 + b"\x01" == to_pb(st_).SerializeToString()
    assert pw.Status.decode(st_.encode()).code == -1


def test_timestamp_conversions_match_protobuf() -> None:
    from google.protobuf import timestamp_pb2

    for ns in (0, 1, 999_999_999, 1_000_000_000, 1_700_000_000_123_456_789, -1, -1_500_000_000):
        pb = timestamp_pb2.Timestamp()
        pb.FromNanoseconds(ns)
        ours = pw.Timestamp.from_ns(ns)
        assert (ours.seconds, ours.nanos) == (pb.seconds, pb.nanos)
        assert ours.to_ns() == pb.ToNanoseconds() == ns


# --- reading what others write ------------------------------------------------------------------


def _key(num: int, wt: int) -> bytes:
    return pw.encode_varint(num << 3 | wt)


_UNKNOWN = st.one_of(
    st.tuples(st.integers(1000, 5000), st.just(0), st.integers(0, 2**64 - 1)).map(
        lambda t: _key(t[0], 0) + pw.encode_varint(t[2])),
    st.tuples(st.integers(1000, 5000), st.binary(min_size=8, max_size=8)).map(lambda t: _key(t[0], 1) + t[1]),
    st.tuples(st.integers(1000, 5000), st.binary(max_size=10)).map(
        lambda t: _key(t[0], 2) + pw.encode_varint(len(t[1])) + t[1]),
    st.tuples(st.integers(1000, 5000), st.binary(min_size=4, max_size=4)).map(lambda t: _key(t[0], 5) + t[1]),
    st.integers(1000, 5000).map(lambda n: _key(n, 3) + _key(1, 0) + b"\x05" + _key(2, 2) + b"\x01x" + _key(n, 4)),
)


@pytest.mark.parametrize("cls", [proto.CreateTaskRequest, proto.StateResponse, proto.V1CPUStat, wire.Request,
                                 proto.UpdateTaskRequest, proto.ForwardRequest], ids=lambda c: c.NAME)
@settings(max_examples=20, deadline=None)
@given(data=st.data())
def test_unknown_fields_are_skipped(cls, data) -> None:
    obj = data.draw(values(cls))
    # unknown fields between the records of each field (fields are re-encoded one by one)
    chunks = []
    for _n, name, kind, _sub in cls.FIELDS:
        chunks.append(data.draw(st.lists(_UNKNOWN, max_size=2)))
        chunks.append([cls(**{name: getattr(obj, name)}).encode()])
    chunks.append(data.draw(st.lists(_UNKNOWN, max_size=2)))
    blob = b"".join(b for chunk in chunks for b in chunk)
    assert cls.decode(blob) == obj
    pb = pb_class(cls).FromString(blob)
    pb.DiscardUnknownFields()
    assert from_pb(cls, pb) == obj


@given(st.lists(st.integers(0, 2**64 - 1), max_size=8), st.lists(st.integers(0, 2**64 - 1), max_size=8))
def test_repeated_numbers_read_packed_and_unpacked(packed, unpacked) -> None:
    blob = b""
    if packed:
        body = b"".join(pw.encode_varint(x) for x in packed)
        blob += _key(4, 2) + pw.encode_varint(len(body)) + body
    blob += b"".join(_key(4, 0) + pw.encode_varint(x) for x in unpacked)
    ours = proto.V1CPUUsage.decode(blob)
    assert ours.per_cpu == packed + unpacked == list(pb_class(proto.V1CPUUsage).FromString(blob).per_cpu)
    assert ours.encode() == to_pb(ours).SerializeToString()


def test_a_known_field_with_another_wire_type_is_skipped_as_protobuf_does() -> None:
    # id (string) sent as a varint, pid (uint32) sent length-delimited, then valid values
    blob = _key(1, 0) + b"\x07" + _key(3, 2) + b"\x01\x05" + _key(1, 2) + b"\x01a" + _key(3, 0) + b"\x09"
    ours = proto.StateResponse.decode(blob)
    pb = pb_class(proto.StateResponse).FromString(blob)
    pb.DiscardUnknownFields()
    assert ours == from_pb(proto.StateResponse, pb) == proto.StateResponse(id="a", pid=9)


def test_repeated_message_fields_merge_and_scalars_last_wins() -> None:
    a = proto.ForwardRequest(envelope=proto.Envelope(namespace="ns", topic="t1")).encode()
    b = proto.ForwardRequest(envelope=proto.Envelope(topic="t2", timestamp=pw.Timestamp(seconds=3))).encode()
    ours = proto.ForwardRequest.decode(a + b)
    assert ours == from_pb(proto.ForwardRequest, pb_class(proto.ForwardRequest).FromString(a + b))
    assert ours.envelope == proto.Envelope(namespace="ns", topic="t2", timestamp=pw.Timestamp(seconds=3))


def test_uint32_keeps_the_low_bits_of_a_wider_varint() -> None:
    blob = _key(1, 0) + pw.encode_varint(2**40 + 7)
    assert proto.CreateTaskResponse.decode(blob).pid == pb_class(proto.CreateTaskResponse).FromString(blob).pid == 7


@pytest.mark.parametrize("blob", [b"\x0a", b"\x0a\x05ab", b"\x08", b"\x08\xff", b"\x00\x01", b"\x0f",
                                  b"\x08" + b"\xff" * 10 + b"\x01", b"\x0a\x02\xff\xfe",
                                  b"\x0b\x08\x01", b"\x0b\x14"])
def test_malformed_input_fails_as_in_protobuf(blob) -> None:
    with pytest.raises(PbDecodeError):
        pb_class(proto.StateRequest).FromString(blob)
    with pytest.raises(pw.DecodeError):
        proto.StateRequest.decode(blob)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=40))
def test_random_bytes_decode_as_protobuf_does(blob) -> None:
    for cls in (proto.CreateTaskRequest, proto.KillRequest, wire.Response):
        try:
            pb = pb_class(cls).FromString(blob)
        except PbDecodeError:
            pb = None
        try:
            ours = cls.decode(blob)
        except pw.DecodeError:
            ours = None
        if pb is None:
            assert ours is None, (cls.NAME, blob)
        else:
            pb.DiscardUnknownFields()
            assert ours == from_pb(cls, pb), (cls.NAME, blob)


# --- the shim's use of them -----------------------------------------------------------------------


def test_options_dict_lists_the_set_fields_like_listfields() -> None:
    from pycontainerd.api.runtime.runc.options import oci_pb2

    pb = oci_pb2.Options(binary_name="crun", io_uid=5, systemd_cgroup=True)
    ours = proto.Options.decode(pb.SerializeToString())
    assert proto.options_dict(ours) == {f.name: v for f, v in pb.ListFields()}


def test_pack_uses_the_bare_full_name_as_type_url() -> None:
    ev = proto.TaskExit(container_id="c", exit_status=3)
    a = pw.pack(ev)
    assert a.type_url == "containerd.events.TaskExit" and a.value == to_pb(ev).SerializeToString()


@pytest.mark.parametrize("blob", [
    b"\x9d\x80\x80\x80\x10\x00\x00\x00\x00",  # a field number over 2**29 - 1
    b"\r\xf5\xa1i/\x1a\t\t\x0c\x1a\r(\xff\x01_'",  # a map entry with an unknown field: not in the map
    b"\x1a\n\x10\xdeqH\n\x10\x96\r\x10I",  # a map entry whose value has another wire type
    b"\x1a\x0b\x00\x0eT6\xff\x1a\n\r\xb3\n\x10\x80q\r",  # field number 0 inside a map entry
    b"\x1a\x04\x0a\x00\x12\x00",  # an empty key and value: in the map
])
def test_edge_cases_found_by_fuzzing_decode_as_protobuf_does(blob) -> None:
    for cls in (proto.CreateTaskRequest, proto.UpdateTaskRequest):
        try:
            pb = pb_class(cls).FromString(blob)
            pb.DiscardUnknownFields()
        except PbDecodeError:
            pb = None
        try:
            ours = cls.decode(blob)
        except pw.DecodeError:
            ours = None
        assert (ours is None) == (pb is None), (cls.NAME, blob)
        if pb is not None:
            assert ours == from_pb(cls, pb)
