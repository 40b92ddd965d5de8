"""Facts about builtin variables and functions: their types, arity and where they may be used.

Behaviour (type inference, checks, code generation) lives in the passes; this module is data.
"""

from __future__ import annotations

from dataclasses import dataclass

from common.schema import KPROBE, KRETPROBE
from common.types import UINT32, UINT64, Type, string_type

COMM_SIZE = 16  # TASK_COMM_LEN


@dataclass(frozen=True, slots=True)
class BuiltinVariable:
    type: Type
    providers: tuple[str, ...] = ()  # probe providers it may be used in; () means any
    context_error: str = ""  # message when used elsewhere


_ARGS_ERROR = "The {name} builtin can only be used with 'kprobes', 'uprobes' and 'usdt' probes"
_RETVAL_ERROR = "The retval builtin can only be used with 'kretprobe' and 'uretprobe' and 'fentry' probes"

BUILTIN_VARIABLES: dict[str, BuiltinVariable] = {
    "pid": BuiltinVariable(UINT32),
    "tid": BuiltinVariable(UINT32),
    "uid": BuiltinVariable(UINT64),
    "gid": BuiltinVariable(UINT64),
    "nsecs": BuiltinVariable(UINT64),
    "comm": BuiltinVariable(string_type(COMM_SIZE)),
    "retval": BuiltinVariable(UINT64, (KRETPROBE,), _RETVAL_ERROR),
    **{f"arg{index}": BuiltinVariable(UINT64, (KPROBE,), _ARGS_ERROR.format(name=f"arg{index}")) for index in range(6)},
}


@dataclass(frozen=True, slots=True)
class Function:
    min_args: int
    max_args: int
    map_value: bool = False  # an aggregation: must be assigned directly to a map (count, hist)


FUNCTIONS: dict[str, Function] = {
    "count": Function(0, 0, map_value=True),
    "hist": Function(1, 2, map_value=True),
    "delete": Function(1, 1),
    "exit": Function(0, 1),
    "printf": Function(1, 64),
}

# The 2017 spellings of the original README, rewritten by passes/desugar.py.
LEGACY_FUNCTIONS = {"quantize": "hist"}


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
