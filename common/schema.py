"""What a compiled program needs at run time besides its bytecode: the bundle's metadata.

The compiler builds one `Resources`; the loader gets it back from the bundle and needs nothing else
(together with the ELF object) to attach, run and print. Conventions the ELF follows:

- every probe is one BPF program, the ELF function named `ProbeSpec.program`;
- every map is a BTF-defined map in `.maps` named `MapSpec.elf_name`, of kernel type
  `MapSpec.kernel_type`, whose key is `kernel_key(map)` and whose value (per CPU for the per-CPU
  types) is `element(map)`, both padded to `key_size(map)` and `element_size(map)` bytes;
- values only known when bpfrun starts live in the ELF's `.rodata` section, laid out as
  `Resources.globals` (a record); bpfrun writes them before loading (see GLOBALS below);
- asynchronous events go through one BPF ring buffer, `Resources.event_map`. A record is a u64
  event id (an index into `Resources.events`) followed, at offset EVENT_HEADER, by the payload
  the event's kind defines. Records the programs fail to reserve are counted per CPU in
  `Resources.lost_map` (a per-CPU array of one u64).

Aggregating maps (`MapSpec.aggregate`) keep one element per CPU, which the loader reduces:

    count           u64 count                       summed
    sum             (total, count)                  both summed; set when count > 0
    min, max        (value, set)                    min/max over the CPUs where set != 0
    avg, stats      (total, count)                  both summed; average = total / count
    hist, lhist     u64 count per bucket            summed; the bucket index is the last
                                                    member of the kernel key (see kernel_key)

`to_dict`/`from_dict` turn these into plain msgpack-able data and back. `from_dict` is strict: an
unknown or missing field or a value of the wrong type raises `SchemaError`.
"""

from __future__ import annotations

import functools
import sys
import types

from common import layout
from common.layout import U32, U64, Layout
from common.record import MISSING, fields, is_record, record

# Probe providers the bundle may name (canonical names; aliases are resolved by the compiler; each
# has its bpftc half in bpftc/probes.py and its bpfrun half in bpfrun/attach.py).
BEGIN = "begin"
END = "end"
KPROBE = "kprobe"
KRETPROBE = "kretprobe"
TRACEPOINT = "tracepoint"
RAWTRACEPOINT = "rawtracepoint"
UPROBE = "uprobe"
UNSCOPED_PROVIDERS = ("begin", "end", "self", "interval")  # the probes -p does not scope
URETPROBE = "uretprobe"
USDT = "usdt"  # a static probe in a binary's .note.stapsdt, attached as a uprobe at each of its sites
FENTRY = "fentry"  # a BPF trampoline at a kernel function's entry (fentry:[MODULE:]FUNCTION)
FEXIT = "fexit"  # ... and at its return
PROFILE = "profile"
INTERVAL = "interval"
SOFTWARE = "software"
HARDWARE = "hardware"
SIGNAL = "self"  # self:signal:SIGUSR1: run when bpfrun receives the signal

# The perf events software: and hardware: probes may name (canonical names, as bpftrace lists
# them), with their perf_event_attr.config (include/uapi/linux/perf_event.h).
SOFTWARE_EVENTS = {
    "cpu-clock": 0, "task-clock": 1, "page-faults": 2, "context-switches": 3, "cpu-migrations": 4,
    "minor-faults": 5, "major-faults": 6, "alignment-faults": 7, "emulation-faults": 8, "dummy": 9,
    "bpf-output": 10,
}  # fmt: skip
HARDWARE_EVENTS = {
    "cpu-cycles": 0, "instructions": 1, "cache-references": 2, "cache-misses": 3, "branch-instructions": 4,
    "branch-misses": 5, "bus-cycles": 6, "frontend-stalls": 7, "backend-stalls": 8, "ref-cycles": 9,
}  # fmt: skip

# Other names bpftrace accepts (and lists) for some of them.
EVENT_ALIASES = {"cpu": "cpu-clock", "cs": "context-switches", "faults": "page-faults"}
EVENT_ALIASES |= {"branches": "branch-instructions", "cycles": "cpu-cycles"}

