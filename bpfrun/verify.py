"""Step 2: check a bundle's `Resources` against this host and for internal consistency.

Consumes `Resources`; returns nothing; raises `UserError` (one line) for the first problem found:

- the bundle was built for another architecture than `os.uname().machine`, or for one bpfrun
  cannot run on (its syscall numbers and va_list handling are x86_64's);
- positional parameters, which bpfrun cannot pass yet;
- probes: none at all, a duplicate or empty program name, a provider bpfrun cannot attach, a
  target of the wrong shape, an interval without a positive period;
- maps: duplicate names or ELF names, a key or value type that cannot be stored;
- events: duplicate ids, no `event_map` although there are events, a printf format whose
  conversions do not match its arguments, an exit event whose
  argument is not one integer.

Whether the ELF really has these programs and maps is checked by load.py after opening it.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable

from bpfrun import printf
from bpfrun.errors import UserError
from common.schema import (
    BEGIN,
    END,
    EXIT,
    INTERVAL,
    KPROBE,
    KRETPROBE,
    PRINTF,
    TRACEPOINT,
    EventSpec,
    MapSpec,
    ProbeSpec,
    Resources,
)
from common.types import BOOL, COUNT, HIST, INT, STRING, Type, type_name

SUPPORTED_ARCHES = ("x86_64",)
# Parts of the target each provider's attach needs; None: attach does not read the target.
_TARGET_PARTS = {BEGIN: None, END: None, KPROBE: 1, KRETPROBE: 1, TRACEPOINT: 2, INTERVAL: None}
_KEY_KINDS = (INT, BOOL, STRING)
_VALUE_KINDS = (INT, BOOL, STRING, COUNT, HIST)


def verify(resources: Resources) -> None:
    _verify_host(resources)
    if resources.parameters:
        raise UserError("bundle takes positional parameters ($1...), which this bpfrun cannot pass yet")
    _verify_probes(resources.probes)
    _verify_maps(resources.maps, resources.event_map)
    _verify_events(resources.events, resources.event_map)


def _verify_host(resources: Resources) -> None:
    arch = resources.requirements.arch
    host = os.uname().machine
    if arch != host:
        raise UserError(f"bundle was built for {arch}, this host is {host}")
    if host not in SUPPORTED_ARCHES:
        raise UserError(f"bpfrun runs on {', '.join(SUPPORTED_ARCHES)} only, this host is {host}")


def _verify_probes(probes: tuple[ProbeSpec, ...]) -> None:
    if not probes:
        raise UserError("bundle has no probes")
    _unique((probe.program for probe in probes), "probe program")
    for probe in probes:
        if not probe.program:
            raise UserError(f"probe {probe.attach_point!r} has no program name")
        if probe.provider not in _TARGET_PARTS:
            raise UserError(f"probe {probe.attach_point!r}: provider {probe.provider!r} is not supported by bpfrun")
        parts = _TARGET_PARTS[probe.provider]
        if parts is not None and (len(probe.target) != parts or not all(probe.target)):
            raise UserError(f"probe {probe.attach_point!r}: invalid {probe.provider} target {':'.join(probe.target)!r}")
        if probe.provider == INTERVAL and probe.period_ns <= 0:
            raise UserError(f"probe {probe.attach_point!r}: interval period must be positive, not {probe.period_ns}")


def _verify_maps(maps: tuple[MapSpec, ...], event_map: str) -> None:
    _unique((spec.name for spec in maps), "map name")
    _unique([spec.elf_name for spec in maps] + ([event_map] if event_map else []), "map ELF name")
    for spec in maps:
        for field in spec.key:
            _check_stored_type(field, _KEY_KINDS, f"map {spec.name} key")
        _check_stored_type(spec.value, _VALUE_KINDS, f"map {spec.name} value")


def _verify_events(events: tuple[EventSpec, ...], event_map: str) -> None:
    _unique((event.id for event in events), "event id")
    if events and not event_map:
        raise UserError("bundle has events but no event map")
    for event in events:
        if not 0 <= event.id < 1 << 64:
            raise UserError(f"event id {event.id} does not fit in 64 bits")
        for arg in event.args:
            _check_stored_type(arg, _KEY_KINDS, f"{event.kind} event {event.id} argument")
        if event.kind == PRINTF:
            _verify_printf(event)
        elif event.kind == EXIT and (len(event.args) != 1 or event.args[0].kind != INT):
            raise UserError(f"exit event {event.id} must have one integer argument")


def _verify_printf(event: EventSpec) -> None:
    where = f"printf event {event.id} ({event.format!r})"
    conversions = printf.conversions(printf.parse(event.format))
    if len(conversions) != len(event.args):
        raise UserError(f"{where}: {len(conversions)} conversions for {len(event.args)} arguments")
    for position, (spec, arg) in enumerate(zip(conversions, event.args), 1):
        # %s prints any value as text (bpftrace prints 5 and true); integer conversions need a number.
        wanted = (STRING, INT, BOOL) if spec.conversion in printf.STRING_CONVERSIONS else (INT, BOOL)
        if arg.kind not in wanted:
            raise UserError(f"{where}: %{spec.conversion} cannot print argument {position} of type {type_name(arg)}")


def _check_stored_type(t: Type, kinds: tuple[str, ...], where: str) -> None:
    if t.kind not in kinds:
        raise UserError(f"{where} has type {type_name(t)}, which bpfrun cannot decode")
    if t.kind == INT and t.size not in (1, 2, 4, 8):
        raise UserError(f"{where} is an integer of {t.size} bytes")
    if t.kind == STRING and t.size < 1:
        raise UserError(f"{where} is a string of {t.size} bytes")


def _unique(names: Iterable[object], what: str) -> None:
    for name, count in Counter(names).items():
        if count > 1:
            raise UserError(f"bundle has duplicate {what} {name!r}")
