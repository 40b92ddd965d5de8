"""Resources: decide everything the loader will need to know and give it names and ids.

Consumes the converted program, its probe targets and the resolution; produces a `Plan`: the
bundle's `Resources` (probes, maps, events) plus the links from AST nodes to them that code
generation follows. Events share one id space (their index in `Resources.events`). Reports nothing.

Kernel map types: a plain map is a hash; an aggregating map is per-CPU (no atomics, bpfrun
reduces the CPUs): a per-CPU array when it has no keys (no hashing on the hot path; a histogram
then has one array slot per bucket), unless the program deletes from it, else a per-CPU hash.
"""

from __future__ import annotations

import re

from bpftc import VERSION, ast, storage
from bpftc.arch import Arch
from bpftc.builtins import ASSERT_FAILED, DEFAULT_TIME_FORMAT, MAP_DECLARATION_KINDS, STRING_READ_SIZE
from bpftc.passes.probes import ProbeTargets
from bpftc.passes.resolve import Resolution, constant_value, option_of, parameter_offset
from bpftc.probes import ProbeTarget
from bpftc.source import Source, Span, excerpt
from bpftc.types import INT64, UINT64, Aggregate, Int, Stack, Struct, Type, Unknown
from common import layout, schema
from common.layout import Layout
from common.record import field, record
from common.schema import (
    CatEvent,
    ClearEvent,
    EventSpec,
    ExitEvent,
    HelperErrorEvent,
    JoinEvent,
    MapSpec,
    MessageEvent,
    OptionSpec,
    PrintfEvent,
    PrintMapEvent,
    PrintValueEvent,
    ProbeSpec,
    Requirements,
    Resources,
    RuntimeErrorEvent,
    SystemEvent,
    TimeEvent,
    ZeroEvent,
)

MAX_MAP_ENTRIES = 4096  # bpftrace's default for max_map_keys (config = { max_map_keys = N })
EVENT_MAP = "events"
LOST_MAP = "lost_events"
SCRATCH_MAP = "scratch"
PROBE_NAMES_MAP = "probe_names"
PROBE_NAMES_ENTRIES = 65536  # tracepoints a wildcard may match
STACK_MAP = "stacks"
USDT_SPEC_MAP = "usdt_specs"


@record(frozen=True, slots=True)
class ProgramPlan:
    probe: ast.Probe
    target: ProbeTarget
    spec: ProbeSpec


@record
class Plan:
    resources: Resources
    programs: list[ProgramPlan]
    maps: dict[str, MapSpec]  # by the script's map name
    event_ids: dict[ast.Node, int] = field(default_factory=dict)  # calls (and divisions) that send an event


def plan_resources(
    program: ast.Program, targets: ProbeTargets, resolution: Resolution, source: Source, arch: Arch
) -> Plan:
    programs = _programs(program, targets)
    settings = {item.name: item.value for item in program.config}
    max_keys = settings.get("max_map_keys", MAX_MAP_ENTRIES)
    declared = {declaration.name: declaration for declaration in program.map_declarations}
    maps = {name: _map_spec(info.name, info.keyed, info.key, info.value, info.deleted, max_keys, declared.get(name))
            for name, info in sorted(resolution.maps.items())}  # fmt: skip
    events, event_ids = _events(program, resolution, source)
    resources = Resources(
        source_name=source.name,
        probes=tuple(plan.spec for plan in programs),
        maps=tuple(maps.values()),
        events=tuple(events),
        event_map=EVENT_MAP if events else "",
        lost_map=LOST_MAP if events else "",
        requirements=Requirements(
            arch=arch.name,
            kernel_fields=_kernel_fields(program, resolution),
            kernel_layouts=_kernel_layouts(program, resolution),
            probe_kinds=tuple(sorted({plan.spec.provider for plan in programs})),
            tracepoints=tuple(sorted({":".join(plan.spec.target) for plan in programs if plan.spec.provider == "tracepoint"})),
        ),  # the helpers are added once the code is generated (pipeline.py)
        globals=_globals(program, resolution, programs),
        options=tuple(_options(program)),
        print_maps_on_exit=settings.get("print_maps_on_exit", True),
        unsafe=any(isinstance(event, SystemEvent) for event in events),
        ring_buffer_pages=settings.get("perf_rb_pages", 0),
        missing_probes=settings.get("missing_probes", "error"),
        probe_names_map=PROBE_NAMES_MAP if any(plan.target.wildcard for plan in programs) else "",
        stack_map=STACK_MAP if any(isinstance(t, Stack) for t in resolution.types.values()) else "",
        usdt_spec_map=USDT_SPEC_MAP if any(plan.target.provider == schema.USDT for plan in programs) else "",
        source=source.text if len(source.text.encode("utf-8", "surrogateescape")) <= schema.MAX_SOURCE_BYTES else "",
        compiler=f"bpftc {VERSION}",
    )
    return Plan(resources, programs, maps, event_ids)


