"""The RPC value encoding and method lookup (workers._rpc): what round-trips, what is refused
when sent, and that bytes from another worker decode to a value or to RpcDecodeError, never
to anything else."""

from __future__ import annotations

import datetime
import random
import struct

import pytest

from workers import WorkerEntrypoint, _rpc


def test_structured_values_round_trip():
    aware = datetime.datetime(2024, 2, 29, 23, 59, 59, 999999, tzinfo=datetime.timezone.utc)
    plus_two = datetime.datetime(2024, 1, 1, 12,
                                 tzinfo=datetime.timezone(datetime.timedelta(hours=2)))
    value = [None, True, False, 0, -1, 2**63 - 1, -2**63, 2**200, -2**200, 1.25, float("inf"),
             "", "héllo \U0001F600", b"", b"\x00\xff", [[], {}], {"a": {"b": [1, 2]}},
             {1: "one", (1, 2): "pair"}, {3, "x"}, frozenset({1}), aware,
             datetime.datetime(1900, 1, 1), datetime.date(1, 1, 1), (1, 2)]
    got = _rpc.decode(_rpc.encode(value))
    # A frozenset arrives as a set and a tuple as a list.
    want = value[:-5] + [{1}, aware, datetime.datetime(1900, 1, 1), datetime.date(1, 1, 1),
                         [1, 2]]
    assert got == want
    moved = _rpc.decode(_rpc.encode(plus_two))
    assert moved == plus_two and moved.tzinfo == datetime.timezone.utc


def test_values_that_cannot_be_sent_are_refused_when_sent():
    for value in (object(), lambda: 1, WorkerEntrypoint, {1: object()}, 2**9000):
        with pytest.raises(TypeError):
            _rpc.encode(value)
    deep: list = []
    for _ in range(_rpc.DEPTH_MAX + 2):
        deep = [deep]
    with pytest.raises(TypeError, match="nested"):
        _rpc.encode(deep)


@pytest.mark.parametrize("data", [
    b"", b"TR", b"TR\x02n", b"TR\x01", b"TR\x01x", b"TR\x01nn", b"TR\x01i\x01",
    b"TR\x01l\xff\xff\xff\x7f", b"TR\x01s\x05\x00\x00\x00abc", b"TR\x01s\x01\x00\x00\x00\xff",
    b"TR\x01I\x00\x00", b"TR\x01I\x01\x08" + b"\x00" * 0x801,
    b"TR\x01T" + struct.pack("<qB", 2**62, 1),
    b"TR\x01T" + struct.pack("<qB", 0, 7), b"TR\x01D" + struct.pack("<i", 2**31 - 1),
    b"TR\x01o\x01\x00\x00\x00o\x00\x00\x00\x00n", b"TR\x01S\x01\x00\x00\x00S\x00\x00\x00\x00",
    b"TR\x01" + b"l\x01\x00\x00\x00" * (_rpc.DEPTH_MAX + 2) + b"n",
])
def test_malformed_messages_are_decode_errors(data):
    with pytest.raises(_rpc.RpcDecodeError):
        _rpc.decode(data)


def test_a_list_key_or_set_item_arrives_as_a_tuple():
    assert _rpc.decode(b"TR\x01o\x01\x00\x00\x00l\x00\x00\x00\x00n") == {(): None}
    assert _rpc.decode(_rpc.encode({(1, ("a", b"b")): 1, None: {(True, -2**63)}})) == {
        (1, ("a", b"b")): 1, None: {(True, -2**63)}}


def big(n):
    return b"I" + struct.pack("<H", 9) + n.to_bytes(9, "big", signed=True)


