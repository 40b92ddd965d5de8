"""Facts about builtin variables and functions: their types, arity and where they may be used.

Behaviour (type inference, checks, code generation) lives in the passes; this module is data.
"""

from __future__ import annotations

from bpftc.types import (
    BOOL,
    INT8,
    INT64,
    UINT8,
    UINT32,
    UINT64,
    Array,
    Formatted,
    Int,
    Lookup,
    Pointer,
    Stack,
    String,
    Struct,
    Symbol,
    Type,
)  # fmt: skip
from common.layout import MAX_STACK_DEPTH
from common.record import record

COMM_SIZE = 16  # TASK_COMM_LEN
STRING_READ_SIZE = 1024  # bytes of str(pointer), NUL included: bpftrace's default max_strlen
MAX_ARGS = 6  # arg0..arg5: the registers that carry call arguments on x86_64


@record(frozen=True, slots=True)
class BuiltinVariable:
    type: Type
    context: str = ""  # the provider context it needs ('args', 'retval'), see bpftc/probes.py


# reg("NAME"): the registers of struct pt_regs (x86_64), by bpftrace's names, at their offsets.
REGISTERS = {
    "r15": 0, "r14": 8, "r13": 16, "r12": 24, "bp": 32, "bx": 40, "r11": 48, "r10": 56, "r9": 64, "r8": 72,
    "ax": 80, "cx": 88, "dx": 96, "si": 104, "di": 112, "orig_ax": 120, "ip": 128, "cs": 136, "flags": 144,
    "sp": 152, "ss": 160,
}  # fmt: skip
REGISTER_PROVIDERS = ("kprobe", "kretprobe", "uprobe", "uretprobe", "usdt", "profile", "software", "hardware")
# usermode: read from the registers where the probe has them; begin and end run in bpfrun's own
# process on its behalf, user mode as bpftrace's (uprobes on itself) report; other probes fire
# in the kernel.
USERMODE_FROM_REGISTERS = (*REGISTER_PROVIDERS, "interval")
USERMODE_ALWAYS = ("begin", "end")
FUNC_PROVIDERS = ("kprobe", "kretprobe", "uprobe", "uretprobe", "fentry", "fexit", "usdt")
PROBE_TYPE_SIZE = 16  # bytes of probetype: the longest provider name, "rawtracepoint", and a NUL
BUILTIN_VARIABLES: dict[str, BuiltinVariable] = {
    "pid": BuiltinVariable(UINT32),
    "tid": BuiltinVariable(UINT32),
    "uid": BuiltinVariable(UINT64),
    "gid": BuiltinVariable(UINT64),
    "nsecs": BuiltinVariable(UINT64),
    "elapsed": BuiltinVariable(UINT64),
    "cpu": BuiltinVariable(UINT64),
    "ncpus": BuiltinVariable(UINT64),
    "numaid": BuiltinVariable(UINT64),
    "jiffies": BuiltinVariable(UINT64),
    "rand": BuiltinVariable(UINT64),
    "cgroup": BuiltinVariable(UINT64),
    "usermode": BuiltinVariable(UINT8),  # 1 when the probe fired in user mode
    "cpid": BuiltinVariable(UINT64),  # bpfrun -c's command
    "comm": BuiltinVariable(String(COMM_SIZE)),
    # The probe's name, a string literal in each program: its type is set by passes/resolve.py.
    "probe": BuiltinVariable(String(1)),
    "username": BuiltinVariable(Lookup("uid")),  # uid, named by bpfrun
    "probetype": BuiltinVariable(String(PROBE_TYPE_SIZE)),  # the provider's name; "special" for begin/end
    "curtask": BuiltinVariable(Pointer(Struct("struct", "task_struct"))),
    # kstack(perf, 8) and the like are typed by passes/resolve.py; this is the bare builtin.
    "kstack": BuiltinVariable(Stack("kstack", "bpftrace", MAX_STACK_DEPTH)),
    "ustack": BuiltinVariable(Stack("ustack", "bpftrace", MAX_STACK_DEPTH)),
    "retval": BuiltinVariable(UINT64, "retval"),
    **{f"arg{index}": BuiltinVariable(UINT64, "args") for index in range(MAX_ARGS)},
}

