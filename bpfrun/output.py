"""The one place bpfrun's results leave through: text or JSON, exactly as bpftrace 0.27 prints them.

`Output` is made once per run with a format ('text' or 'json') and the standard streams; the other
steps hand it values (values.py) and never write to stdout or stderr themselves. Writes are
buffered and go out at `flush()` (once per batch of events, and at the end).

Text (bpftrace's TextOutput): the attached-probes line and lost events on stderr; printf text as
it is; maps as `@x: 1`, `@x[k1, k2]: 1` (a tuple key's parentheses stripped), histograms as rows
under `@x:` then a blank line; maps at exit after two newlines. JSON (bpftrace's JsonOutput): one
object per line on stdout, `{"type": ..., "data": ...}`; integers that a double cannot hold are
strings; map keys are the key's text without spaces.
"""

from __future__ import annotations

import errno
import io
import os
import struct
from collections.abc import Sequence

from bpfrun.values import Array, Histogram, MapValue, Primitive, Record, Timestamp, Tuple, Value, encode
from common.schema import HelperErrorEvent, MessageEvent, RuntimeErrorEvent

BAR_WIDTH = 52
TEXT = "text"
JSON = "json"
FORMATS = (TEXT, JSON)


class _FdWriter:
    """Buffers output and writes it with os.write, looping until every byte is out. CPython's
    buffered streams lose the rest of a write that a signal (the user's Ctrl-C) interrupts
    part-way (seen on 3.11 with a pipe: hundreds of lines gone, one cut in two); os.write
    reports how much it wrote and is retried after a signal (PEP 475). A stream without a
    file descriptor (in tests) is written as it is."""

    def __init__(self, stream: io.BufferedIOBase) -> None:
        self._stream = stream
        try:
            stream.flush()
            self._fd = stream.fileno()
        except (AttributeError, OSError, ValueError):
            self._fd = None
        self._pending: list[bytes] = []
        self._size = 0

    def write(self, data: bytes) -> None:
        if self._fd is None:
            self._stream.write(data)
            return
        self._pending.append(data)
        self._size += len(data)
        if self._size >= _WRITE_BYTES:
            self.flush()

    def flush(self) -> None:
        if self._fd is None:
            self._stream.flush()
            return
        if not self._pending:
            return
        view = memoryview(b"".join(self._pending))
        self._pending.clear()
        self._size = 0
        while view:
            view = view[os.write(self._fd, view) :]


_WRITE_BYTES = 1 << 16  # written once this much is buffered, and at every flush


