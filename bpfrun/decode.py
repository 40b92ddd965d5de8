"""Stored bytes → Python values, following the storage rules of `common.types`.

Consumes a `Type` and the bytes of one stored value (or a record of several); produces:
int, bool and string values as Python int (signed by its type), bool, and bytes (cut at the first
NUL). A string that fills its whole buffer without a NUL was truncated by the kernel: like
bpftrace (its `str_trunc_trailer`), we append "..". Used by events.py and maps.py.
"""

from __future__ import annotations

from common.types import BOOL, INT, STRING, Type, record_offsets, stored_size

TRUNCATION_TRAILER = b".."

Scalar = int | bool | bytes


def decode_value(t: Type, data: bytes) -> Scalar:
    """One stored value of type `t` at the start of `data`."""
    # Stored ints are extended to 8 bytes; like bpftrace, read only the bytes of the type.
    if t.kind == INT:
        return int.from_bytes(data[: t.size], "little", signed=t.signed)
    if t.kind == BOOL:
        return int.from_bytes(data[: t.size], "little") != 0
    if t.kind == STRING:
        return decode_string(t, data)
    raise AssertionError(f"no decoder for a stored {t.kind}")


def decode_string(t: Type, data: bytes) -> bytes:
    buffer = data[: t.size]
    end = buffer.find(b"\0")
    if end < 0:
        return buffer + TRUNCATION_TRAILER
    return buffer[:end]


def decode_record(fields: tuple[Type, ...], data: bytes) -> tuple[Scalar, ...]:
    """The fields of a record laid out by `common.types.record_offsets`."""
    offsets, size = record_offsets(fields)
    if len(data) < size:
        raise ValueError(f"record of {len(data)} bytes, expected {size}")
    return tuple(decode_value(t, data[offset : offset + stored_size(t)]) for t, offset in zip(fields, offsets))