# Builtins that may also be called: `pid()`, `nsecs(boot)`. The argument of nsecs names a clock.
CALLABLE_BUILTINS = {
    name for name in BUILTIN_VARIABLES if name not in ("retval", "curtask") and not name.startswith("arg")
}
NSECS_CLOCKS = ("monotonic", "boot", "tai", "sw_tai")
PID_NAMESPACES = ("curr_ns", "init")
# The modes that mean the builtin itself: nsecs(monotonic) is nsecs; pid(init) is pid (bpfrun
# runs in the initial PID namespace).
DEFAULT_MODES = {("nsecs", "monotonic"), ("pid", "init"), ("tid", "init")}

ARGS_PROVIDERS_MESSAGE = (
    "The args builtin can only be used with tracepoint, rawtracepoint, fentry/fexit, and uprobe probes ({provider} used here)"
)
CONTEXT_ERRORS = {
    "args": "The {name} builtin can only be used with 'kprobes', 'uprobes' and 'usdt' probes",
    "retval": "The retval builtin can only be used with 'kretprobe' and 'uretprobe' and 'fentry' probes",
}


@record(frozen=True, slots=True)
class Function:
    min_args: int
    max_args: int
    aggregation: bool = False  # must be assigned directly to a map (count, hist...)
    map_argument: bool = False  # the first argument names a map (delete, clear, print...)
    result: Type | None = None  # a fixed result type; None: decided by passes/resolve.py
    unsafe: bool = False  # only with --unsafe (bpftc and bpfrun)


ASSERT_FAILED = "__assert_failed"  # the error a failed assert() reports: desugar.py writes its calls
FUNCTIONS: dict[str, Function] = {
    "count": Function(0, 0, aggregation=True),
    "sum": Function(1, 1, aggregation=True),
    "min": Function(1, 1, aggregation=True),
    "max": Function(1, 1, aggregation=True),
    "avg": Function(1, 1, aggregation=True),
    "stats": Function(1, 1, aggregation=True),
    "hist": Function(1, 2, aggregation=True),
    "lhist": Function(4, 4, aggregation=True),
    "delete": Function(1, 2, map_argument=True, result=BOOL),
    "has_key": Function(2, 2, map_argument=True, result=BOOL),
    "find": Function(3, 3, map_argument=True, result=BOOL),  # find(@m, key, $v): has_key, and $v = @m[key]
    "len": Function(1, 1, map_argument=True, result=INT64),
    "clear": Function(1, 1, map_argument=True),
    "zero": Function(1, 1, map_argument=True),
    "print": Function(1, 3),
    "exit": Function(0, 1),
    "printf": Function(1, 64),
    "str": Function(1, 2),
    "strlen": Function(1, 1, result=UINT64),
    "strcontains": Function(2, 2, result=BOOL),
    "strncmp": Function(3, 3, result=INT64),
    "strstr": Function(2, 2, result=INT64),
    "str_concat": Function(2, 2),
    "getopt": Function(1, 3),  # getopt(name[, default[, description]])
    "bswap": Function(1, 1),
    "strerror": Function(1, 1, result=Lookup("errno")),
    "signal_name": Function(1, 1, result=Lookup("signal")),
    "syscall_name": Function(1, 1, result=Lookup("syscall")),
    "cgroup_path": Function(1, 1, result=Lookup("cgroup")),
    "static_assert": Function(2, 2),
    "assert": Function(2, 2),  # passes/desugar.py makes it an if, an error and exit(1)
    ASSERT_FAILED: Function(1, 1),
    "time": Function(0, 1),
    "strftime": Function(2, 2),
    "system": Function(1, 64, unsafe=True),
    "cat": Function(1, 64),
    "warnf": Function(1, 64),
    "errorf": Function(1, 64),
    "ksym": Function(1, 1, result=Symbol("ksym")),
    "reg": Function(1, 1, result=UINT64),
    "join": Function(1, 2),
    "strcap": Function(1, 1, result=UINT64),
    "kaddr": Function(1, 1, result=UINT64),
    "uaddr": Function(1, 1, result=Pointer(INT8, user=True)),
    "path": Function(1, 2),  # path(struct path *[, size]): the file's path (bpf_d_path, fentry/fexit)  # a symbol's address in a uprobe's process  # resolved by bpfrun on the host (a global)  # a string's capacity, NUL included
    "default_str_length": Function(0, 0, result=UINT64),  # str()'s default capacity
    "buf": Function(1, 2),
    "macaddr": Function(1, 1, result=Formatted("macaddr")),
    "ntop": Function(1, 2, result=Formatted("inet")),
    "pton": Function(1, 1),  # an address literal's bytes: uint8[4] or uint8[16]
    "usym": Function(1, 1, result=Symbol("usym")),
}
# Questions about the argument's type, answered at compile time (the argument is not evaluated);
# is_literal() is answered from the argument itself (passes/resolve.py's constant_value).
TYPE_PREDICATES = {
    "is_str": lambda t: isinstance(t, String),
    "is_integer": lambda t: isinstance(t, Int),
    "is_unsigned_integer": lambda t: isinstance(t, Int) and not t.signed,
    "is_ptr": lambda t: isinstance(t, Pointer),
    "is_array": lambda t: isinstance(t, Array),
    "is_literal": None,
}
FUNCTIONS.update(dict.fromkeys(TYPE_PREDICATES, Function(1, 1, result=BOOL)))
# `let @m = kind(N);`: the kernel map type of each kind, for plain values or for aggregations.
MAP_DECLARATION_KINDS = {"hash": "hash", "lruhash": "lru_hash", "percpuhash": "percpu_hash", "percpulruhash": "lru_percpu_hash"}
PER_CPU_DECLARATIONS = ("percpuhash", "percpulruhash")
PATH_PROVIDERS = ("fentry", "fexit", "iter")  # where the kernel offers bpf_d_path
PRINTF_LIKE = ("printf", "system", "cat", "warnf", "errorf")  # a format string literal, then its arguments
DEFAULT_TIME_FORMAT = "%H:%M:%S\n"
STRING_FUNCTIONS = ("strlen", "strcontains", "strncmp", "strstr")  # their first arguments are strings