@pytest.mark.parametrize("key", [
    big((2**61 - 1) * 16), b"d" + struct.pack("<d", 1.5), b"T" + struct.pack("<qB", 0, 1),
    b"D" + struct.pack("<i", 0), b"l\x01\x00\x00\x00" + big(2**70),
])
def test_keys_whose_hashes_a_sender_could_steer_are_refused(key):
    # Large ints k*(2**61 - 1) all hash alike: a dict of them would take quadratic time.
    with pytest.raises(_rpc.RpcDecodeError, match="dict key"):
        _rpc.decode(b"TR\x01o\x01\x00\x00\x00" + key + b"n")
    with pytest.raises(_rpc.RpcDecodeError, match="set item"):
        _rpc.decode(b"TR\x01S\x01\x00\x00\x00" + key)
    for value in ({2**70: 1}, {1.5}, {datetime.date(2020, 1, 1): 1}, {(1, 2**64)}):
        with pytest.raises(TypeError, match="cannot be passed over RPC"):
            _rpc.encode(value)


def test_a_message_of_many_small_containers_is_refused_before_it_is_held():
    # 4 MB of empty sets would be ~180 MB of Python objects.
    n = 800_000
    data = b"TR\x01l" + struct.pack("<I", n) + b"S\x00\x00\x00\x00" * n
    with pytest.raises(_rpc.RpcDecodeError, match="more than"):
        _rpc.decode(data)
    n = _rpc.ITEMS_MAX
    with pytest.raises(_rpc.RpcDecodeError, match="more than"):
        _rpc.decode(b"TR\x01l" + struct.pack("<I", n) + b"n" * n)
    many = list(range(100_000))  # a large message of plain values still goes
    assert _rpc.decode(_rpc.encode(many)) == many


def test_random_bytes_decode_to_a_value_or_a_decode_error():
    rng = random.Random(7)
    seeds = [_rpc.encode([1, "a", {"k": b"v"}, {2}, datetime.date(2020, 1, 1)])]
    for _ in range(3000):
        data = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        try:
            _rpc.decode(bytes(data))
        except _rpc.RpcDecodeError:
            pass


def test_errors_come_back_as_builtin_types_or_rpc_error():
    assert repr(_rpc.error_from(_rpc.encode_error(ValueError("bad")))) == "ValueError('bad')"
    assert str(_rpc.error_from(_rpc.encode_error(KeyError("k")))) == "'k'"

    class Denied(Exception):
        pass

    error = _rpc.error_from(_rpc.encode_error(Denied("no")))
    assert isinstance(error, _rpc.RpcError) and str(error) == "Denied: no"
    assert error.remote_type == "Denied"
    # Passed on down a chain unchanged, not wrapped again.
    again = _rpc.error_from(_rpc.encode_error(error))
    assert str(again) == "Denied: no"
    assert isinstance(_rpc.error_from(b"junk"), _rpc.RpcError)


def test_only_public_methods_are_rpc_methods():
    class Api(WorkerEntrypoint):
        value = 3

        async def add(self, a, b):
            return a + b

        def _private(self):
            return 1

        async def fetch(self, request):
            return None

        async def connect(self, socket):  # a handler (TCP sockets), as on Cloudflare
            return None

        def dup(self):  # the RpcTarget's own
            return self

        @property
        def prop(self):
            return 1

    api = Api(None, None)  # type: ignore[arg-type]
    assert _rpc.method_of(api, "add").__name__ == "add"
    for name in ("_private", "fetch", "connect", "dup", "prop", "value", "ctx", "env", "missing", "__init__"):
        with pytest.raises(TypeError, match=f'does not implement the method "{name}"'):
            _rpc.method_of(api, name)


def test_tuple_keys_are_bounded_per_message():
    """Tuples of ints hash alike at will (CPython's tuple hash is invertible): a message may
    hold at most TUPLE_KEYS_MAX of them as keys or set items, so colliding ones cannot make
    decoding quadratic without bound."""
    import pytest

    ok = {(i, i): i for i in range(_rpc.TUPLE_KEYS_MAX)}
    assert _rpc.decode(_rpc.encode(ok)) == ok
    too_many = {(i, i): i for i in range(_rpc.TUPLE_KEYS_MAX + 1)}
    with pytest.raises(_rpc.RpcDecodeError, match="tuple keys"):
        _rpc.decode(_rpc.encode(too_many))
