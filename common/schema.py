"""What a compiled program needs at run time besides its bytecode: the bundle's metadata.

The compiler builds one `Resources`; the loader gets it back from the bundle and needs nothing else
(together with the ELF object) to attach, run and print. Conventions the ELF follows:

- every probe is one BPF program, the ELF function named `ProbeSpec.program`;
- every map is a BTF-defined map in `.maps` named `MapSpec.elf_name`; its kernel key is
  `kernel_key_fields(map)` laid out by `common.types.record_offsets`, its value one stored
  `MapSpec.value` (per CPU when `is_per_cpu(map)`);
- asynchronous events (printf, exit) go through one BPF ring buffer, `Resources.event_map`; each
  record is a u64 event id followed by the event's `args` laid out as a record.

`to_dict`/`from_dict` turn these into plain msgpack-able data and back. `from_dict` is strict: an
unknown or missing field or a value of the wrong type raises `SchemaError`.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass

from common.types import COUNT, HIST, KINDS, UINT64, Type

# Probe providers the bundle may name.
BEGIN = "BEGIN"
END = "END"
KPROBE = "kprobe"
KRETPROBE = "kretprobe"
TRACEPOINT = "tracepoint"
INTERVAL = "interval"
PROVIDERS = (BEGIN, END, KPROBE, KRETPROBE, TRACEPOINT, INTERVAL)

# Asynchronous event kinds.
PRINTF = "printf"
EXIT = "exit"
EVENT_KINDS = (PRINTF, EXIT)


class SchemaError(ValueError):
    """Metadata that does not match this schema."""


@dataclass(frozen=True, slots=True)
class ProbeSpec:
    provider: str  # one of PROVIDERS
    target: tuple[str, ...]  # the attach point's parts after the provider: ('syscalls', 'sys_enter_read')
    program: str  # ELF function of this probe
    attach_point: str  # as bpftrace spells it, for messages: 'tracepoint:syscalls:sys_enter_read'
    period_ns: int = 0  # interval probes only


@dataclass(frozen=True, slots=True)
class MapSpec:
    name: str  # as in the script: '@times', '@'
    elf_name: str  # BTF variable in .maps
    key: tuple[Type, ...]  # the script's key fields, () for a map without keys
    value: Type
    max_entries: int


@dataclass(frozen=True, slots=True)
class EventSpec:
    id: int
    kind: str  # one of EVENT_KINDS
    format: str = ""  # printf only; escapes (\n, \t...) already turned into their characters
    args: tuple[Type, ...] = ()  # printf: its arguments; exit: the exit code


@dataclass(frozen=True, slots=True)
class ParameterSpec:
    position: int  # $1 is 1
    type: Type


@dataclass(frozen=True, slots=True)
class Requirements:
    arch: str  # `uname -m` of the hosts the bytecode was built for ('x86_64')


@dataclass(frozen=True, slots=True)
class Resources:
    source_name: str  # script file name, 'stdin' or '-e'
    probes: tuple[ProbeSpec, ...]
    maps: tuple[MapSpec, ...]
    events: tuple[EventSpec, ...]
    event_map: str  # ring buffer's elf name; '' when the program sends no events
    requirements: Requirements
    parameters: tuple[ParameterSpec, ...] = ()


def is_per_cpu(map_spec: MapSpec) -> bool:
    """Counts and histograms are per-CPU maps: no atomics in BPF, the loader sums the CPUs."""
    return map_spec.value.kind in (COUNT, HIST)


def kernel_key_fields(map_spec: MapSpec) -> tuple[Type, ...]:
    """Fields of the key as the kernel map holds it.

    A histogram appends its bucket index (u64) to the script's key. A map without any key field
    uses one u64 that is always 0, because BPF hash maps need a key of at least one byte.
    """
    fields = map_spec.key + ((UINT64,) if map_spec.value.kind == HIST else ())
    return fields or (UINT64,)


def to_dict(value: object) -> object:
    """A schema dataclass (or tuple of them) as plain dicts, lists, strings and ints."""
    if dataclasses.is_dataclass(value):
        return {f.name: to_dict(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple):
        return [to_dict(item) for item in value]
    return value


def from_dict(cls: type, data: object, where: str = "resources") -> typing.Any:
    """Rebuild `cls` from `to_dict` output, checking every field's presence and type."""
    if not isinstance(data, dict):
        raise SchemaError(f"{where}: expected a map, found {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields), key=str)
    if unknown:
        raise SchemaError(f"{where}: unknown field {unknown[0]!r}")
    values = {}
    for name, field in fields.items():
        if name in data:
            values[name] = _convert(hints[name], data[name], f"{where}.{name}")
        elif field.default is dataclasses.MISSING:
            raise SchemaError(f"{where}: missing field {name!r}")
    result = cls(**values)
    _check_values(result, where)
    return result


def _convert(hint: object, data: object, where: str) -> object:
    origin = typing.get_origin(hint)
    if origin is tuple:
        item_hint = typing.get_args(hint)[0]
        if not isinstance(data, list):
            raise SchemaError(f"{where}: expected a list, found {type(data).__name__}")
        return tuple(_convert(item_hint, item, f"{where}[{i}]") for i, item in enumerate(data))
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return from_dict(hint, data, where)
    if hint is int and not (isinstance(data, int) and not isinstance(data, bool)):
        raise SchemaError(f"{where}: expected an integer, found {type(data).__name__}")
    if hint in (str, bool) and not isinstance(data, hint):
        raise SchemaError(f"{where}: expected {hint.__name__}, found {type(data).__name__}")
    if hint not in (int, str, bool) and not isinstance(hint, types.GenericAlias):
        raise AssertionError(f"schema field type {hint!r} has no converter")
    return data


def _check_values(value: object, where: str) -> None:
    """Enumerated fields hold one of their allowed values; sizes are sane."""
    if isinstance(value, Type):
        if value.kind not in KINDS or not 0 <= value.size <= 4096:
            raise SchemaError(f"{where}: invalid type {value!r}")
    elif isinstance(value, ProbeSpec) and value.provider not in PROVIDERS:
        raise SchemaError(f"{where}: unknown probe provider {value.provider!r}")
    elif isinstance(value, EventSpec) and value.kind not in EVENT_KINDS:
        raise SchemaError(f"{where}: unknown event kind {value.kind!r}")
    elif isinstance(value, MapSpec) and not 1 <= value.max_entries <= 1 << 24:
        raise SchemaError(f"{where}: invalid max_entries {value.max_entries}")
