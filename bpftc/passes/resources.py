"""Resources: decide everything the loader will need to know and give it names and ids.

Consumes the checked program, its probe targets and the resolution; produces a `Plan`: the
bundle's `Resources` (probes, maps, events) plus the links from AST nodes to them that code
generation follows. One id space for all asynchronous events. Reports nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

from common.schema import EXIT, PRINTF, EventSpec, MapSpec, ProbeSpec, Requirements, Resources
from common.types import INT, INT64, Type

from bpftc import ast
from bpftc.arch import Arch
from bpftc.passes.probes import ProbeTargets
from bpftc.passes.resolve import Resolution
from bpftc.probes import ProbeTarget

MAX_MAP_ENTRIES = 4096  # bpftrace's default for BPFTRACE_MAX_MAP_KEYS
EVENT_MAP = "events"


@dataclass(frozen=True, slots=True)
class ProgramPlan:
    probe: ast.Probe
    target: ProbeTarget
    spec: ProbeSpec


@dataclass
class Plan:
    resources: Resources
    programs: list[ProgramPlan]
    maps: dict[str, MapSpec]  # by the script's map name
    event_ids: dict[ast.Call, int] = field(default_factory=dict)  # printf() and exit() calls


def plan_resources(
    program: ast.Program, targets: ProbeTargets, resolution: Resolution, source_name: str, arch: Arch
) -> Plan:
    programs = _programs(program, targets)
    maps = {
        name: _map_spec(name, info.key or (), info.value or INT64) for name, info in sorted(resolution.maps.items())
    }
    events, event_ids = _events(program, resolution)
    resources = Resources(
        source_name=source_name,
        probes=tuple(plan.spec for plan in programs),
        maps=tuple(maps.values()),
        events=tuple(events),
        event_map=EVENT_MAP if events else "",
        requirements=Requirements(arch=arch.name),
    )
    return Plan(resources, programs, maps, event_ids)


def _programs(program: ast.Program, targets: ProbeTargets) -> list[ProgramPlan]:
    plans = []
    for probe in program.probes:
        for attach_point in probe.attach_points:
            target = targets[attach_point]
            name = f"{_identifier(target.attach_point)}_{len(plans) + 1}"
            spec = ProbeSpec(target.provider, target.target, name, target.attach_point, target.period_ns)
            plans.append(ProgramPlan(probe, target, spec))
    return plans


def _identifier(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", text)


def _map_spec(name: str, key: tuple[Type, ...], value: Type) -> MapSpec:
    key = tuple(_widened(field) for field in key)
    return MapSpec(name, "AT_" + name[1:], key, _widened(value), MAX_MAP_ENTRIES)


def _widened(type_: Type) -> Type:
    """Map keys and values hold 64-bit integers, as in bpftrace: `@x = 1; @x = 1000` stores 1000,
    although messages call the map's type 'int8' after its first assignment."""
    return replace(type_, size=8) if type_.kind == INT else type_


def _events(program: ast.Program, resolution: Resolution) -> tuple[list[EventSpec], dict[ast.Call, int]]:
    events: list[EventSpec] = []
    event_ids: dict[ast.Call, int] = {}
    exit_id = None

    def collect(node: ast.Node) -> None:
        nonlocal exit_id
        if isinstance(node, ast.Call) and node.name == "printf":
            format_node, *args = node.args
            arg_types = tuple(resolution.types[arg] for arg in args)
            event_ids[node] = len(events)
            events.append(EventSpec(len(events), PRINTF, format_node.value, arg_types))
        elif isinstance(node, ast.Call) and node.name == "exit":
            if exit_id is None:
                exit_id = len(events)
                events.append(EventSpec(exit_id, EXIT, "", (INT64,)))
            event_ids[node] = exit_id
        for child in ast.children(node):
            collect(child)

    collect(program)
    return events, event_ids
