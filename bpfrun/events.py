"""Step 6: decode and act on the asynchronous events the BPF programs send through the ring buffer.

Consumes ring buffer records: a u64 event id, then the event's `args` laid out as a record by
`common.types.record_offsets`. The id names an `EventSpec` of the bundle:

- printf: the arguments are formatted with C semantics (printf.py) and written to the output
  stream, which is flushed;
- exit: its one argument is the exit code; `handle` returns it and the caller stops.

A record with an unknown id or too few bytes means the bundle does not describe its own bytecode:
`UserError`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import BinaryIO

from bpfrun import printf
from bpfrun.decode import decode_record
from bpfrun.errors import UserError
from common.schema import EXIT, PRINTF, EventSpec
from common.types import SLOT


class EventHandler:
    """Owns the parsed printf formats of a bundle and the stream printf writes to."""

    def __init__(self, events: Iterable[EventSpec], out: BinaryIO) -> None:
        self._events = {event.id: event for event in events}
        # verify.py has parsed every format once already; parsing cannot fail here.
        self._formats = {
            event.id: printf.parse(event.format) for event in self._events.values() if event.kind == PRINTF
        }
        self._out = out

    def handle(self, record: bytes) -> int | None:
        """Act on one record; return the exit code if it was an exit event, else None."""
        if len(record) < SLOT:
            raise UserError(f"ring buffer record of {len(record)} bytes has no event id")
        event_id = int.from_bytes(record[:SLOT], "little")
        event = self._events.get(event_id)
        if event is None:
            raise UserError(f"ring buffer record has an unknown event id {event_id}")
        try:
            args = decode_record(event.args, record[SLOT:])
        except ValueError as error:
            raise UserError(f"{event.kind} event {event_id}: {error}") from None
        if event.kind == EXIT:
            assert isinstance(args[0], int)
            return args[0]
        assert event.kind == PRINTF
        self._out.write(printf.format(self._formats[event_id], args))
        self._out.flush()
        return None
