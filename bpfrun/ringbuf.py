"""A BPF ring buffer read straight from its memory mapping, a batch at a time.

The kernel's layout (kernel/bpf/ringbuf.c, and libbpf's ring_buffer consumer): the first page
holds the consumer position, which we write; the next page the producer position, then the data
area, mapped twice in a row so that a record that wraps around reads as one run of bytes. Each
record starts with an 8-byte header: a u32 length whose top bit says the producer has not
submitted it yet (busy) and whose next bit says it was discarded, then a u32 page offset. Records
are 8-byte aligned.

`records()` returns every submitted record since the last call and moves the consumer position
past them once, at the end of the batch (one write for many records: the cheap way to keep up).
`wait(timeout)` sleeps in epoll until the kernel says there is data.

The data area is read through a window of WINDOW_BYTES, mapped again where the records have got
to, not through one mapping of all of it: the kernel fills a mapping's page tables when it is made,
so mapping bpftrace's 16 MiB twice over made 32 MiB of bpfrun's resident set (the memory itself is
the kernel's either way: the ring buffer's pages are allocated when the map is created).
"""

from __future__ import annotations

import mmap
import select
import struct

from bpfrun.errors import UserError

_BUSY = 1 << 31
_DISCARD = 1 << 30
_HEADER = 8
_POSITION = struct.Struct("<Q")
_LENGTH = struct.Struct("<I")
WINDOW_BYTES = 256 << 10


class MappedRingBuffer:
    def __init__(self, map_fd: int, size: int) -> None:
        self._fd = map_fd
        self._size = size
        self._window_bytes = min(size, WINDOW_BYTES)
        self._window: mmap.mmap | None = None
        self._data = memoryview(b"")
        self._origin = 0  # the data-area offset where the window starts
        page = mmap.PAGESIZE
        try:
            self._consumer = mmap.mmap(map_fd, page, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE, offset=0)
            self._producer = mmap.mmap(map_fd, page, mmap.MAP_SHARED, mmap.PROT_READ, offset=page)
        except OSError as error:
            raise UserError(f"cannot map the event ring buffer: {error.strerror}") from None
        self._epoll = select.epoll()
        self._epoll.register(map_fd, select.EPOLLIN)

    def close(self) -> None:
        self._unmap_window()
        self._epoll.close()
        self._producer.close()
        self._consumer.close()

    def wait(self, timeout_ms: int) -> None:
        """Sleep until the kernel has records for us. The kernel only wakes a reader that has
        caught up, so with records already waiting there is no wake-up to wait for."""
        if self.pending():
            return
        try:
            self._epoll.poll(timeout_ms / 1000)
        except InterruptedError:
            pass  # a signal: the caller looks at its stop flag

    def pending(self) -> bool:
        (consumer,) = _POSITION.unpack_from(self._consumer, 0)
        (producer,) = _POSITION.unpack_from(self._producer, 0)
        return consumer < producer

    def records(self) -> list[bytes]:
        """The records submitted since the last call, in order."""
        (consumer,) = _POSITION.unpack_from(self._consumer, 0)
        (producer,) = _POSITION.unpack_from(self._producer, 0)
        batch: list[bytes] = []
        while True:  # read_records says when the next record lies past the window (none at first)
            records, consumer, needed = read_records(self._data, consumer, producer, self._size, self._origin)
            batch += records
            if not needed:
                break
            self._map_window(consumer % self._size, needed)
        _POSITION.pack_into(self._consumer, 0, consumer)
        return batch

    def _map_window(self, start: int, needed: int) -> None:
        """Map the data area from the page holding offset `start`, for at least `needed` bytes from
        there. The data area is mapped twice in a row in the map's pages, so a window may run past
        its end into the second copy: a record that wraps around reads as one run of bytes."""
        page = mmap.PAGESIZE
        origin = start - start % page
        length = max(self._window_bytes, -(-(start - origin + needed) // page) * page)
        self._unmap_window()
        try:
            self._window = mmap.mmap(self._fd, length, mmap.MAP_SHARED, mmap.PROT_READ, offset=2 * page + origin)
        except OSError as error:
            raise UserError(f"cannot map the event ring buffer: {error.strerror}") from None
        self._data = memoryview(self._window)
        self._origin = origin

    def _unmap_window(self) -> None:
        self._data.release()
        self._data = memoryview(b"")
        if self._window is not None:
            self._window.close()
            self._window = None


def read_records(data: memoryview | bytes, consumer: int, producer: int, size: int,
                 origin: int = 0) -> tuple[list[bytes], int, int]:
    """The submitted records between the positions `consumer` and `producer` of a ring buffer of
    `size` bytes, read from `data`, the part of the data area (mapped twice) from offset `origin`;
    the position after the last one; and how many bytes from there the next record needs that
    `data` does not hold (0 when all were read or the next one is not submitted yet).
    The kernel writes the lengths; one longer than the buffer, or positions more than a buffer
    apart, mean the mapping is not what bpfrun takes it for: a UserError, not a wrong read."""
    if not 0 <= producer - consumer <= size:
        raise UserError(f"the event ring buffer's positions are {producer - consumer} bytes apart, in {size} bytes")
    batch = []
    end = len(data)
    start = consumer % size - origin  # where the record at `consumer` is in `data`
    if start < 0:
        start += size  # past the data area's end, in its second copy: the window began before the wrap
    while consumer < producer:
        if start + _HEADER > end:
            return batch, consumer, _HEADER
        (length,) = _LENGTH.unpack_from(data, start)
        if length & _BUSY:
            break  # reserved but not yet submitted: the rest comes in the next batch
        record_size = length & ~(_BUSY | _DISCARD)
        if record_size > size - _HEADER:
            raise UserError(f"the event ring buffer holds a record of {record_size} bytes, in {size} bytes")
        stop = start + _HEADER + record_size
        if stop > end:
            return batch, consumer, _HEADER + record_size
        if not length & _DISCARD:
            batch.append(bytes(data[start + _HEADER : stop]))
        step = (record_size + _HEADER + 7) & ~7
        consumer += step
        start += step
    return batch, consumer, 0