# What the names in attach points are made of (regular expressions, matched whole). They become
# tracefs paths and symbol lookups: bpfrun refuses anything else, and bpftc reports it first.
TRACEPOINT_NAME = r"[A-Za-z0-9_]+"  # a tracepoint's category or name, a raw tracepoint
TRACEPOINT_PATTERN = r"[A-Za-z0-9_*]+"  # the same with wildcards, which bpfrun expands
FUNCTION_NAME = r"[A-Za-z0-9_.]+"  # a kernel or user-space function
# Where a uprobe or kprobe goes: a function (wildcards `*` expanded by bpfrun on the host), a
# function and an offset in bytes (`func+8`), or, for a uprobe, an address in the binary (`0x4a3b0`).
PROBE_SYMBOL = r"[A-Za-z0-9_.*]+(\+[0-9]+)?|0x[0-9a-fA-F]+"

# Kernel map types.
HASH = "hash"
PERCPU_HASH = "percpu_hash"
PERCPU_ARRAY = "percpu_array"
LRU_HASH = "lru_hash"  # `let @m = lruhash(N)`: the least recently used element makes room
LRU_PERCPU_HASH = "lru_percpu_hash"
KERNEL_MAP_TYPES = (HASH, PERCPU_HASH, PERCPU_ARRAY, LRU_HASH, LRU_PERCPU_HASH)
PLAIN_MAP_TYPES = (HASH, LRU_HASH)
MISSING_PROBES = ("error", "warn", "ignore")  # config missing_probes: refuse, skip saying so, skip  # what maps of plain values may be

AGGREGATES = ("count", "sum", "min", "max", "avg", "stats", "hist", "lhist")
PLAIN = ""  # a map whose values are assigned, not aggregated

EVENT_HEADER = 8  # bytes of the event id before each record's payload


class SchemaError(ValueError):
    """Metadata that does not match this schema."""


@record(frozen=True, slots=True)
class ProbeSpec:
    provider: str  # one of PROVIDERS
    target: tuple[str, ...]  # the attach point's parts after the provider: ('syscalls', 'sys_enter_read')
    program: str  # ELF function of this probe
    attach_point: str  # bpftrace's name for it: 'tracepoint:syscalls:sys_enter_read'
    period: int = 0  # interval, profile: nanoseconds between runs; software, hardware: events between runs
    frequency: int = 0  # profile:hz:N: runs per second (instead of a period)
    # interval:UNIT:$N, profile:UNIT:$N: the count is positional parameter $N, which bpfrun applies
    # when it starts: period and frequency are then those of a count of 1 (see bpfrun/parameters.py).
    rate_parameter: int = 0
    rate_unit: str = ""  # s, ms, us or hz


MAX_MAP_ENTRIES = 1 << 24  # the largest max_entries bpfrun accepts (what max_map_keys may ask for)
# USDT arguments: bpfrun writes where each site has them (a register, memory at a register plus an
# offset, or a constant) into the map Resources.usdt_spec_map, keyed by the site's attach cookie;
# the programs read them from there. A spec: u64 argument count, then USDT_MAX_ARGS entries of
# 16 bytes: u8 kind (USDT_CONSTANT, USDT_REGISTER, USDT_MEMORY), i8 size in bytes (negative:
# signed), u16 the register's offset in struct pt_regs, u32 zero, i64 the constant or the offset.
USDT_MAX_ARGS = 12
USDT_SPEC_SIZE = 8 + 16 * USDT_MAX_ARGS
USDT_CONSTANT, USDT_REGISTER, USDT_MEMORY = 0, 1, 2
USDT_SPEC_ENTRIES = 1024  # probe sites a bundle may attach
MAX_SOURCE_BYTES = 1 << 20
STACK_MAP_ENTRIES = 16384  # distinct stacks a run keeps (as bpftrace); later ones are not taken


@record(frozen=True, slots=True)
class MapSpec:
    name: str  # as in the script: '@times', '@'
    elf_name: str  # BTF variable in .maps
    kernel_type: str  # one of KERNEL_MAP_TYPES
    key: Layout | None  # the script's key (a tuple for several); None for a map without keys
    value: Layout  # plain maps: the value; aggregates: the integer type of what they aggregate
    max_entries: int
    aggregate: str = PLAIN  # PLAIN or one of AGGREGATES
    params: tuple[int, ...] = ()  # hist: (k,); lhist: (min, max, step)


# Events: one class per kind, each with only its own fields. `KIND` names it in the bundle.


