"""The value model of everything bpfrun prints, and the decoding of stored bytes into it.

Consumes `common.layout.Layout`s and the bytes of one stored value (a map key or value, an event
payload); produces values that output.py renders as text or JSON:

    int, bool            as Python values
    str                  a string (bytes that are not UTF-8 kept as surrogate escapes); one that
                         fills its whole buffer without a NUL was cut short: it ends in ".."
    Tuple, Record        their decoded fields
    Timestamp            a strftime() value, formatted when printed
    None                 no value
    Histogram            rows of a hist() or lhist() map value (built by maps.py)
    MapValue             a whole map, its entries in print order (built by maps.py)

Decoding trusts nothing: data shorter than its layout is a `ValueError`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from common import layout
from common.layout import Layout

TRUNCATION_TRAILER = ".."


@dataclass(frozen=True, slots=True)
class Tuple:
    items: tuple[Primitive, ...]


@dataclass(frozen=True, slots=True)
class Record:
    fields: tuple[tuple[str, Primitive], ...]


@dataclass(frozen=True, slots=True)
class Timestamp:
    """strftime(format, ns): nanoseconds since boot, printed as wall-clock time."""

    nanoseconds: int
    format: str

    def text(self) -> str:
        """The time by strftime(3) in the local time zone, with bpftrace's %f (microseconds)."""
        wall = time.time_ns() - time.clock_gettime_ns(time.CLOCK_BOOTTIME) + self.nanoseconds
        seconds, remainder = divmod(wall, 1_000_000_000)
        pieces = self.format.split("%%")
        pieces = [piece.replace("%f", f"{remainder // 1000:06d}") for piece in pieces]
        return "%".join(time.strftime(piece, time.localtime(seconds)) if piece else "" for piece in pieces)


Primitive = int | bool | str | Tuple | Record | Timestamp | None


@dataclass(frozen=True, slots=True)
class HistogramRow:
    label: str  # as text prints it: '[4, 8)', '[1]', '(..., 0)', '[100, ...)'
    low: int | None  # the smallest value of the bucket (JSON "min"); None below the first bound
    high: int | None  # the largest value of the bucket (JSON "max"); None above the last bound
    count: int


@dataclass(frozen=True, slots=True)
class Histogram:
    rows: tuple[HistogramRow, ...]  # from the first to the last non-empty bucket


Value = Primitive | Histogram


@dataclass(frozen=True, slots=True)
class MapValue:
    name: str  # '@x'
    keyed: bool  # False: one value, printed '@x: value'
    entries: tuple[tuple[Primitive, Value], ...]  # (key, value) in print order; key None without keys
    stats: bool = False  # an avg() or stats() map: JSON calls it "stats"


def decode(spec: Layout, data: bytes) -> Primitive:
    """One stored value laid out as `spec` at the start of `data`."""
    if len(data) < spec.size:
        raise ValueError(f"{spec.kind} of {spec.size} bytes in {len(data)} bytes")
    kind = spec.kind
    if kind in (layout.INT, layout.UINT):
        return int.from_bytes(data[: spec.size], "little", signed=kind == layout.INT)
    if kind == layout.BOOL:
        return any(data[: spec.size])
    if kind == layout.STRING:
        return decode_string(data[: spec.size])
    if kind == layout.TUPLE:
        return Tuple(tuple(decode(field.layout, data[field.offset :]) for field in spec.fields))
    if kind == layout.RECORD:
        return Record(tuple((field.name, decode(field.layout, data[field.offset :])) for field in spec.fields))
    if kind == layout.TIMESTAMP:
        return Timestamp(int.from_bytes(data[:8], "little"), spec.text)
    return None


def decode_string(buffer: bytes) -> str:
    end = buffer.find(b"\0")
    if end < 0:
        return text(buffer) + TRUNCATION_TRAILER
    return text(buffer[:end])


def text(data: bytes) -> str:
    # surrogateescape keeps bytes that are not UTF-8: output.py writes them back unchanged.
    return data.decode("utf-8", "surrogateescape")


def encode(text_value: str) -> bytes:
    return text_value.encode("utf-8", "surrogateescape")