def _kernel_fields(program: ast.Program, resolution: Resolution) -> tuple[str, ...]:
    """Every field of a BTF struct the programs read ("struct task_struct.pid"), sorted."""
    fields = set()
    for probe in program.probes:
        for node in ast.walk(probe):
            if not isinstance(node, ast.Field):
                continue
            if isinstance(node.operand, ast.Builtin) and node.operand.name == "args":
                layouts = [resolution.args.get(point) for point in probe.attach_points]
            else:
                layouts = [resolution.struct_of(resolution.types.get(node.operand))]
            for found in layouts:
                if found is not None and not isinstance(found, str) and found.btf_id:
                    struct = resolution.kernel.btf_struct_name(found.btf_id)
                    if struct.endswith(" "):  # no name (atomic_t's struct): its holder's field is listed
                        continue
                    member = "__data_loc_" + node.name if found.fields[node.name].data_loc else node.name
                    fields.add(f"{struct}.{member}")
    return tuple(sorted(fields))


def _kernel_layouts(program: ast.Program, resolution: Resolution) -> tuple[str, ...]:
    """The BTF structs the programs copy whole (`@x = *p`), each as "struct NAME DIGEST": their
    bytes are not relocated field by field, so the host's layout must be the one compiled against.
    A struct only read from (`p->s.field`) is not copied."""
    nodes = list(ast.walk(program))
    read_from = {node.operand for node in nodes if isinstance(node, (ast.Field, ast.Index))}
    layouts = set()
    for node in nodes:
        t = resolution.types.get(node)
        if isinstance(t, Struct) and t.held is not None and t.held.requirement and node not in read_from:
            layouts.add(t.held.requirement)
    return tuple(sorted(layouts))


def _programs(program: ast.Program, targets: ProbeTargets) -> list[ProgramPlan]:
    plans = []
    for probe in program.probes:
        for attach_point in probe.attach_points:
            target = targets[attach_point]
            name = f"{_identifier(target.name)}_{len(plans) + 1}"
            spec = ProbeSpec(
                target.provider, target.target, name, target.name, target.period, target.frequency,
                target.rate_parameter, target.rate_unit,
            )  # fmt: skip
            plans.append(ProgramPlan(probe, target, spec))
    return plans