@record(frozen=True, slots=True)
class PrintfEvent:
    KIND = "printf"
    format: str  # escapes already resolved
    args: Layout  # a tuple: the payload


@record(frozen=True, slots=True)
class ExitEvent:
    """exit(code): the payload is the code, an i64."""

    KIND = "exit"


@record(frozen=True, slots=True)
class PrintMapEvent:
    """print(@map, top, div): no payload."""

    KIND = "print_map"
    map: str
    top: int = 0
    div: int = 0


@record(frozen=True, slots=True)
class PrintValueEvent:
    """print(value): the payload is the value."""

    KIND = "print_value"
    value: Layout


@record(frozen=True, slots=True)
class ClearEvent:
    """clear(@map): no payload."""

    KIND = "clear"
    map: str


@record(frozen=True, slots=True)
class ZeroEvent:
    """zero(@map): no payload."""

    KIND = "zero"
    map: str


@record(frozen=True, slots=True)
class TimeEvent:
    """time(format): the wall-clock time when bpfrun handles it, by strftime(format). No payload."""

    KIND = "time"
    format: str


@record(frozen=True, slots=True)
class SystemEvent:
    """system(format, ...): run the printf-formatted command and print what it prints. Unsafe."""

    KIND = "system"
    format: str
    args: Layout  # a tuple: the payload, as printf's


@record(frozen=True, slots=True)
class CatEvent:
    """cat(format, ...): print the file the printf-formatted path names."""

    KIND = "cat"
    format: str
    args: Layout


@record(frozen=True, slots=True)
class JoinEvent:
    """join(array[, separator]): the strings an array of pointers points to, up to its first NULL,
    printed on one line with the separator between them. The payload: a u64 count, then `count`
    strings of `size` bytes (at most JOIN_MAX_ARGS), each NUL-terminated."""

    KIND = "join"
    separator: str
    count: int
    size: int


JOIN_MAX_ARGS = 16
JOIN_MAX_SIZE = 1024


@record(frozen=True, slots=True)
class MessageEvent:
    """warnf(format, ...) and errorf(format, ...): a printf-formatted message on stderr, after the
    source location, `stdin:1:9-31: WARNING: message` (ERROR for errorf); JSON gets the file, line
    and column. The payload: the arguments, as printf's."""

    KIND = "message"
    level: str  # "WARNING" (warnf) or "ERROR" (errorf)
    format: str
    args: Layout
    filename: str
    line: int
    column: int
    end_column: int


@record(frozen=True, slots=True)
class HelperErrorEvent:
    """A BPF helper call that failed (a map update when the map is full), located in the source
    like a RuntimeErrorEvent. The payload: the helper's return code, an i64 (a negative errno)."""

    KIND = "helper_error"
    helper: str  # the helper's name, as bpftrace prints it: map_update_elem
    filename: str
    line: int
    column: int
    end_column: int
    excerpt: tuple[str, ...]


HELPER_ERROR_HELPERS = ("map_update_elem",)
RUNTIME_ERROR_TEXT_MAX = 4096  # the longest message, file name or excerpt line of a RuntimeErrorEvent


@record(frozen=True, slots=True)
class RuntimeErrorEvent:
    """A problem a program met while running (a division by zero): no payload. The location is
    the source's, for the message bpfrun prints: `stdin:1:31-38: WARNING: message`, the source
    line and a marker under the span (`excerpt`); JSON gets the file, line and column."""

    KIND = "runtime_error"
    message: str
    filename: str
    line: int
    column: int
    end_column: int
    excerpt: tuple[str, ...]  # the source line and its `~~~` marker
    level: str = "WARNING"  # or "ERROR": a failed assert()


EventSpec = (
    PrintfEvent
    | ExitEvent
    | PrintMapEvent
    | PrintValueEvent
    | ClearEvent
    | ZeroEvent
    | TimeEvent
    | JoinEvent
    | SystemEvent
    | CatEvent
    | RuntimeErrorEvent
    | MessageEvent
    | HelperErrorEvent
)
EVENT_CLASSES = {cls.KIND: cls for cls in EventSpec.__args__}
FORMATTED_EVENTS = (PrintfEvent, SystemEvent, CatEvent, MessageEvent)  # a printf format and its arguments


