"""Step 2: check a bundle's `Resources` against this host and for internal consistency.

Consumes `Resources`; returns nothing; raises `UserError` (one line) for the first problem found:

- the bundle was built for another architecture than `os.uname().machine`, or for one bpfrun
  cannot run on (its syscall numbers and va_list handling are x86_64's);
- globals (values written before load, see parameters.py) bpfrun does not know;
- probes: none at all, a duplicate or empty program name, a provider bpfrun cannot attach (see
  attach.PROVIDERS), a target of the wrong shape;
- maps: duplicate names or ELF names, a layout bpfrun cannot decode, an aggregate that does not
  match its kernel map type or its parameters;
- events: no `event_map` or `lost_map` although there are events, a printf format whose
  conversions do not match its arguments, an event naming a map the bundle does not have.

Whether the ELF really has these programs and maps is checked by load.py after opening it.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Iterable

from bpfrun import parameters
from bpfrun.attach import PROVIDERS
from bpfrun.errors import UserError
from common import layout, schema
from common.layout import Layout
from common.schema import EventSpec, MapSpec, ProbeSpec, Resources

SUPPORTED_ARCHES = ("x86_64",)
_KEY_KINDS = (
    layout.INT, layout.UINT, layout.BOOL, layout.STRING, layout.TUPLE, layout.RECORD, layout.ARRAY, layout.LOOKUP,
    layout.POINTER, layout.STACK, layout.SYMBOL, layout.BYTES, layout.ENUM,
)  # fmt: skip
_VALUE_KINDS = (*_KEY_KINDS, layout.TIMESTAMP, layout.LOOKUP)
_MAX_LHIST_BUCKETS = 1002


def verify(resources: Resources, allow_unsafe: bool = False) -> None:
    """`allow_unsafe`: bpfrun --unsafe, without which a bundle that runs commands is refused."""
    _verify_host(resources)
    if not allow_unsafe and any(isinstance(event, schema.SystemEvent) for event in resources.events):
        raise UserError("bundle runs commands with system(), an unsafe function: run it with --unsafe")
    if resources.globals is not None:
        _verify_globals(resources.globals, resources.options, len(resources.probes))
    _verify_names(resources)
    _verify_probes(resources.probes)
    if resources.missing_probes not in schema.MISSING_PROBES:
        raise UserError(f"bundle's missing_probes setting is unknown: {resources.missing_probes!r}")
    special_maps = [
        resources.event_map, resources.lost_map, resources.probe_names_map, resources.stack_map, resources.usdt_spec_map
    ]  # fmt: skip
    _verify_maps(resources.maps, special_maps)
    _verify_events(resources)


_ARCH = re.compile(r"[A-Za-z0-9_]{1,32}")  # `uname -m`: x86_64, aarch64, s390x...


def _verify_host(resources: Resources) -> None:
    arch = resources.requirements.arch
    host = os.uname().machine
    if not _ARCH.fullmatch(arch):
        raise UserError(f"bundle names an architecture bpftc never writes: {arch!r}")
    if arch != host:
        raise UserError(f"bundle was built for {arch}, this host is {host}")
    if host not in SUPPORTED_ARCHES:
        raise UserError(f"bpfrun runs on {', '.join(SUPPORTED_ARCHES)} only, this host is {host}")


def _verify_globals(spec: Layout, options: tuple[schema.OptionSpec, ...], probe_count: int) -> None:
    _check_layout(spec, "bundle's globals", (layout.RECORD,))
    _unique((option.name for option in options), "option")
    string_options = {schema.OPTION + option.name for option in options if option.kind == "string"}
    for option in options:
        if option.kind not in schema.OPTION_KINDS:
            raise UserError(f"bundle's option {option.name!r} has an unknown kind {option.kind!r}")
    for field in spec.fields:
        is_string = field.name.startswith((schema.STRING_ARGUMENT, schema.PROBE_NAME_GLOBAL)) or field.name in string_options
        wanted = layout.STRING if is_string else layout.INT
        if not parameters.known_global(field.name, options, probe_count) or field.layout.kind not in (wanted, layout.UINT):
            raise UserError(f"bundle's globals have a field bpfrun does not know: {field.name!r} ({field.layout.kind})")
        if field.layout.kind != layout.STRING and field.layout.size != 8:
            raise UserError(f"bundle's global {field.name!r} is not 64 bits")


def _verify_probes(probes: tuple[ProbeSpec, ...]) -> None:
    if not probes:
        raise UserError("bundle has no probes")
    _unique((probe.program for probe in probes), "probe program")
    for probe in probes:
        if not probe.program:
            raise UserError(f"probe {probe.attach_point!r} has no program name")
        provider = PROVIDERS.get(probe.provider)
        if provider is None:
            raise UserError(f"probe {probe.attach_point!r}: provider {probe.provider!r} is not supported by bpfrun")
        problem = provider.problem(probe)
        if problem:
            raise UserError(f"probe {probe.attach_point!r}: {problem}")


_MAP_NAME = re.compile(r"@[A-Za-z0-9_]{0,127}")
_ELF_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")


def _verify_names(resources: Resources) -> None:
    """Names bpfrun prints, writes to tracefs or hands to libbpf: what bpftc writes, nothing that
    could forge an output line or point elsewhere (a newline, an escape sequence, a NUL, `..`)."""
    for spec in resources.maps:
        if not _MAP_NAME.fullmatch(spec.name) or not _ELF_NAME.fullmatch(spec.elf_name):
            raise UserError(f"bundle has a map named {spec.name!r} ({spec.elf_name!r}), which bpftc never writes")
    for probe in resources.probes:
        if not _ELF_NAME.fullmatch(probe.program):
            raise UserError(f"bundle has a program named {probe.program!r}, which bpftc never writes")
        if not probe.attach_point.isprintable() or len(probe.attach_point) > 1024:
            raise UserError(f"bundle has an attach point named {probe.attach_point!r}")


def _verify_maps(maps: tuple[MapSpec, ...], internal: list[str]) -> None:
    _unique((spec.name for spec in maps), "map name")
    _unique([spec.elf_name for spec in maps] + [name for name in internal if name], "map ELF name")
    for spec in maps:
        _verify_map(spec)


def _verify_map(spec: MapSpec) -> None:
    where = f"map {spec.name}"
    if spec.key is not None:
        _check_layout(spec.key, f"{where} key", _KEY_KINDS)
    _check_layout(spec.value, f"{where} value", _VALUE_KINDS)
    if spec.kernel_type not in schema.KERNEL_MAP_TYPES:
        raise UserError(f"{where} has an unknown kernel map type {spec.kernel_type!r}")
    if not 1 <= spec.max_entries <= schema.MAX_MAP_ENTRIES:
        raise UserError(f"{where} has an invalid max_entries {spec.max_entries}")
    if spec.aggregate == schema.PLAIN:
        if spec.kernel_type not in schema.PLAIN_MAP_TYPES or spec.params:
            raise UserError(f"{where} holds plain values but is a {spec.kernel_type} map")
        return
    if spec.aggregate not in schema.AGGREGATES:
        raise UserError(f"{where} has an unknown aggregate {spec.aggregate!r}")
    if spec.kernel_type in schema.PLAIN_MAP_TYPES or spec.value.kind not in (layout.INT, layout.UINT) or spec.value.size != 8:
        raise UserError(f"{where}: {spec.aggregate}() needs a per-CPU map of 64-bit integers")
    if spec.kernel_type == schema.PERCPU_ARRAY and spec.key is not None:
        raise UserError(f"{where} has keys but is a per-CPU array")
    _verify_parameters(spec, where)


def _verify_parameters(spec: MapSpec, where: str) -> None:
    if spec.aggregate == "hist":
        if len(spec.params) != 1 or not 0 <= spec.params[0] <= 5:
            raise UserError(f"{where}: hist() takes one parameter between 0 and 5, not {spec.params}")
    elif spec.aggregate == "lhist":
        if len(spec.params) != 3:
            raise UserError(f"{where}: lhist() takes (min, max, step), not {spec.params}")
        low, high, step = spec.params
        if not (0 <= low < high and step >= 1 and (high - low) // step + 2 <= _MAX_LHIST_BUCKETS):
            raise UserError(f"{where}: invalid lhist() parameters {spec.params}")
    elif spec.params:
        raise UserError(f"{where}: {spec.aggregate}() takes no parameters")
    if spec.kernel_type == schema.PERCPU_ARRAY:
        expected = schema.histogram_buckets(spec) if schema.is_histogram(spec) else 1
        if spec.max_entries != expected:
            raise UserError(f"{where} is an array of {spec.max_entries} elements, not {expected}")


def _verify_events(resources: Resources) -> None:
    events = resources.events
    if events and not (resources.event_map and resources.lost_map):
        raise UserError("bundle has events but no event map or lost-events map")
    map_names = {spec.name for spec in resources.maps}
    for event_id, event in enumerate(events):
        _verify_event(event_id, event, map_names)


def _verify_event(event_id: int, event: EventSpec, map_names: set[str]) -> None:
    where = f"{event.KIND} event {event_id}"
    if isinstance(event, schema.FORMATTED_EVENTS):
        _check_layout(event.args, f"{where} arguments", (layout.TUPLE,))
        _verify_printf(event, where)
    if isinstance(event, schema.MessageEvent) and (
        event.level not in ("WARNING", "ERROR") or "\n" in event.filename or len(event.filename) > schema.RUNTIME_ERROR_TEXT_MAX
    ):
        raise UserError(f"{where}: its level and file name must be WARNING or ERROR and a short single line")
    elif isinstance(event, schema.PrintValueEvent):
        _check_layout(event.value, f"{where} value", _VALUE_KINDS)
    elif isinstance(event, (schema.RuntimeErrorEvent, schema.HelperErrorEvent)):
        texts = (getattr(event, "message", ""), event.filename, *event.excerpt)
        too_long = any("\n" in text or len(text) > schema.RUNTIME_ERROR_TEXT_MAX for text in texts)
        if len(event.excerpt) > 2 or too_long or getattr(event, "level", "WARNING") not in ("WARNING", "ERROR"):
            raise UserError(f"{where}: its message and location must be short single lines")
        if isinstance(event, schema.HelperErrorEvent) and event.helper not in schema.HELPER_ERROR_HELPERS:
            raise UserError(f"{where}: an unknown helper {event.helper!r}")
    elif isinstance(event, schema.JoinEvent):
        if not (1 <= event.count <= schema.JOIN_MAX_ARGS and 1 <= event.size <= schema.JOIN_MAX_SIZE):
            raise UserError(f"{where}: {event.count} strings of {event.size} bytes")
        if len(event.separator) > schema.JOIN_MAX_SIZE:
            raise UserError(f"{where}: a separator longer than {schema.JOIN_MAX_SIZE}")
    elif isinstance(event, (schema.PrintMapEvent, schema.ClearEvent, schema.ZeroEvent)):
        if event.map not in map_names:
            raise UserError(f"{where} names a map the bundle does not have: {event.map!r}")
        if isinstance(event, schema.PrintMapEvent) and (event.top < 0 or event.div < 0):
            raise UserError(f"{where}: negative top or div")


def _verify_printf(event, where: str) -> None:
    """An event of schema.FORMATTED_EVENTS: its format fits its arguments."""
    from bpfrun import printf  # printf and its format parser: only for bundles that format text

    conversions = printf.conversions(printf.parse(event.format))
    arguments = event.args.fields
    if len(conversions) != len(arguments):
        raise UserError(f"{where} ({event.format!r}): {len(conversions)} conversions for {len(arguments)} arguments")
    for position, (spec, argument) in enumerate(zip(conversions, arguments), 1):
        if max(spec.width or 0, spec.precision or 0) > printf.MAX_WIDTH:
            raise UserError(f"{where}: a width or precision above {printf.MAX_WIDTH}")
        if spec.conversion in printf.UNSUPPORTED_CONVERSIONS:
            raise UserError(f"{where}: unsupported format specifier: {spec.conversion}")
        # %s prints any value as text (bpftrace prints 5 and true); integer conversions need a number.
        numeric = argument.layout.kind in (layout.INT, layout.UINT, layout.BOOL, layout.POINTER, layout.ENUM)
        if spec.conversion not in printf.STRING_CONVERSIONS and not numeric:
            raise UserError(f"{where}: %{spec.conversion} cannot print argument {position}, a {argument.layout.kind}")


def _check_layout(value: Layout, where: str, kinds: tuple[str, ...]) -> None:
    if value.kind not in kinds:
        raise UserError(f"{where} is a {value.kind}, which bpfrun cannot use there")
    problem = layout.problem(value)
    if problem is not None:
        raise UserError(f"{where} is invalid: {problem}")


def _unique(names: Iterable[object], what: str) -> None:
    for name, count in Counter(names).items():
        if count > 1:
            raise UserError(f"bundle has duplicate {what} {name!r}")