def _identifier(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", text)


def _map_spec(
    name: str, keyed: bool, key: Type, value: Type, deleted: bool, max_keys: int, declared: ast.MapDeclaration | None
) -> MapSpec:
    """`declared`: the map's `let @m = kind(N)`, whose kind passes/check.py matched to its values."""
    key_layout = storage.layout_of(key) if keyed and not isinstance(key, Unknown) else None
    if declared is not None:
        max_keys = declared.entries
    elf_name = "AT_" + name[1:] if name[1:] else "AT"  # "@" alone must not meet "@_"
    if isinstance(value, Unknown):  # read but never assigned: reads as 0, like bpftrace's int64 map
        value = INT64
    if not isinstance(value, Aggregate):
        kernel_type = MAP_DECLARATION_KINDS[declared.kind] if declared is not None else schema.HASH
        return MapSpec(name, elf_name, kernel_type, key_layout, storage.layout_of(value), _entries(keyed, max_keys))
    aggregated: Layout = storage.layout_of(value.value if value.value is not None else UINT64)
    params = value.params
    kernel_type = MAP_DECLARATION_KINDS[declared.kind] if declared is not None else schema.PERCPU_HASH
    spec = MapSpec(
        name, elf_name, kernel_type, key_layout, aggregated, _entries(keyed, max_keys), value.kind, params
    )
    if keyed or deleted:
        return spec
    array = MapSpec(name, elf_name, schema.PERCPU_ARRAY, None, aggregated, 1, value.kind, params)
    if schema.is_histogram(array):
        array = MapSpec(name, elf_name, schema.PERCPU_ARRAY, None, aggregated, schema.histogram_buckets(array),
                        value.kind, params)  # fmt: skip
    return array


def _globals(program: ast.Program, resolution: Resolution, programs: list[ProgramPlan]) -> Layout:
    """The values bpfrun writes into .rodata before loading (common/schema.py's GLOBALS), for
    what the program uses: positional parameters, $#, ncpus, elapsed; reading an aggregate sums
    its per-CPU elements, for which it needs ncpus."""
    names: set[str] = {schema.TARGET_PID}  # any bundle may be run with bpfrun -p
    as_strings: set[ast.Node] = set()  # the $N inside str($N + k): read as a string only
    for node in ast.walk(program):
        if isinstance(node, ast.Call) and node.name == "str" and node.args:
            parameter = parameter_offset(node.args[0])
            if parameter is not None:
                names.add(f"{schema.STRING_ARGUMENT}{parameter[0]}")
                as_strings.update(ast.walk(node.args[0]))
        if isinstance(node, ast.Positional) and node not in as_strings:
            names.add(f"{schema.INTEGER_ARGUMENT}{node.index}")
        elif isinstance(node, ast.PositionalCount):
            names.add(schema.ARGUMENT_COUNT)
        elif isinstance(node, ast.Builtin) and node.name == "ncpus":
            names.add(schema.NCPUS)
        elif isinstance(node, ast.Builtin) and node.name == "elapsed":
            names.add(schema.START_NS)
        elif isinstance(node, ast.Builtin) and node.name == "cpid":
            names.add(schema.CHILD_PID)
        elif isinstance(node, ast.Call) and node.name == "kaddr":
            names.add(schema.KERNEL_ADDRESS + node.args[0].value.decode())
        elif isinstance(node, ast.Call) and node.name in ("pid", "tid") and node.args:  # pid(curr_ns)
            names.update((schema.PIDNS_DEV, schema.PIDNS_INO))
        elif isinstance(node, ast.Map) and _reads_aggregate(node, resolution):
            names.add(schema.NCPUS)
    names |= {_user_address(index, node) for index, plan in enumerate(programs) for node in ast.walk(plan.probe)
              if isinstance(node, ast.Call) and node.name == "uaddr"}  # fmt: skip
    names |= {f"{schema.PROBE_NAME_GLOBAL}{index}" for index, plan in enumerate(programs) if plan.target.rate_parameter
              and any(isinstance(node, ast.Builtin) and node.name == "probe" for node in ast.walk(plan.probe))}  # fmt: skip
    members = [(name, _global_layout(name)) for name in sorted(names)]
    members += [(schema.OPTION + option.name, _option_layout(option)) for option in _options(program)]
    return layout.packed(layout.RECORD, members)


def _user_address(program_index: int, call: ast.Call) -> str:
    return f"{schema.USER_ADDRESS}{program_index}_{call.args[0].value.decode()}"


def _options(program: ast.Program) -> list[OptionSpec]:
    """The program's getopt() options, each once (check.py made sure their defaults agree)."""
    options = (option_of(node) for node in ast.walk(program) if isinstance(node, ast.Call) and node.name == "getopt")
    return list({option.name: option for option in options if option is not None}.values())


def _option_layout(option: OptionSpec) -> Layout:
    if option.kind == "string":
        return Layout(layout.STRING, schema.PARAMETER_STRING_SIZE)
    return layout.I64


def _reads_aggregate(node: ast.Map, resolution: Resolution) -> bool:
    """A read of count(), sum()... in an expression: typed as the integer it gives."""
    return isinstance(resolution.maps[node.name].value, Aggregate) and isinstance(resolution.types.get(node), Int)


def _global_layout(name: str) -> Layout:
    if name.startswith(schema.PROBE_NAME_GLOBAL):
        return Layout(layout.STRING, schema.PROBE_NAME_SIZE)
    if name.startswith(schema.STRING_ARGUMENT):
        return Layout(layout.STRING, schema.PARAMETER_STRING_SIZE)
    if name.startswith(schema.INTEGER_ARGUMENT):
        return layout.I64
    return layout.U64


def _entries(keyed: bool, max_keys: int) -> int:
    return max_keys if keyed else 1


DIVISION_BY_ZERO = "Divide or modulo by 0 detected. This can lead to unexpected results. 1 is being used as the result."


def _events(
    program: ast.Program, resolution: Resolution, source: Source
) -> tuple[list[EventSpec], dict[ast.Node, int]]:
    events: list[EventSpec] = []
    event_ids: dict[ast.Node, int] = {}
    exit_id = None
    for node in ast.walk(program):
        if isinstance(node, ast.Binop) and node.op in ("/", "%") and not constant_value(node.right):
            event_ids[node] = len(events)
            events.append(_runtime_error(DIVISION_BY_ZERO, node.span, source))
            continue
        if _updates_keyed_map(node, resolution):  # a full map refuses it: bpfrun says so
            event_ids[node] = len(events)
            events.append(HelperErrorEvent("map_update_elem", *_location(node.span, source)))
            continue
        if not isinstance(node, ast.Call):
            continue
        if node.name == ASSERT_FAILED:
            event_ids[node] = len(events)
            events.append(_runtime_error(node.args[0].value.decode("utf-8", "replace"), node.span, source, "ERROR"))
            continue
        if node.name in ("warnf", "errorf"):
            event_ids[node] = len(events)
            events.append(_message(node, resolution, source))
            continue
        event = _event(node, resolution)
        if event is None:
            continue
        if isinstance(event, ExitEvent):
            if exit_id is None:
                exit_id = len(events)
                events.append(event)
            event_ids[node] = exit_id
        else:
            event_ids[node] = len(events)
            events.append(event)
    return events, event_ids


def _updates_keyed_map(node: ast.Node, resolution: Resolution) -> bool:
    """`@m[key] = value` of a map with plain values (aggregations update theirs elsewhere)."""
    if not isinstance(node, ast.Assignment) or not isinstance(node.target, ast.Map) or not node.target.keys:
        return False
    info = resolution.maps.get(node.target.name)
    return info is not None and not isinstance(info.value, Aggregate)


def _message(node: ast.Call, resolution: Resolution, source: Source) -> MessageEvent:
    format_node, *args = node.args
    payload = storage.layout_of_tuple([resolution.types[arg] for arg in args])
    level = "WARNING" if node.name == "warnf" else "ERROR"
    where = _location(node.span, source)[:4]  # printed without the source line
    return MessageEvent(level, format_node.value.decode("utf-8", "surrogateescape"), payload, *where)


def _runtime_error(message: str, span: Span, source: Source, level: str = "WARNING") -> RuntimeErrorEvent:
    return RuntimeErrorEvent(message[: schema.RUNTIME_ERROR_TEXT_MAX], *_location(span, source), level)


def _location(span: Span, source: Source) -> tuple[str, int, int, int, tuple[str, ...]]:
    """Where a run-time warning points: file, line, first and end column, and the excerpt.
    bpfrun takes these texts only as short single lines, so a span over several lines is marked on
    its first line, and long lines are cut."""
    if span.line != span.end_line:
        line_length = len(source.text.split("\n")[span.line - 1])
        span = Span(span.line, span.col, span.line, max(line_length + 1, span.col + 1))
    lines = tuple(text[: schema.RUNTIME_ERROR_TEXT_MAX] for text in excerpt(source, span))
    filename = source.name.replace("\n", " ")[: schema.RUNTIME_ERROR_TEXT_MAX]
    return filename, span.line, span.col, span.end_col, lines


def _event(node: ast.Call, resolution: Resolution) -> EventSpec | None:
    types = resolution.types
    if node.name == "printf":
        format_node, *args = node.args
        payload = storage.layout_of_tuple([types[arg] for arg in args])
        return PrintfEvent(format_node.value.decode("utf-8", "surrogateescape"), payload)
    if node.name in ("system", "cat"):
        format_node, *args = node.args
        event = SystemEvent if node.name == "system" else CatEvent
        return event(
            format_node.value.decode("utf-8", "surrogateescape"), storage.layout_of_tuple([types[a] for a in args])
        )
    if node.name == "time":
        text = node.args[0].value.decode("utf-8", "surrogateescape") if node.args else DEFAULT_TIME_FORMAT
        return TimeEvent(text)
    if node.name == "join":
        separator = node.args[1].value.decode("utf-8", "surrogateescape") if len(node.args) == 2 else " "
        return JoinEvent(separator, schema.JOIN_MAX_ARGS, STRING_READ_SIZE)
    if node.name == "exit":
        return ExitEvent()
    if node.name in ("clear", "zero"):
        event = ClearEvent if node.name == "clear" else ZeroEvent
        return event(node.args[0].name)
    if node.name == "print":
        target = node.args[0]
        if isinstance(target, ast.Map) and not target.keys and target.name in resolution.maps:
            top, div = (constant_value(arg) or 0 for arg in [*node.args[1:], None, None][:2])
            return PrintMapEvent(target.name, top, div)
        value = types[target]
        if isinstance(value, Aggregate):
            value = Int(64, True)
        return PrintValueEvent(storage.layout_of(value))
    return None