# The fields `Resources.globals` may have, by name, and what bpfrun writes there:
NCPUS = "ncpus"  # u64: the number of possible CPUs
START_NS = "start_ns"  # u64: CLOCK_MONOTONIC when bpfrun started (the `elapsed` builtin)
ARGUMENT_COUNT = "argc"  # u64: how many positional parameters were given ($#)
TARGET_PID = "target_pid"  # u64: bpfrun -p PID; 0 for every process. Probes but begin, end,
#                            self and interval return at once in the other processes.
PIDNS_DEV = "pidns_dev"  # u64: st_dev of bpfrun's /proc/self/ns/pid (pid(curr_ns), tid(curr_ns))
PIDNS_INO = "pidns_ino"  # u64: its st_ino
CHILD_PID = "cpid"  # u64: the pid of bpfrun -c's command (the cpid builtin); 0 without -c
KERNEL_ADDRESS = "kaddr_"  # "kaddr_NAME": u64: kernel symbol NAME's address on the host (kaddr("NAME"))
# "uaddr_N_NAME": i64: where symbol NAME is in the binary of probe N (a uprobe: Resources.probes[N]),
# relative to the probe's own address; the program adds the address the probe fired at
# (bpf_get_func_ip), which gives NAME's address in the process, however it was loaded (PIE, ASLR).
USER_ADDRESS = "uaddr_"
# "probe_N": string[PROBE_NAME_SIZE]: the name of probe N (Resources.probes[N]) whose rate is a
# parameter (interval:ms:$1), as bpfrun attaches it (interval:ms:20): the `probe` builtin there.
PROBE_NAME_GLOBAL = "probe_"
INTEGER_ARGUMENT = "arg"  # "arg1": i64: positional parameter $1 as an integer (0 when not given)
STRING_ARGUMENT = "str"  # "str1": string: positional parameter $1 as a string ("" when not given)
OPTION = "opt_"  # "opt_NAME": getopt("NAME"): i64 (integers, bools) or string, from --NAME=VALUE
#                   after `--` on bpfrun's command line, else the OptionSpec's default
PARAMETER_STRING_SIZE = 128  # bytes of a string parameter or option, NUL included; longer ones are cut
PROBE_NAME_SIZE = 128  # bytes of a name in probe_names_map, NUL included
# In probe_names_map, an expanded function probe's cookie with this bit set is the key of its
# function's name (the `func` builtin of a wildcard uprobe or kprobe).
FUNCTION_NAME_KEY = 1 << 63


OPTION_KINDS = ("int", "string", "bool")


@record(frozen=True, slots=True)
class OptionSpec:
    """A named program option, getopt("NAME", default): given as --NAME=VALUE after `--`."""

    name: str
    kind: str  # one of OPTION_KINDS
    default: str  # as it would be written on the command line ("10", "hello", "false")


# The BPF helpers bpftc's code may call (include/uapi/linux/bpf.h numbers): maps, the ring buffer,
# time, the current task, reading memory, stacks, attach cookies, map iteration. bpfrun refuses an
# object that calls any other, or one its bundle's requirements do not list.
BPF_HELPERS = {
    1: "map_lookup_elem", 2: "map_update_elem", 3: "map_delete_elem", 5: "ktime_get_ns",
    7: "get_prandom_u32", 8: "get_smp_processor_id", 14: "get_current_pid_tgid", 15: "get_current_uid_gid",
    16: "get_current_comm", 27: "get_stackid", 35: "get_current_task", 42: "get_numa_node_id",
    80: "get_current_cgroup_id", 112: "probe_read_user", 113: "probe_read_kernel", 114: "probe_read_user_str",
    115: "probe_read_kernel_str", 118: "jiffies64", 120: "get_ns_current_pid_tgid", 125: "ktime_get_boot_ns",
    131: "ringbuf_reserve", 132: "ringbuf_submit", 164: "for_each_map_elem", 174: "get_attach_cookie",
    195: "map_lookup_percpu_elem", 208: "ktime_get_tai_ns", 173: "get_func_ip", 147: "d_path", 181: "loop",
}  # fmt: skip