# The 2017 spellings of the original README, rewritten by passes/desugar.py.
LEGACY_FUNCTIONS = {"quantize": "hist"}
HIST_MAX_BITS = 5  # hist(n, k): 0 <= k <= 5, as bpftrace


def arity_message(name: str, function: Function, provided: int) -> str:
    """bpftrace's wording: 'count() requires no arguments (1 provided)'."""
    if function.max_args == 0:
        rule = "requires no arguments"
    elif provided < function.min_args:
        at_least = "at least " if function.max_args > function.min_args else ""
        rule = f"requires {at_least}{_arguments(function.min_args)}"
    else:
        rule = f"takes up to {_arguments(function.max_args)}"
    return f"{name}() {rule} ({provided} provided)"


def _arguments(count: int) -> str:
    return "one argument" if count == 1 else f"{count} arguments"


# What `config.NAME` reads when the program does not set NAME: bpftrace's defaults.
CONFIG_DEFAULTS = {"print_maps_on_exit": True, "max_map_keys": 4096, "perf_rb_pages": 64, "max_strlen": 1024}

# bpftrace's config settings (its docs/language.md, Config Variables): the type of the ones bpftc
# uses; None for the ones it knows but does not support yet. Names are case-insensitive and may
# carry a BPFTRACE_ prefix (passes/desugar.py writes them in one form).
CONFIG_SETTINGS: dict[str, type | None] = {
    "print_maps_on_exit": bool,
    "max_map_keys": int,
    "perf_rb_pages": int,
    "max_strlen": int,  # string literals and str() of memory; str($N) keeps PARAMETER_STRING_SIZE
    "missing_probes": str,  # error, warn or ignore (common/schema.py MISSING_PROBES)
    **dict.fromkeys(
        (
            "cache_user_symbols", "cpp_demangle", "lazy_symbolication", "license", "log_size", "max_bpf_progs",
            "max_cat_bytes", "max_probes", "on_stack_limit",
            "show_debug_info", "stack_mode", "str_trunc_trailer", "symbol_source", "unstable_macro",
            "unstable_map_decl", "unstable_import", "unstable_tseries", "unstable_addr",
        )
    ),
}  # fmt: skip