class Output:
    """Renders every kind of result in one format and owns the buffered streams."""

    def __init__(self, format_name: str, out: io.BufferedIOBase, err: io.BufferedIOBase, line_buffered: bool = False) -> None:
        assert format_name in FORMATS, format_name
        self.json = format_name == JSON
        self._out = _FdWriter(out)
        self._err = _FdWriter(err)
        self.line_buffered = line_buffered  # flush after every event, not once per batch

    def flush(self) -> None:
        self._out.flush()
        self._err.flush()

    def attached(self, count: int) -> None:
        if self.json:
            self._line(f'{{"type": "attached_probes", "count": {count}, "data": {{"probes": {count}}}}}')
        else:
            self._err.write(encode(f"Attached {count} probe{'' if count == 1 else 's'}\n"))
        self.flush()

    def lost(self, count: int) -> None:
        if self.json:
            self._line(f'{{"type": "lost_events", "count": {count}, "data": {{"events": {count}}}}}')
        else:
            self._err.write(encode(f"Lost {count} events\n"))

    def text(self, kind: str, data: bytes) -> None:
        """What time(), cat() and system() print: as it is, or JSON's {"type": kind, "data": ...}."""
        if self.json:
            self._line(f'{{"type": "{kind}", "data": {json_string(data)}}}')
        else:
            self._out.write(data)

    def warning(self, message: str) -> None:
        self._err.write(encode(f"WARNING: {message}\n"))

    def runtime_error(self, event: RuntimeErrorEvent) -> None:
        """A warning raised by the running program, located in its source (bpftrace's format)."""
        if self.json:
            message, filename = json_string(encode(event.message)), json_string(encode(event.filename))
            kind = "runtime_error" if event.level == "WARNING" else "errorf"  # bpftrace's names
            self._line(
                f'{{"type": "{kind}", "msg": {message}, "filename": {filename}, '
                f'"line": {event.line}, "col": {event.column}}}'
            )
        else:
            location = f"{event.filename}:{event.line}:{event.column}-{event.end_column}"
            lines = [f"{location}: {event.level}: {event.message}", *event.excerpt]
            self._err.write(encode("".join(line + "\n" for line in lines)))

    def helper_error(self, event: HelperErrorEvent, code: int) -> None:
        """A helper call that failed: a full map, as bpftrace words it, or the errno's message."""
        reason = os.strerror(-code) if -4096 < code < 0 else f"error {code}"
        if self.json:
            self._line(
                f'{{"type": "helper_error", "msg": {json_string(encode(reason))}, "helper": {json_string(encode(event.helper))}, '
                f'"retcode": {code}, "filename": {json_string(encode(event.filename))}, '
                f'"line": {event.line}, "col": {event.column}}}'
            )
            return
        if code == -errno.E2BIG:
            warning = (
                "Map full; can't update element. Try increasing max_map_keys config or manually setting the max "
                "entries in a map declaration e.g. `let @a = hash(5000)`"
            )
        else:
            warning = f"{event.helper}() failed: {reason}"
        location = f"{event.filename}:{event.line}:{event.column}-{event.end_column}"
        details = f"Additional Info - helper: {event.helper}, retcode: {code}"
        lines = [f"{location}: WARNING: {warning}", details, *event.excerpt]
        self._err.write(encode("".join(line + "\n" for line in lines)))

    def message(self, event: MessageEvent, text: bytes) -> None:
        """warnf() and errorf(): the formatted message after the source location."""
        if self.json:
            kind = "warnf" if event.level == "WARNING" else "errorf"
            self._line(
                f'{{"type": "{kind}", "msg": {json_string(text)}, "filename": {json_string(encode(event.filename))}, '
                f'"line": {event.line}, "col": {event.column}}}'
            )
        else:
            location = f"{event.filename}:{event.line}:{event.column}-{event.end_column}"
            self._err.write(encode(f"{location}: {event.level}: ") + text + b"\n")

    def printf(self, data: bytes) -> None:
        if self.json:
            self._line(f'{{"type": "printf", "data": {json_string(data)}}}')
        else:
            self._out.write(data)

    def value(self, value: Value) -> None:
        """print(value)."""
        if self.json:
            self._line(f'{{"type": "value", "data": {json_value(value)}}}')
        else:
            self._out.write(encode(text_value(value) + "\n"))

    def map(self, value: MapValue) -> None:
        """print(@map), and each map at exit."""
        if self.json:
            rendered = json_map(value)
            if rendered is not None:
                self._line(rendered)
        else:
            self._out.write(encode(text_map(value)))

    def maps_at_exit(self, maps: Sequence[MapValue]) -> None:
        if not self.json:
            self._out.write(b"\n\n")
        for value in maps:
            self.map(value)

    def _line(self, text: str) -> None:
        self._out.write(encode(text + "\n"))


# Text


def text_map(value: MapValue) -> str:
    if not value.entries:
        return ""
    if not value.keyed:
        ((_, only),) = value.entries
        if isinstance(only, Histogram):
            return f"{value.name}:\n{text_histogram(only)}\n"
        return f"{value.name}: {text_value(only)}\n"
    if _integers(value):
        name = value.name
        return "".join([f"{name}[{key}]: {entry}\n" for key, entry in value.entries])
    lines = []
    for key, entry in value.entries:
        name = f"{value.name}[{_strip_parentheses(text_value(key))}]"
        if isinstance(entry, Histogram):
            lines.append(f"{name}:\n{text_histogram(entry)}\n")
        else:
            lines.append(f"{name}: {text_value(entry)}\n")
    return "".join(lines)


def _integers(value: MapValue) -> bool:
    """Whether every key and value is a plain integer (not a bool): printed without the general
    path's per-value dispatch."""
    return all(type(key) is int and type(entry) is int for key, entry in value.entries)


def _strip_parentheses(text: str) -> str:
    """bpftrace prints a key as a tuple "(a, b)" and then strips one pair of parentheses around
    the whole key text, even from a single string key: @x["(ab)"] prints as @x[ab]."""
    if len(text) >= 2 and text[0] == "(" and text[-1] == ")":
        return text[1:-1]
    return text