@record(frozen=True, slots=True)
class Requirements:
    """What a bundle needs of a host, listed for `bpfrun inspect` and checked by `bpfrun --check`
    (and before load)."""

    arch: str  # `uname -m` of the hosts the bytecode was built for ('x86_64')
    # The kernel struct fields the programs read through CO-RE relocations, each as
    # "struct NAME.FIELD" (or "union ..."): bpfrun checks its host's BTF has them all before load.
    kernel_fields: tuple[str, ...] = ()
    # The kernel structs the programs copy whole (`@x = *curtask->mm`), each as "struct NAME DIGEST"
    # (common/btf.py layout_digest): a copy is not relocated, so bpfrun checks its host's BTF lays
    # each out the same.
    kernel_layouts: tuple[str, ...] = ()
    probe_kinds: tuple[str, ...] = ()  # the providers of its probes, sorted: ('interval', 'tracepoint')
    tracepoints: tuple[str, ...] = ()  # "category:event" of its tracepoint probes (wildcards as written)
    helpers: tuple[str, ...] = ()  # the BPF helpers its code calls (names of BPF_HELPERS), sorted


@record(frozen=True, slots=True)
class Resources:
    source_name: str  # script file name, or 'stdin'
    probes: tuple[ProbeSpec, ...]
    maps: tuple[MapSpec, ...]
    events: tuple[EventSpec, ...]  # the event id of a record is its index here
    event_map: str  # ring buffer's ELF name; '' when the program sends no events
    lost_map: str  # per-CPU u64 counter of records that could not be reserved; '' without events
    requirements: Requirements
    globals: Layout | None = None  # a record of the fields named above; None when not needed
    print_maps_on_exit: bool = True
    unsafe: bool = False  # uses system() (compiled with --unsafe; bpfrun needs --unsafe too)
    ring_buffer_pages: int = 0  # config perf_rb_pages: the event ring buffer's size; 0: bpfrun decides
    missing_probes: str = "error"  # config missing_probes: what bpfrun does with an attach point its host lacks
    # A hash map from a tracepoint's id (the common_type its records start with) to its name, for
    # the `probe` builtin of a wildcard tracepoint probe: bpfrun fills it as it expands them.
    probe_names_map: str = ""
    options: tuple[OptionSpec, ...] = ()  # each has its global, OPTION + name
    # A stack-trace map (key u32 stack id, value STACK_MAP_DEPTH u64 addresses) that stack
    # values (layout.STACK) refer to; '' when the program takes no stacks.
    stack_map: str = ""
    usdt_spec_map: str = ""  # a hash of attach cookie → USDT argument spec (see USDT_SPEC_SIZE)
    source: str = ""  # the script, as compiled (at most MAX_SOURCE_BYTES): for `bpfrun inspect`
    compiler: str = ""  # "bpftc VERSION"


# Layouts the loader and the compiler derive from a MapSpec, so that neither spells them twice.

_PAIRS = {
    "sum": ("total", "count"),
    "min": ("value", "set"),
    "max": ("value", "set"),
    "avg": ("total", "count"),
    "stats": ("total", "count"),
}


def is_per_cpu(spec: MapSpec) -> bool:
    return spec.kernel_type in (PERCPU_HASH, PERCPU_ARRAY, LRU_PERCPU_HASH)


def is_histogram(spec: MapSpec) -> bool:
    return spec.aggregate in ("hist", "lhist")


def element(spec: MapSpec) -> Layout:
    """One CPU's element of the kernel map (the whole value for a plain map)."""
    if spec.aggregate == PLAIN:
        return spec.value
    if spec.aggregate in ("count", "hist", "lhist"):
        return U64
    first, second = _PAIRS[spec.aggregate]
    return layout.packed(layout.RECORD, [(first, spec.value), (second, U64)])


def kernel_key(spec: MapSpec) -> Layout:
    """The kernel map's key.

    A per-CPU array is indexed by a u32: always 0 for a map without keys, the bucket for a
    histogram without keys. A hash map without script keys uses a u64 that is always 0 (a hash
    key needs at least one byte). A histogram in a hash map appends its bucket (u64) to the key.
    """
    if spec.kernel_type == PERCPU_ARRAY:
        return U32
    members = [("", spec.key)] if spec.key is not None else []
    if is_histogram(spec):
        members.append(("", U64))
    if not members:
        return U64
    return layout.packed(layout.TUPLE, members)


