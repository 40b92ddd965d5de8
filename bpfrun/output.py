"""Step 8: render the value model of maps.py exactly like bpftrace 0.27's text output.

Consumes `MapValues` (entries already in print order); produces text. The rules, as observed with
bpftrace 0.27 (tests/test_bpfrun_output.py holds its output):

- at exit bpftrace prints "\\n\\n", then every map in name order; an empty map prints nothing;
- `@x: 3`, `@x[1, abc]: 3` (keys joined by ", "; bools as true/false); a histogram prints
  `@x:` or `@x[key]:`, its rows, then an empty line;
- a histogram row: label left-justified in 16 columns, count right-justified in 8, ` |`, a bar of
  '@' 52 wide, `|`; rows run from the first to the last non-empty bucket.

Strings in the model may carry bytes that are not UTF-8 as surrogate escapes: write the text
with `encode_text`.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import BinaryIO

from bpfrun.maps import Histogram, Key, MapValues, Value

BAR_WIDTH = 52
_SUFFIXES = ("", "K", "M", "G", "T", "P", "E")


def render_exit(maps: Sequence[MapValues]) -> str:
    """What bpftrace prints when it stops: two newlines, then the maps."""
    return "\n\n" + "".join(render_map(values) for values in maps)


def print_maps(maps: Sequence[MapValues], out: BinaryIO) -> None:
    out.write(encode_text(render_exit(maps)))
    out.flush()


def render_map(values: MapValues) -> str:
    lines = []
    for key, value in values.entries:
        name = f"{values.name}[{_key_text(key)}]" if values.keyed else values.name
        if isinstance(value, Histogram):
            lines.append(f"{name}:\n{render_histogram(value)}\n")
        else:
            lines.append(f"{name}: {_primitive_text(value)}\n")
    return "".join(lines)


def render_histogram(histogram: Histogram) -> str:
    used = [index for index, count in enumerate(histogram.counts) if count > 0]
    if not used:
        return ""
    top = max(histogram.counts)
    rows = []
    for index in range(used[0], used[-1] + 1):
        count = histogram.counts[index]
        bar = "@" * _bar_width(count, top)
        rows.append(f"{_bucket_label(index):<16}{count:>8} |{bar:<{BAR_WIDTH}}|\n")
    return "".join(rows)


def encode_text(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def _bucket_label(index: int) -> str:
    """Bucket 0 holds negative values, 1 holds 0, 2 holds 1, i >= 3 holds [2^(i-2), 2^(i-1))."""
    if index == 0:
        return "(..., 0)"
    if index <= 2:
        return f"[{index - 1}]"
    return f"[{_bound(index - 1)}, {_bound(index)})"


def _bound(index: int) -> str:
    """The upper bound of a bucket, written with a K/M/G/T/P/E suffix for powers of 1024."""
    if index <= 2:
        return str(index)
    power = index - 1
    decade = power // 10
    assert decade < len(_SUFFIXES), f"histogram bucket {index}"
    return f"{1 << (power - 10 * decade)}{_SUFFIXES[decade]}"


def _bar_width(count: int, top: int) -> int:
    # bpftrace computes (count / (float)max) * 52 in single precision and truncates; with large
    # counts this differs from count * 52 // max (e.g. 624946893043 of 955801161138: 34, not 33).
    ratio = _float32(_float32(count) / _float32(top))
    return int(_float32(ratio * BAR_WIDTH))


def _float32(value: float) -> float:
    return struct.unpack("f", struct.pack("f", value))[0]


def _key_text(key: Key) -> str:
    text = ", ".join(_primitive_text(part) for part in key)
    if len(key) > 1:
        text = f"({text})"
    # bpftrace prints a key as a tuple "(a, b)" and then strips one pair of parentheses around
    # the whole key text, even from a single string key: @x["(ab)"] prints as @x[ab].
    if len(text) >= 2 and text[0] == "(" and text[-1] == ")":
        text = text[1:-1]
    return text


def _primitive_text(value: Value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    assert not isinstance(value, Histogram)
    return str(value)
