"""Act on the asynchronous events the BPF programs send through the ring buffer.

Consumes ring buffer records: a u64 event id (an index into the bundle's events) followed, at
`schema.EVENT_HEADER`, by the payload of the event's kind (common/schema.py). One handler per
kind, in `_HANDLERS`:

- printf: the arguments, formatted with C semantics (printf.py);
- exit: the exit code; `handle` returns it and the caller stops;
- print_map, clear, zero: act on a whole map, in user space (as bpftrace does), through the
  decoding context (the maps' fds, the CPU count);
- print_value: one value.

A record with an unknown id or too few bytes means the bundle does not describe its own bytecode:
`UserError`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from bpfrun import maps, printf
from bpfrun.errors import UserError
from bpfrun.output import Output, text_value
from bpfrun.values import Tuple, decode, encode
from common import layout, schema
from common.schema import EventSpec, MapSpec


@dataclass(frozen=True, slots=True)
class Context:
    """What decoding needs besides the record: the maps (for print, clear, zero)."""

    maps: Mapping[str, MapSpec]  # by script name
    map_fds: Mapping[str, int]  # by ELF name
    ncpus: int


class EventHandler:
    """Owns the parsed printf formats of a bundle and the output events go to."""

    def __init__(self, events: tuple[EventSpec, ...], context: Context, output: Output) -> None:
        self._events = events
        self._context = context
        self._output = output
        # verify.py has parsed every format once already; parsing cannot fail here.
        self._formats = {
            index: printf.parse(event.format)
            for index, event in enumerate(events)
            if isinstance(event, schema.PrintfEvent)
        }

    def handle(self, record: bytes) -> int | None:
        """Act on one record; return the exit code if it was an exit event, else None."""
        if len(record) < schema.EVENT_HEADER:
            raise UserError(f"ring buffer record of {len(record)} bytes has no event id")
        event_id = int.from_bytes(record[: schema.EVENT_HEADER], "little")
        if event_id >= len(self._events):
            raise UserError(f"ring buffer record has an unknown event id {event_id}")
        event = self._events[event_id]
        payload = record[schema.EVENT_HEADER :]
        try:
            return _HANDLERS[type(event)](self, event_id, event, payload)
        except ValueError as error:
            raise UserError(f"{event.KIND} event {event_id}: {error}") from None

    def _printf(self, event_id: int, event: schema.PrintfEvent, payload: bytes) -> None:
        args = decode(event.args, payload)
        assert isinstance(args, Tuple)
        self._output.printf(printf.format(self._formats[event_id], [_printf_argument(arg) for arg in args.items]))

    def _exit(self, event_id: int, event: schema.ExitEvent, payload: bytes) -> int:
        return decode(layout.I64, payload)

    def _print_map(self, event_id: int, event: schema.PrintMapEvent, payload: bytes) -> None:
        spec = self._context.maps[event.map]
        fd = self._context.map_fds[spec.elf_name]
        self._output.map(maps.read_map(spec, fd, self._context.ncpus, event.top, event.div))

    def _print_value(self, event_id: int, event: schema.PrintValueEvent, payload: bytes) -> None:
        self._output.value(decode(event.value, payload))

    def _clear(self, event_id: int, event: schema.ClearEvent, payload: bytes) -> None:
        spec = self._context.maps[event.map]
        maps.clear_map(spec, self._context.map_fds[spec.elf_name], self._context.ncpus)

    def _zero(self, event_id: int, event: schema.ZeroEvent, payload: bytes) -> None:
        spec = self._context.maps[event.map]
        maps.zero_map(spec, self._context.map_fds[spec.elf_name], self._context.ncpus)


_HANDLERS = {
    schema.PrintfEvent: EventHandler._printf,
    schema.ExitEvent: EventHandler._exit,
    schema.PrintMapEvent: EventHandler._print_map,
    schema.PrintValueEvent: EventHandler._print_value,
    schema.ClearEvent: EventHandler._clear,
    schema.ZeroEvent: EventHandler._zero,
}


def _printf_argument(value) -> int | bool | bytes:
    """printf's view of a value: integers and bools as they are, anything else as the text
    print() shows."""
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        return encode(value)
    return encode(text_value(value))
