"""The value model of everything bpfrun prints, and the decoding of stored bytes into it.

Consumes `common.layout.Layout`s and the bytes of one stored value (a map key or value, an event
payload); produces values that output.py renders as text or JSON:

    int, bool            as Python values
    str                  a string (bytes that are not UTF-8 kept as surrogate escapes); one that
                         fills its whole buffer without a NUL was cut short: it ends in ".."
    Tuple, Record        their decoded fields
    Array                its decoded elements
    Timestamp            a strftime() value, formatted when printed
    None                 no value
    Histogram            rows of a hist() or lhist() map value (built by maps.py)
    MapValue             a whole map, its entries in print order (built by maps.py)

Decoding trusts nothing: data shorter than its layout is a `ValueError`.
"""

from __future__ import annotations

import ctypes
import functools
import os
import signal
import struct
import time
from collections.abc import Callable, Sequence

from bpfrun import stacks
from common import layout
from common.layout import Layout
from common.record import record

TRUNCATION_TRAILER = ".."


@record(frozen=True, slots=True)
class Tuple:
    items: tuple[Primitive, ...]


@record(frozen=True, slots=True)
class Record:
    fields: tuple[tuple[str, Primitive], ...]


@record(frozen=True, slots=True)
class Array:
    items: tuple[int | bool, ...]


class EnumValue(int):
    """A kernel enum's value: printed as its enumerator's name (JSON: the number)."""

    names: dict[int, str] = {}

    def __str__(self) -> str:
        return self.names.get(int(self), int.__str__(self))


@functools.lru_cache(maxsize=256)
def _enum_class(text: str) -> type[EnumValue]:
    """An EnumValue class for one enum layout: its names parsed once."""
    return type("EnumValue", (EnumValue,), {"names": layout.enum_names(text) or {}})


class Address(int):
    """A pointer's value: printed in hex."""

    def __str__(self) -> str:
        return f"0x{int(self):x}"


@record(frozen=True, slots=True)
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


Primitive = int | bool | str | Tuple | Record | Array | Timestamp | None


@record(frozen=True, slots=True)
class HistogramRow:
    label: str  # as text prints it: '[4, 8)', '[1]', '(..., 0)', '[100, ...)'
    low: int | None  # the smallest value of the bucket (JSON "min"); None below the first bound
    high: int | None  # the largest value of the bucket (JSON "max"); None above the last bound
    count: int


@record(frozen=True, slots=True)
class Histogram:
    rows: tuple[HistogramRow, ...]  # from the first to the last non-empty bucket


Value = Primitive | Histogram


@record(frozen=True, slots=True)
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
    if kind == layout.ARRAY:
        element = spec.fields[0].layout
        step = element.size
        return Array(tuple(decode(element, data[offset : offset + step]) for offset in range(0, spec.size, step)))
    if kind == layout.TIMESTAMP:
        return Timestamp(int.from_bytes(data[:8], "little"), spec.text)
    if kind == layout.POINTER:
        return Address(int.from_bytes(data[:8], "little"))
    if kind == layout.ENUM:
        return _enum_class(spec.text)(int.from_bytes(data[:8], "little"))
    if kind == layout.STACK:
        return stacks.format_stack(spec.text, data)
    if kind == layout.SYMBOL:
        return stacks.format_symbol(spec.text, data)
    if kind == layout.BYTES:
        return _formatted_bytes(spec, data)
    if kind == layout.LOOKUP:
        return looked_up(spec.text, int.from_bytes(data[:8], "little", signed=True))
    return None


def _formatted_bytes(spec: Layout, data: bytes) -> str:
    if spec.text == "macaddr":
        return ":".join(f"{byte:02x}" for byte in data[:6])
    if spec.text == "inet":
        import socket  # pwd and socket: imported by the few values that need them

        family = int.from_bytes(data[:8], "little")
        if family == socket.AF_INET6:
            return socket.inet_ntop(socket.AF_INET6, data[8:24])
        return socket.inet_ntop(socket.AF_INET, data[8:12])
    length = min(int.from_bytes(data[:8], "little"), spec.size - 8)  # a buffer
    return "".join(chr(byte) if 0x20 <= byte < 0x7F else f"\\x{byte:02x}" for byte in data[8 : 8 + length])


