"""Act on the asynchronous events the BPF programs send through the ring buffer.

Consumes ring buffer records: a u64 event id (an index into the bundle's events) followed, at
`schema.EVENT_HEADER`, by the payload of the event's kind (common/schema.py). One handler per
kind, in `_HANDLERS`:

- printf: the arguments, formatted with C semantics (printf.py);
- exit: the exit code; `handle` returns it and the caller stops;
- print_map, clear, zero: act on a whole map, in user space (as bpftrace does), through the
  decoding context (the maps' fds, the CPU count);
- print_value: one value;
- runtime_error: a warning the program raised (a division by zero), at its source location;
- time: the wall-clock time now; cat: a file's contents; system: a command's output (run
  only when bpfrun is given --unsafe, which verify.py checks).

A record with an unknown id or too few bytes means the bundle does not describe its own bytecode:
`UserError`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping

from bpfrun import maps, values
from bpfrun.errors import UserError
from bpfrun.output import Output, text_value
from bpfrun.values import MapValue, Timestamp, decode, encode
from common import layout, schema
from common.schema import EventSpec, MapSpec


class Context:
    """What decoding needs besides the record: the maps, read, cleared and zeroed in user space.

    Owns which maps without keys zero() left at 0 (see maps.read_map)."""

    def __init__(self, specs: Iterable[MapSpec], map_fds: Mapping[str, int], ncpus: int) -> None:
        self._specs = {spec.name: spec for spec in specs}
        self._map_fds = map_fds
        self._ncpus = ncpus
        self._zeroed: set[str] = set()

    def read(self, name: str, top: int = 0, div: int = 0) -> MapValue:
        spec = self._specs[name]
        return maps.read_map(spec, self._fd(spec), self._ncpus, top, div, name in self._zeroed)

    def read_all(self) -> list[MapValue]:
        """Every map, ordered by name as bpftrace prints them at exit."""
        return [self.read(name) for name in sorted(self._specs, key=str.encode)]

    def clear(self, name: str) -> None:
        spec = self._specs[name]
        maps.clear_map(spec, self._fd(spec), self._ncpus)
        self._zeroed.discard(name)

    def zero(self, name: str) -> None:
        spec = self._specs[name]
        if maps.zero_map(spec, self._fd(spec), self._ncpus) and spec.key is None:
            self._zeroed.add(name)

    def _fd(self, spec: MapSpec) -> int:
        return self._map_fds[spec.elf_name]


LINES_PER_WRITE = 4096


class EventHandler:
    """Owns the parsed printf formats of a bundle and the output events go to."""

    def __init__(self, events: tuple[EventSpec, ...], context: Context, output: Output) -> None:
        self._events = events
        self._context = context
        self._output = output
        # verify.py has parsed every format once already; parsing cannot fail here.
        self._formats = {
            index: _compile_printf(event)
            for index, event in enumerate(events)
            if isinstance(event, schema.FORMATTED_EVENTS)
        }
        # printf events by the 8 bytes of their id, when nothing but their text is written for them.
        self._fast_printf: dict[bytes, Callable[[bytes], bytes]] = {}
        if not output.json and not output.line_buffered:
            self._fast_printf = {
                index.to_bytes(schema.EVENT_HEADER, "little"): self._formats[index]
                for index, event in enumerate(events)
                if isinstance(event, schema.PrintfEvent)
            }

    def handle_batch(self, records: list[bytes]) -> int | None:
        """Act on records in order, up to and including the first exit event; return its code, or
        None. printf records, the bulk of most traces, take a short path in text mode: formatted
        and written as one run of bytes (one write call for many lines)."""
        fast = self._fast_printf
        if not fast:
            for record in records:
                code = self.handle(record)
                if code is not None:
                    return code
            return None
        lines: list[bytes] = []
        for record in records:
            formatter = fast.get(record[: schema.EVENT_HEADER])
            if formatter is not None:
                try:
                    lines.append(formatter(record[schema.EVENT_HEADER :]))
                except ValueError as error:
                    event_id = int.from_bytes(record[: schema.EVENT_HEADER], "little")
                    raise UserError(f"printf event {event_id}: {error}") from None
                if len(lines) >= LINES_PER_WRITE:  # a large backlog still comes out as it goes
                    self._write_lines(lines)
                continue
            self._write_lines(lines)
            code = self.handle(record)
            if code is not None:
                return code
        self._write_lines(lines)
        return None

    def _write_lines(self, lines: list[bytes]) -> None:
        if lines:
            try:
                self._output.printf(b"".join(lines))
            finally:
                lines.clear()

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
            result = _HANDLERS[type(event)](self, event_id, event, payload)
        except ValueError as error:
            raise UserError(f"{event.KIND} event {event_id}: {error}") from None
        if self._output.line_buffered:
            self._output.flush()
        return result

    def _printf(self, event_id: int, event: schema.PrintfEvent, payload: bytes) -> None:
        self._output.printf(self._formats[event_id](payload))

    def _exit(self, event_id: int, event: schema.ExitEvent, payload: bytes) -> int:
        return decode(layout.I64, payload)

    def _print_map(self, event_id: int, event: schema.PrintMapEvent, payload: bytes) -> None:
        self._output.map(self._context.read(event.map, event.top, event.div))

    def _print_value(self, event_id: int, event: schema.PrintValueEvent, payload: bytes) -> None:
        self._output.value(decode(event.value, payload))

    def _clear(self, event_id: int, event: schema.ClearEvent, payload: bytes) -> None:
        self._context.clear(event.map)

    def _zero(self, event_id: int, event: schema.ZeroEvent, payload: bytes) -> None:
        self._context.zero(event.map)

    def _runtime_error(self, event_id: int, event: schema.RuntimeErrorEvent, payload: bytes) -> None:
        self._output.runtime_error(event)

    def _helper_error(self, event_id: int, event: schema.HelperErrorEvent, payload: bytes) -> None:
        self._output.helper_error(event, decode(layout.I64, payload))

    def _message(self, event_id: int, event: schema.MessageEvent, payload: bytes) -> None:
        self._output.message(event, self._formats[event_id](payload))

    def _time(self, event_id: int, event: schema.TimeEvent, payload: bytes) -> None:
        self._output.text("time", encode(Timestamp(time.clock_gettime_ns(time.CLOCK_BOOTTIME), event.format).text()))

    def _cat(self, event_id: int, event: schema.CatEvent, payload: bytes) -> None:
        path = self._formatted(event_id, event, payload)
        try:
            with open(path, "rb") as file:
                contents = file.read(MAX_CAT_BYTES)
        except OSError as error:
            self._output.warning(f"cat: cannot read {values.text(path)}: {error.strerror}")
            return
        self._output.text("cat", contents)

    def _join(self, event_id: int, event: schema.JoinEvent, payload: bytes) -> None:
        count = min(int.from_bytes(payload[:8], "little"), event.count)
        if len(payload) < 8 + count * event.size:
            raise ValueError(f"{count} strings of {event.size} bytes in a record of {len(payload)} bytes")
        strings = [payload[8 + index * event.size : 8 + (index + 1) * event.size] for index in range(count)]
        joined = encode(event.separator).join(string.split(b"\0", 1)[0] for string in strings)
        self._output.text("join", joined if self._output.json else joined + b"\n")

    def _system(self, event_id: int, event: schema.SystemEvent, payload: bytes) -> None:
        import subprocess  # only for system(): a few ms of every start otherwise

        command = self._formatted(event_id, event, payload)
        # bpftrace runs the command and waits for it: events queue up meanwhile (its docs say so).
        finished = subprocess.run(command, shell=True, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
        self._output.text("syscall", finished.stdout)

    def _formatted(self, event_id: int, event, payload: bytes) -> bytes:
        return self._formats[event_id](payload)


_HANDLERS = {
    schema.PrintfEvent: EventHandler._printf,
    schema.ExitEvent: EventHandler._exit,
    schema.PrintMapEvent: EventHandler._print_map,
    schema.PrintValueEvent: EventHandler._print_value,
    schema.ClearEvent: EventHandler._clear,
    schema.ZeroEvent: EventHandler._zero,
    schema.RuntimeErrorEvent: EventHandler._runtime_error,
    schema.MessageEvent: EventHandler._message,
    schema.HelperErrorEvent: EventHandler._helper_error,
    schema.TimeEvent: EventHandler._time,
    schema.CatEvent: EventHandler._cat,
    schema.SystemEvent: EventHandler._system,
    schema.JoinEvent: EventHandler._join,
}
MAX_CAT_BYTES = 10240  # bpftrace's default max_cat_bytes


_ARGUMENT_KINDS = {layout.INT: "number", layout.UINT: "number", layout.POINTER: "number", layout.STRING: "string"}
_FAST_KINDS = (layout.INT, layout.UINT, layout.POINTER, layout.BOOL, layout.STRING)  # decoded in one unpack


def _compile_printf(event) -> Callable[[bytes], bytes]:
    """An event of schema.FORMATTED_EVENTS: payload → formatted bytes, with the decoding and the formatting worked out once per event
    kind: this is the path every printf record takes."""
    from bpfrun import printf  # only for bundles that format text

    pieces = printf.parse(event.format)
    decode_arguments, exact = values.tuple_decoder(event.args, printf.readings(pieces))
    kinds = [_ARGUMENT_KINDS.get(field.layout.kind, "other") for field in event.args.fields]
    formatter = printf.compile_format(pieces, kinds, exact)
    if all(field.layout.kind in _FAST_KINDS for field in event.args.fields):
        return lambda payload: formatter(decode_arguments(payload))
    return lambda payload: formatter([_printf_argument(arg) for arg in decode_arguments(payload)])


def _printf_argument(value) -> int | bool | bytes:
    """printf's view of a value: integers and bools as they are, anything else as the text
    print() shows."""
    if isinstance(value, (int, bytes)):  # bytes: a string the tuple decoder already encoded
        return value
    if isinstance(value, str):
        return encode(value)
    return encode(text_value(value))