def key_size(spec: MapSpec) -> int:
    """The kernel map's key_size: the key rounded up to 8 bytes (generated code moves whole u64s;
    the padding is zero), except an array's, which the kernel wants to be exactly a u32."""
    if spec.kernel_type == PERCPU_ARRAY:
        return U32.size
    return layout.aligned(kernel_key(spec).size, layout.SLOT)


def element_size(spec: MapSpec) -> int:
    """The kernel map's value_size: one element rounded up to 8 bytes."""
    return layout.aligned(element(spec).size, layout.SLOT)


def histogram_buckets(spec: MapSpec) -> int:
    """How many buckets a histogram has: hist(k) holds (65 - k) * 2^k + 1 (bucket 0: negative
    values); lhist(min, max, step) one per step, plus one below min and one at or above max."""
    if spec.aggregate == "hist":
        (bits,) = spec.params
        return (65 - bits) * (1 << bits) + 1
    low, high, step = spec.params
    return (high - low) // step + 2


# Serialization


def to_dict(value: object) -> object:
    """A schema record (or tuple of them) as plain dicts, lists, strings and ints; an event
    also gets its "kind"."""
    if is_record(value):
        data = {f.name: to_dict(getattr(value, f.name)) for f in fields(value)}
        kind = getattr(type(value), "KIND", None)
        return {"kind": kind, **data} if kind is not None else data
    if isinstance(value, tuple):
        return [to_dict(item) for item in value]
    return value


@functools.cache
def _type_hints(cls: type) -> dict[str, object]:
    """A schema class's field types, evaluated once per class (typing.get_type_hints would do the
    same, compiling every annotation string again at each call; importing typing costs bpfrun's
    start 5 ms)."""
    hints = {}
    for klass in reversed(cls.__mro__):
        names = vars(sys.modules[klass.__module__])
        for name, annotation in klass.__dict__.get("__annotations__", {}).items():
            hints[name] = eval(annotation, names) if isinstance(annotation, str) else annotation
    return hints


def from_dict(cls: type, data: object, where: str = "resources"):
    """Rebuild `cls` from `to_dict` output, checking every field's presence and type."""
    if not isinstance(data, dict):
        raise SchemaError(f"{where}: expected a map, found {type(data).__name__}")
    kind = getattr(cls, "KIND", None)
    if kind is not None:
        data = dict(data)
        if data.pop("kind", None) != kind:
            raise SchemaError(f"{where}: not a {kind} event")
    hints = _type_hints(cls)
    by_name = {item.name: item for item in fields(cls)}
    unknown = sorted(set(data) - set(by_name), key=str)
    if unknown:
        raise SchemaError(f"{where}: unknown field {unknown[0]!r}")
    values = {}
    for name, item in by_name.items():
        if name in data:
            values[name] = _convert(hints[name], data[name], f"{where}.{name}")
        elif item.default is MISSING and item.default_factory is MISSING:
            raise SchemaError(f"{where}: missing field {name!r}")
    return cls(**values)


def _convert(hint: object, data: object, where: str) -> object:
    if isinstance(hint, types.GenericAlias) and hint.__origin__ is tuple:
        item_hint = hint.__args__[0]
        if not isinstance(data, list):
            raise SchemaError(f"{where}: expected a list, found {type(data).__name__}")
        return tuple(_convert(item_hint, item, f"{where}[{i}]") for i, item in enumerate(data))
    if isinstance(hint, types.UnionType):
        options = hint.__args__
        if type(None) in options:
            if data is None:
                return None
            (hint,) = [option for option in options if option is not type(None)]
            return _convert(hint, data, where)
        if not isinstance(data, dict) or not isinstance(data.get("kind"), str) or data["kind"] not in EVENT_CLASSES:
            raise SchemaError(f"{where}: unknown event kind")
        return from_dict(EVENT_CLASSES[data["kind"]], data, where)
    if isinstance(hint, type) and is_record(hint):
        return from_dict(hint, data, where)
    if hint is int and not (isinstance(data, int) and not isinstance(data, bool)):
        raise SchemaError(f"{where}: expected an integer, found {type(data).__name__}")
    if hint in (str, bool) and not isinstance(data, hint):
        raise SchemaError(f"{where}: expected {hint.__name__}, found {type(data).__name__}")
    if hint not in (int, str, bool):
        raise AssertionError(f"schema field type {hint!r} has no converter")
    return data