def looked_up(table: str, number: int) -> str:
    """The name this host has for `number` in `table` (layout.LOOKUP_TABLES); the number itself,
    as text, when it has none."""
    try:
        if table == "errno":
            return os.strerror(number)
        if table == "signal":
            return signal.strsignal(number) or str(number)
        if table == "syscall":
            return _syscall_name(number) or str(number)
        if table == "cgroup":
            from bpfrun.cgroups import cgroup_path

            return cgroup_path(number)
        import pwd

        return pwd.getpwuid(number).pw_name
    except (KeyError, ValueError, OverflowError):
        return str(number)


@functools.cache
def _syscall_name(number: int) -> str | None:
    """The host's name for a syscall number of its own architecture, from libseccomp (present on
    nearly every distribution: systemd needs it); None without it."""
    try:
        seccomp = ctypes.CDLL("libseccomp.so.2")
    except OSError:
        return None
    resolve = seccomp.seccomp_syscall_resolve_num_arch
    resolve.restype, resolve.argtypes = ctypes.c_void_p, [ctypes.c_uint32, ctypes.c_int]
    name = resolve(0, number)  # 0: SCMP_ARCH_NATIVE; the name is malloc'd
    if not name:
        return None
    try:
        return ctypes.string_at(name).decode()
    finally:
        ctypes.CDLL(None).free(ctypes.c_void_p(name))


_STRUCT_CODES = {(layout.INT, 1): "b", (layout.INT, 2): "h", (layout.INT, 4): "i", (layout.INT, 8): "q"}
_STRUCT_CODES |= {(layout.UINT, 1): "B", (layout.UINT, 2): "H", (layout.UINT, 4): "I", (layout.UINT, 8): "Q"}
_STRUCT_CODES[layout.POINTER, 8] = "Q"  # printf's argument: a number


def tuple_decoder(
    spec: Layout, readings: Sequence[tuple[int, bool] | None] = ()
) -> tuple[Callable[[bytes], tuple[int | bool | bytes, ...]], list[int]]:
    """A fast decoder of a tuple of integers, bools and strings (printf's arguments): one
    struct.unpack_from for the whole record; strings come back as bytes cut at their NUL (with
    the ".." trailer when they fill their buffer). Other tuples decode field by field.
    An integer field with a reading (bits, signed) is read as that C value where the struct code
    can do it exactly (the low bytes of a wider little-endian field; a field extended as its sign
    says); the indexes of those fields are returned beside the decoder."""
    codes, cursor, strings, bools, exact = ["<"], 0, [], [], []
    for index, field in enumerate(spec.fields):
        size = field.layout.size
        code = _STRUCT_CODES.get((field.layout.kind, size))
        reading = readings[index] if index < len(readings) else None
        if code is not None and reading is not None:
            code, size = _exact_code(field.layout.kind, size, code, *reading)
            if size:
                exact.append(index)
            else:
                size = field.layout.size
        if field.layout.kind == layout.STRING:
            code = f"{size}s"
            strings.append(index)
        elif field.layout.kind == layout.BOOL:
            code = f"{size}s"
            bools.append(index)
        if code is None:
            return (lambda data: tuple(_printf_value(item) for item in decode(spec, data).items)), []
        codes.append(f"{field.offset - cursor}x{code}")
        cursor = field.offset + size
    unpack = struct.Struct("".join(codes)).unpack_from

    def decoder(data: bytes) -> tuple[int | bool | bytes, ...]:
        if len(data) < spec.size:
            raise ValueError(f"tuple of {spec.size} bytes in {len(data)} bytes")
        if not strings and not bools:
            return unpack(data)
        values = list(unpack(data))
        for index in strings:
            value = values[index]
            end = value.find(b"\0")
            values[index] = value + TRUNCATION_TRAILER_BYTES if end < 0 else value[:end]
        for index in bools:
            values[index] = any(values[index])
        return tuple(values)

    return decoder, exact


def _exact_code(kind: int, size: int, code: str, bits: int, signed: bool) -> tuple[str, int]:
    """The struct code and byte count that read an integer field of `kind` and `size` bytes as the
    C value of `bits` bits and that signedness; (code, 0) when no code reads it exactly."""
    if bits <= 8 * size:  # its low bytes, which little-endian puts first
        return _STRUCT_CODES[layout.INT if signed else layout.UINT, bits // 8], bits // 8
    if kind != layout.INT or signed:  # zero-extended, or sign-extended and read as signed: itself
        return code, size
    return code, 0


def _printf_value(value: Primitive) -> int | bool | bytes | Primitive:
    return encode(value) if isinstance(value, str) else value


TRUNCATION_TRAILER_BYTES = TRUNCATION_TRAILER.encode()


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
