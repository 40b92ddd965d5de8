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


class MappedRingBuffer:
    def __init__(self, map_fd: int, size: int) -> None:
        page = mmap.PAGESIZE
        self._mask = size - 1
        try:
            self._consumer = mmap.mmap(map_fd, page, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE, offset=0)
            self._producer = mmap.mmap(map_fd, page + 2 * size, mmap.MAP_SHARED, mmap.PROT_READ, offset=page)
        except OSError as error:
            raise UserError(f"cannot map the event ring buffer: {error.strerror}") from None
        self._data = memoryview(self._producer)[page:]
        self._epoll = select.epoll()
        self._epoll.register(map_fd, select.EPOLLIN)

    def close(self) -> None:
        self._data.release()
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
        batch, consumer = read_records(self._data, consumer, producer, self._mask + 1)
        _POSITION.pack_into(self._consumer, 0, consumer)
        return batch


def read_records(data: memoryview | bytes, consumer: int, producer: int, size: int) -> tuple[list[bytes], int]:
    """The submitted records between the positions `consumer` and `producer` of a ring buffer of
    `size` bytes whose data area (mapped twice) is `data`, and the position after the last one.
    The kernel writes the lengths; one longer than the buffer, or positions more than a buffer
    apart, mean the mapping is not what bpfrun takes it for: a UserError, not a wrong read."""
    if not 0 <= producer - consumer <= size:
        raise UserError(f"the event ring buffer's positions are {producer - consumer} bytes apart, in {size} bytes")
    batch = []
    while consumer < producer:
        start = consumer % size
        (length,) = _LENGTH.unpack_from(data, start)
        if length & _BUSY:
            break  # reserved but not yet submitted: the rest comes in the next batch
        record_size = length & ~(_BUSY | _DISCARD)
        if record_size > size - _HEADER:
            raise UserError(f"the event ring buffer holds a record of {record_size} bytes, in {size} bytes")
        if not length & _DISCARD:
            batch.append(bytes(data[start + _HEADER : start + _HEADER + record_size]))
        consumer += (record_size + _HEADER + 7) & ~7
    return batch, consumer