def text_value(value: Value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, Tuple):
        return "(" + ", ".join(text_value(item) for item in value.items) + ")"
    if isinstance(value, Record):
        if not value.fields:
            return "{}"
        return "{ " + ", ".join(f".{name} = {text_value(item)}" for name, item in value.fields) + " }"
    if isinstance(value, Array):
        return "[" + ",".join(text_value(item) for item in value.items) + "]"
    if isinstance(value, Histogram):
        return text_histogram(value)
    if isinstance(value, Timestamp):
        return value.text()
    return str(value)


def text_histogram(histogram: Histogram) -> str:
    top = max((row.count for row in histogram.rows), default=0)
    return "".join(
        f"{row.label:<16}{row.count:>8} |{'@' * _bar_width(row.count, top):<{BAR_WIDTH}}|\n" for row in histogram.rows
    )


def _bar_width(count: int, top: int) -> int:
    # bpftrace computes (count / (float)max) * 52 in single precision and truncates; with large
    # counts this differs from count * 52 // max (e.g. 624946893043 of 955801161138: 34, not 33).
    if top == 0:
        return 0
    ratio = _float32(_float32(count) / _float32(top))
    return int(_float32(ratio * BAR_WIDTH))


def _float32(value: float) -> float:
    return struct.unpack("f", struct.pack("f", value))[0]


# JSON


def json_map(value: MapValue) -> str | None:
    """The map's JSON line; None for a map bpftrace leaves out (no entries), except that an empty
    avg() or stats() map prints `{}` (as bpftrace does)."""
    if not value.entries and not value.stats:
        return None
    kind = "stats" if value.stats else "map"
    if value.entries and isinstance(value.entries[0][1], Histogram):
        kind = "hist"
    if not value.keyed:
        data = json_value(value.entries[0][1]) if value.entries else "{}"
    elif _integers(value):
        items = (f'"{key}": {json_int(entry)}' for key, entry in value.entries)
        data = "{" + ", ".join(items) + "}"
    else:
        items = (f"{json_string(encode(_json_key(key)))}: {json_value(entry)}" for key, entry in value.entries)
        data = "{" + ", ".join(items) + "}"
    return f'{{"type": "{kind}", "data": {{{json_string(encode(value.name))}: {data}}}}}'


def _json_key(key: Primitive) -> str:
    return _strip_parentheses(text_value(key)).replace(" ", "")


def json_value(value: Value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, int):
        return json_int(int(value))
    if isinstance(value, str):
        return json_string(encode(value))
    if isinstance(value, Timestamp):
        return json_string(encode(value.text()))
    if isinstance(value, (Tuple, Array)):
        return "[" + ",".join(json_value(item) for item in value.items) + "]"
    if isinstance(value, Record):
        return "{" + ", ".join(f"{json_string(encode(name))}: {json_value(item)}" for name, item in value.fields) + "}"
    return "[" + ",".join(_json_row(row.low, row.high, row.count) for row in value.rows) + "]"


def _json_row(low: int | None, high: int | None, count: int) -> str:
    parts = []
    if low is not None:
        parts.append(f'"min": {json_int(low)}')
    if high is not None:
        parts.append(f'"max": {json_int(high)}')
    parts.append(f'"count": {json_int(count)}')
    return "{" + ", ".join(parts) + "}"


def json_int(value: int) -> str:
    """A number, or a string when a double cannot hold it exactly (RFC 8259), as bpftrace."""
    text = str(value)
    if -_EXACT_IN_DOUBLE <= value <= _EXACT_IN_DOUBLE:
        return text
    return text if float(value) == value else f'"{text}"'


_EXACT_IN_DOUBLE = 1 << 53  # every integer up to this holds in a double exactly

_JSON_ESCAPES = {ord('"'): '\\"', ord("\\"): "\\\\", ord("\n"): "\\n", ord("\r"): "\\r", ord("\t"): "\\t"}


def json_string(data: bytes) -> str:
    """bpftrace's escaping: quotes, backslashes, \\n \\r \\t, other control bytes as \\u00XX; every
    other byte as it is (bytes that are not UTF-8 included)."""
    out = []
    for byte in data:
        if byte in _JSON_ESCAPES:
            out.append(_JSON_ESCAPES[byte])
        elif byte < 0x20:
            out.append(f"\\u{byte:04x}")
        else:
            out.append(chr(byte) if byte < 0x80 else chr(0xDC00 + byte))  # re-encoded by encode()
    return '"' + "".join(out) + '"'
