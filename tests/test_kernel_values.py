"""Values bpfrun reads back from the kernel are range-checked before they are used: a record
length, a histogram bucket, a batch count, a join() count. Crafted bytes go to the decoding code
that takes them from the ring buffer and the maps; whatever they say, the answer is the records
and values they hold, or one line (`UserError`), never an AssertionError, an IndexError or a
gigabyte allocation.
"""

from __future__ import annotations

import io
import struct

import pytest

from bpfrun.errors import UserError
from bpfrun.events import Context, EventHandler
from bpfrun.maps import build
from bpfrun.output import Output
from bpfrun.ringbuf import read_records
from common import schema
from common.layout import I64
from common.schema import PERCPU_ARRAY, JoinEvent, MapSpec

BUSY, DISCARD = 1 << 31, 1 << 30
RING = 64  # bytes of the ring buffer's data area in these tests


def ring(*records: tuple[int, bytes]) -> bytes:
    """A ring buffer's data area, mapped twice as the kernel maps it: each record an 8-byte header
    (its length word, with the busy and discard bits, and a page offset) and its bytes, 8-aligned."""
    area = b""
    for length_word, content in records:
        area += struct.pack("<II", length_word, 0) + content.ljust((len(content) + 7) & ~7, b"\0")
    area = area.ljust(RING, b"\0")
    return area + area


def test_records_are_read_up_to_a_busy_one_skipping_discarded_ones() -> None:
    data = ring((3, b"abc"), (DISCARD | 2, b"xy"), (5, b"hello"), (BUSY | 1, b"z"))
    records, position, needed = read_records(data, 0, RING, RING)
    assert (records, position, needed) == ([b"abc", b"hello"], 48, 0)  # the busy record is read next time


def test_records_past_the_mapped_window_are_asked_for() -> None:
    data = ring((3, b"abc"), (13, b"hello, world!"), (2, b"ok"))
    assert read_records(data[:28], 0, 56, RING) == ([b"abc"], 16, 8 + 13)  # the second one's header, not its bytes
    assert read_records(data[:20], 0, 56, RING) == ([b"abc"], 16, 8)  # not even its header
    window = data[16:56]  # a window mapped from offset 16 reads on
    assert read_records(window, 16, 56, RING, origin=16) == ([b"hello, world!", b"ok"], 56, 0)


def test_a_window_mapped_before_the_wrap_reads_on_in_the_second_copy() -> None:
    first_lap = struct.pack("<II", 4, 0) + b"wrap".ljust(8, b"\0")
    area = (first_lap + bytes(32) + struct.pack("<II", 5, 0) + b"hello".ljust(8, b"\0")) * 2
    assert read_records(area[48:80], 48, 80, RING, origin=48) == ([b"hello", b"wrap"], 80, 0)


def test_a_record_longer_than_the_ring_buffer_is_one_line() -> None:
    data = ring((1 << 29, b""))
    with pytest.raises(UserError, match=r"^the event ring buffer holds a record of 536870912 bytes, in 64 bytes$"):
        read_records(data, 0, 16, RING)


@pytest.mark.parametrize("consumer, producer", [(0, RING + 8), (100, 50)])
def test_positions_further_apart_than_the_ring_buffer_are_one_line(consumer: int, producer: int) -> None:
    with pytest.raises(UserError, match=r"^the event ring buffer's positions are -?\d+ bytes apart, in 64 bytes$"):
        read_records(ring(), consumer, producer, RING)


HISTOGRAM = MapSpec("@h", "AT_h", PERCPU_ARRAY, None, I64, 66, "hist", (0,))
LINEAR = MapSpec("@l", "AT_l", PERCPU_ARRAY, None, I64, 12, "lhist", (0, 10, 1))


@pytest.mark.parametrize("spec", [HISTOGRAM, LINEAR], ids=["hist", "lhist"])
def test_a_histogram_bucket_out_of_range_is_one_line(spec: MapSpec) -> None:
    buckets = schema.histogram_buckets(spec)
    count = (5).to_bytes(8, "little")
    assert build(spec, [((buckets - 1).to_bytes(4, "little"), count)], ncpus=1).entries  # the last one is fine
    for bucket in (buckets, 0xFFFFFFFF):
        with pytest.raises(UserError, match=rf"^map {spec.name} holds bucket {bucket} of a histogram of {buckets}$"):
            build(spec, [(bucket.to_bytes(4, "little"), count)], ncpus=1)


def join_handler(out: io.BytesIO | None = None) -> EventHandler:
    output = Output("text", out or io.BytesIO(), io.BytesIO())
    return EventHandler((JoinEvent(",", 2, 4),), Context((), {}, 1), output)


def test_a_join_record_shorter_than_its_count_says_is_one_line() -> None:
    handler = join_handler()
    header = (0).to_bytes(8, "little")  # event 0
    handler.handle(header + (2).to_bytes(8, "little") + b"ab\0\0cd\0\0")  # well-formed: printed
    with pytest.raises(UserError, match=r"^join event 0: 2 strings of 4 bytes in a record of 12 bytes$"):
        handler.handle(header + (2).to_bytes(8, "little") + b"ab\0\0")
    # A count above the event's own is capped at it, not trusted.
    handler.handle(header + (1 << 60).to_bytes(8, "little") + b"ab\0\0cd\0\0")


def test_a_record_with_an_unknown_event_id_is_one_line() -> None:
    handler = join_handler()
    with pytest.raises(UserError, match=r"^ring buffer record has an unknown event id 7$"):
        handler.handle((7).to_bytes(8, "little"))
    with pytest.raises(UserError, match=r"^ring buffer record of 3 bytes has no event id$"):
        handler.handle(b"abc")


def test_nothing_is_printed_from_a_refused_record() -> None:
    out = io.BytesIO()
    handler = join_handler(out)
    with pytest.raises(UserError):
        handler.handle((0).to_bytes(8, "little") + (2).to_bytes(8, "little"))
    assert out.getvalue() == b""
