"""Hypothesis strategies for any protobuf message, built from its descriptor.

Values reach the edges a validator must handle: extreme integers, NaN and infinities,
empty, long and odd Unicode strings, unknown enum numbers, empty and repeated lists,
nested messages a few levels deep, timestamps and durations across their whole range.
"""

from __future__ import annotations

import functools
from typing import Any

from google.protobuf import descriptor, message, message_factory
from hypothesis import strategies as st

FD = descriptor.FieldDescriptor
INT32 = st.one_of(st.integers(-(2**31), 2**31 - 1), st.sampled_from([0, 1, -1, 2**31 - 1]))
INT64 = st.one_of(st.integers(-(2**63), 2**63 - 1), st.sampled_from([0, 1, -1, 10**12]))
UINT32 = st.integers(0, 2**32 - 1)
UINT64 = st.integers(0, 2**64 - 1)
DOUBLES = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, 1e308, -1e308, 5e-324]),
)
FLOATS = st.floats(width=32, allow_nan=True, allow_infinity=True)
STRINGS = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["", " ", "a" * 300, "../../etc/passwd", "\u202e", "null", "0"]),
)
BYTES = st.one_of(
    st.binary(max_size=64), st.sampled_from([b"", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff"])
)
SCALARS: dict[int, st.SearchStrategy[Any]] = {
    FD.TYPE_INT32: INT32, FD.TYPE_SINT32: INT32, FD.TYPE_SFIXED32: INT32,
    FD.TYPE_INT64: INT64, FD.TYPE_SINT64: INT64, FD.TYPE_SFIXED64: INT64,
    FD.TYPE_UINT32: UINT32, FD.TYPE_FIXED32: UINT32,
    FD.TYPE_UINT64: UINT64, FD.TYPE_FIXED64: UINT64,
    FD.TYPE_DOUBLE: DOUBLES, FD.TYPE_FLOAT: FLOATS,
    FD.TYPE_BOOL: st.booleans(), FD.TYPE_STRING: STRINGS, FD.TYPE_BYTES: BYTES,
}  # fmt: skip
MAX_DEPTH = 3


def _well_known(full_name: str) -> st.SearchStrategy[dict[str, int]] | None:
    if full_name == "google.protobuf.Timestamp":
        return st.fixed_dictionaries(
            {
                "seconds": st.integers(-62135596800, 253402300799),
                "nanos": st.integers(0, 999_999_999),
            }
        )
    if full_name == "google.protobuf.Duration":
        return st.fixed_dictionaries(
            {"seconds": st.integers(-315576000000, 315576000000), "nanos": st.just(0)}
        )
    return None


def _value(field: descriptor.FieldDescriptor, depth: int) -> st.SearchStrategy[Any]:
    if field.type == FD.TYPE_ENUM:
        numbers = [v.number for v in field.enum_type.values]
        return st.one_of(st.sampled_from(numbers), st.integers(-5, 1000))
    if field.type == FD.TYPE_MESSAGE:
        return messages(field.message_type, depth + 1)
    return SCALARS[field.type]


def _is_map(field: descriptor.FieldDescriptor) -> bool:
    return field.type == FD.TYPE_MESSAGE and field.message_type.GetOptions().map_entry


@functools.cache
def messages(
    message_type: descriptor.Descriptor, depth: int = 0
) -> st.SearchStrategy[message.Message]:
    """Random, often invalid, instances of ``message_type``."""
    cls = message_factory.GetMessageClass(message_type)
    known = _well_known(message_type.full_name)
    if known is not None:
        return known.map(lambda fields: cls(**fields))
    if depth >= MAX_DEPTH:
        return st.just(cls())
    parts: dict[str, st.SearchStrategy[Any]] = {}
    for field in message_type.fields:
        if _is_map(field):
            key_field, value_field = field.message_type.fields
            parts[field.name] = st.dictionaries(
                _value(key_field, depth), _value(value_field, depth), max_size=2
            )
        elif field.is_repeated:
            # Lists shrink with depth so a nested message stays small.
            parts[field.name] = st.lists(_value(field, depth), max_size=max(1, 3 - depth))
        else:
            parts[field.name] = st.one_of(st.none(), _value(field, depth))
    return st.fixed_dictionaries({}, optional=parts).map(lambda fields: _build(cls, fields))


def _build(cls: type[message.Message], fields: dict[str, Any]) -> message.Message:
    instance = cls()
    for name, value in fields.items():
        if value is None:
            continue
        target = getattr(instance, name)
        if isinstance(value, dict) and hasattr(target, "update"):  # a map field
            for key, item in value.items():
                if isinstance(item, message.Message):
                    target[key].CopyFrom(item)
                else:
                    target[key] = item
        elif isinstance(value, list):
            for item in value:
                if isinstance(item, message.Message):
                    target.add().CopyFrom(item)
                else:
                    target.append(item)
        elif isinstance(value, message.Message):
            target.CopyFrom(value)
        else:
            setattr(instance, name, value)
    # A oneof keeps only its last member: that is a valid message too.
    return instance
