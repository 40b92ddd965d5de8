"""Fuzzing the compiler with generated and mutated scripts (hypothesis).

The property, for every input: `compile_source` never raises (a traceback is a bug: a user only ever
sees diagnostics), every diagnostic points inside the source and renders, a bundle comes out exactly
when there is no error, and every bundle it produces reads back and passes bpfrun's verification.

The inputs, about 10,000 per run:

- programs from a grammar of the language bpftc handles (probes, config, macros, variables, maps,
  aggregates, control flow, printf, tuples, records, casts...), written with the types of their
  variables and maps in mind so that most of them compile all the way through LLVM; some mix types
  up on purpose, some are laid out over many lines with comments;
- mutations of real scripts (examples/*.bt, the PROG lines of tests/runtime and tests/runtime/pending)
  and of generated ones: characters and tokens deleted, duplicated, swapped or replaced, numbers
  changed, programs spliced, random characters inserted, line breaks and comments added;
- random sequences of the language's tokens, and raw random text;
- deeply nested programs, up to and past the parser's nesting limit.

The compiler runs as bpftc's command line runs it: in a thread with a large stack and a high
recursion limit; one that runs for more than COMPILE_SECONDS is a failure too.

Runs are derandomized: a failure found in CI is found again, and shrunk the same way, on any machine.
"""

from __future__ import annotations

import ctypes
import os
import random
import re
import sys
import threading
from functools import cache
from pathlib import Path

from bpftc import OPAQUE_POINTERS

os.environ.setdefault(*OPAQUE_POINTERS)  # before anything imports llvmlite (tests/conftest.py does too)

from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from bpftc.diagnostics import render  # noqa: E402
from bpftc.pipeline import compile_source  # noqa: E402
from bpftc.source import Source  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent

# Budget: about 10,000 scripts in under three minutes on two cores. Generated programs mostly reach
# code generation (LLVM), the slow stage; mutated and random text mostly stop in the parser.
GRAMMAR_EXAMPLES = 1_500
MUTATION_EXAMPLES = 3_800
TOKEN_SOUP_EXAMPLES = 2_000
RAW_TEXT_EXAMPLES = 2_700
NESTING_EXAMPLES = 100


def fuzz_settings(examples: int):
    return settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,  # reproducible in CI; no example database
        database=None,
        print_blob=True,
        phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],  # no explain phase: slow here
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.filter_too_much,
            HealthCheck.large_base_example,
        ],
    )


# The property


def check_compiles_cleanly(text: str) -> None:
    """compile_source on `text`: only diagnostics, located in the source; any bundle verifies."""
    source = Source("stdin", text)
    check_result(source, compile_as_bpftc_does(source))


def check_result(source: Source, result) -> None:
    diagnostics = result.diagnostics
    for item in diagnostics.items:
        assert_span_inside(source.text, item.span, item.message)
        for context in item.context:
            assert_span_inside(source.text, context.span, f"{item.message} / context: {context.message}")
    render(source, diagnostics)  # what bpftc prints must not raise either
    if diagnostics.has_errors:
        assert result.bundle is None, "a bundle despite errors"
        return
    assert result.bundle is not None, "no error, yet no bundle"
    verify_bundle(result.bundle)


def assert_span_inside(text: str, span, message: str) -> None:
    lines = text.split("\n")
    where = f"span {span} of {message!r}"
    assert 1 <= span.line <= span.end_line <= len(lines), f"{where}: lines outside 1..{len(lines)}"
    first, last = lines[span.line - 1], lines[span.end_line - 1]
    assert 1 <= span.col <= len(first) + 1, f"{where}: column outside line {span.line} ({len(first)} chars)"
    assert 1 <= span.end_col <= len(last) + 1, f"{where}: end column outside line {span.end_line} ({len(last)} chars)"
    if span.line == span.end_line:
        assert span.col <= span.end_col, f"{where}: ends before it starts"


def verify_bundle(data: bytes) -> None:
    from bpfrun.verify import verify  # the loader's side: only when a bundle was produced
    from common import bundle

    verify(bundle.read(data).resources)


# bpftc/__main__.py runs the compiler in a thread with room for deep recursion: so do these tests.
# A compilation that does not end is a bug too: past COMPILE_SECONDS (hundreds of times what a
# script takes), the thread is interrupted with CompilerHung, which then fails the test.
_RECURSION_LIMIT = 20_000
_THREAD_STACK_BYTES = 512 << 20
COMPILE_SECONDS = 10


class CompilerHung(Exception):
    pass


def compile_as_bpftc_does(source: Source):
    outcome: list = []

    def run() -> None:
        try:
            outcome.append(compile_source(source))
        except BaseException as error:  # noqa: BLE001 (re-raised below, with its traceback)
            outcome.append(error)

    old_limit, old_stack = sys.getrecursionlimit(), threading.stack_size()
    sys.setrecursionlimit(max(old_limit, _RECURSION_LIMIT))
    threading.stack_size(_THREAD_STACK_BYTES)
    try:
        worker = threading.Thread(target=run, name="bpftc", daemon=True)
        worker.start()
    finally:
        threading.stack_size(old_stack)
    try:
        worker.join(COMPILE_SECONDS)
        if worker.is_alive():  # raise CompilerHung in the thread, wherever its Python code is
            ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(worker.ident), ctypes.py_object(CompilerHung))
            worker.join(5)  # stuck in C code (LLVM), it would stay stuck: leave it, it is a daemon
    finally:
        sys.setrecursionlimit(old_limit)
    if not outcome or isinstance(outcome[0], CompilerHung):
        where = outcome[0] if outcome else None  # its traceback shows where the compiler was
        raise CompilerHung(f"compile_source did not finish within {COMPILE_SECONDS} s") from where
    if isinstance(outcome[0], BaseException):
        raise outcome[0]
    return outcome[0]


# (1) Programs from the grammar, type-aware so that most compile all the way

INT_TYPES = ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64")
INT_BUILTINS = ("pid", "tid", "uid", "gid", "nsecs", "elapsed", "cpu", "ncpus", "numaid", "jiffies", "rand", "cgroup")
INT_CALLS = ("pid()", "tid()", "uid()", "gid()", "nsecs()", "cpu()", "ncpus()", "rand()", "cgroup()", "elapsed()",
             "nsecs(boot)", "nsecs(tai)", "pid(init)")  # fmt: skip
# Macros: (definition with {name} and {previous} to fill in, kind, number of arguments). Kinds: 'int'
# expands to an integer; 'stmt' is a statement on an integer variable and map; 'call' a statement on
# two integers.
MACROS = (
    ("macro {name}(x) {{ x + 1 }}", "int", 1),
    ("macro {name}(x, y) {{ x * y }}", "int", 2),
    ("macro {name}() {{ 1 }}", "int", 0),
    ("macro {name}(x) {{ let $t = x; $t + $t }}", "int", 1),
    ("macro {name}(x) {{ {previous}(x) + 1 }}", "int", 1),
    ("macro {name}(x) {{ {{ x }} }}", "int", 1),
    ("macro {name}(x) {{ x ? 1 : 2 }}", "int", 1),
    ("macro {name}($a, @b) {{ $a += 1; @b += 1; }}", "stmt", 2),
    ("macro {name}($a, @b) {{ if ($a > 1) {{ @b = $a; }} }}", "stmt", 2),
    ('macro {name}(x, y) {{ printf("%d %d\\n", x, y); }}', "call", 2),
)
ARITHMETIC = ("+", "-", "*", "/", "%", "&", "|", "^", "<<", ">>")
COMPARISON = ("==", "!=", "<", "<=", ">", ">=")
LOGICAL = ("&&", "||")
COMPOUND = ("+=", "-=", "*=", "/=", "%=", "&=", "|=", "^=", "<<=", ">>=")
READABLE_AGGREGATES = ("count", "sum", "min", "max", "avg")
# Every way of writing a type the grammar takes, most of which bpftc cannot store (yet).
TYPE_SPELLINGS = INT_TYPES + (
    "bool", "string", "string[8]", "string[1]", "int8[4]", "uint64[2]", "int32[]", "struct foo", "struct foo *",
    "union u", "enum e", "uint8 *", "int16 **", "char", "char *", "void", "void *", "inet", "buffer", "kstack_t",
)  # fmt: skip
PROBES = (
    "begin",
    "BEGIN",
    "end",
    "END",
    "interval:s:1",
    "interval:ms:100",
    "interval:us:500",
    "interval:hz:99",
    "interval:1s",
    "interval:250ms",
    "i:ms:10",
    "tracepoint:syscalls:sys_enter_read",
    "tracepoint:syscalls:sys_exit_read",
    "t:syscalls:sys_enter_write",
    "kprobe:vfs_read",
    "k:do_sys_openat2",
    "kretprobe:vfs_read",
    "uprobe:/bin/sh:main",
    "uretprobe:/bin/sh:main",
    "rawtracepoint:sched_switch",
    "profile:hz:99",
    "software:cpu-clock:100000",
    "hardware:cycles:1000000",
    "self:signal:SIGUSR1",
)
# Attach points at the edges of what providers accept (offsets, odd characters, limits).
ODD_PROBES = (
    "kprobe:vfs_read+4", "kprobe:f.isra.0", "kr:f", "k:f:g", "tracepoint:syscalls:*", "tracepoint:a-b:c",
    "tracepoint:a:b.c", "interval:s:9223372036", "interval:s:9223372037", "interval:hz:1000000000", "interval:0s",
    "interval:1000ns", "interval:ms:0", "i:1d", "Begin", "kprobe:", "uprobe:/bin/sh:main+4", "uprobe:/bin/sh:0x10",
    "uprobe:/nonexistent:f", "rawtracepoint:sched-switch", "rawtracepoint:a:b", "software:cpu:0",
    "hardware:cycles:0", "self:signal:SIGKILL", "profile:hz:0",
)  # fmt: skip
CONTEXTS = {
    "kprobe": "args",
    "k": "args",
    "uprobe": "args",
    "kretprobe": "retval",
    "kr": "retval",
    "uretprobe": "retval",
}
WORDS = (
    "",
    "a",
    "x",
    "hello",
    "the quick brown fox",
    "é",
    "∑",
    "tab\\there",
    'q\\"q',
    "%%",
    "\\n",
    "\\x41\\101",
    "\\0",
    "a\\x00b",
    "z" * 300,
)
RECORD_FIELDS = ("a", "b", "c", "name", "n")

INT = ("int",)
STR = ("str",)
BOOL = ("bool",)


def tuple_type(*elements):
    return ("tuple", tuple(elements))


def record_type(fields):
    return ("record", tuple(fields))


class ProgramGenerator:
    """Writes one program. Knows the types of variables and maps as it goes, so that uses agree with
    definitions most of the time; the rest exercises the checker's errors.

    Hypothesis draws only the program's shape: its features (FEATURES), a seed for the program, one
    per probe and one per top-level statement; each writes its part with its own `random.Random`.
    Drawing every choice from hypothesis would cost 150 us a choice, more than compiling; this way
    hypothesis still shrinks a failure by dropping features, probes and statements and by
    simplifying the seeds."""

    def __init__(self) -> None:
        self.rng = random.Random(0)
        self.maps: dict[str, dict] = {}  # name → {"key": type | None, "value": type | ("agg", kind, params)}
        self.scopes: list[dict[str, tuple]] = []
        self.loop_depth = 0
        self.counter = 0
        self.context: set[str] = set()  # context builtins every attach point of the probe offers
        self.sloppy = False  # mix types up now and then: the checker must catch what codegen cannot do
        self.macros: list[tuple[str, str, int]] = []  # (name, kind, arguments)
        self.depth_cap = 3  # how deep expressions of the statement being written may nest

    # Drawing helpers

    def integer(self, low: int, high: int) -> int:
        return self.rng.randint(low, high)

    def choice(self, options):
        return self.rng.choice(tuple(options))

    def chance(self, percent: int) -> bool:
        return self.integer(1, 100) <= percent

    def fresh(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}{self.counter}"

    # Program structure

    def program(self, seed: int, features: set[str], probes: list[tuple[int, list[int]]]) -> str:
        """`features`: which of FEATURES the program has."""
        self.rng = random.Random(seed)
        self.sloppy = "sloppy" in features
        parts = []
        if "config" in features:
            settings = [self.config_setting() for _ in range(self.integer(1, 2))]
            parts.append(f"config = {{ {'; '.join(settings)} }}")
        separator, end = self.choice(("\n", " ", "\n\n")), self.choice(("", "\n"))
        if "macros" in features:
            for _ in range(self.integer(1, 3)):
                parts.append(self.macro())
        for probe_seed, statement_seeds in probes:
            parts.append(self.probe(probe_seed, statement_seeds))
        text = separator.join(parts) + end
        return reflow(self.rng, text) if "reflow" in features else text

    def probe(self, seed: int, statements: list[tuple[int, int]]) -> str:
        """`statements`: (size 0..3, seed) of each top-level statement; size bounds its nesting."""
        self.rng = random.Random(seed)
        self.depth_cap = 2
        points = [self.choice(PROBES if self.chance(97) else ODD_PROBES)]
        if self.chance(10):
            points.append(self.choice(PROBES))
        self.scopes = [{}]
        self.loop_depth = 0
        self.context = set.intersection(*({CONTEXTS.get(point.split(":")[0], "")} for point in points)) - {""}
        predicate = ""
        if self.chance(20):
            predicate = f" /{self.condition(2)}/"
        exit = self.choice(("", "", "exit();", "exit(0);", "exit(1);", "exit()"))
        body = []
        for size, statement_seed in statements:
            self.rng = random.Random(statement_seed)
            self.depth_cap = size
            body.append(self.statement(size))
        return f"{', '.join(points)}{predicate} {{ {' '.join([*body, exit])} }}"

    def config_setting(self) -> str:
        name = self.choice(
            ("print_maps_on_exit", "max_map_keys", "max_map_keys", "BPFTRACE_MAX_MAP_KEYS", "max_strlen")
        )
        if name == "print_maps_on_exit":
            return f"{name} = {self.choice(('true', 'false', '0', '1'))}"
        keys = self.choice((1, 2, 10, 4096, 1 << 24, (1 << 24) + 1, 1 << 31, 1 << 32, 2**64 - 1, 0, '"many"'))
        return f"{name} = {keys}"

    def macro(self) -> str:
        template, kind, arguments = self.choice(MACROS)
        ints = [name for name, k, _ in self.macros if k == "int" and _ == 1]
        if "{previous}" in template and not ints:
            template, kind, arguments = MACROS[0]
        name = self.fresh("mac")
        text = template.format(name=name, previous=self.choice(ints) if ints else "")
        self.macros.append((name, kind, arguments))
        return text

    def macro_call(self, depth: int) -> str | None:
        """An integer-valued call of a macro, if there is one."""
        options = [(name, arguments) for name, kind, arguments in self.macros if kind == "int"]
        if not options:
            return None
        name, arguments = self.choice(options)
        return f"{name}({', '.join(self.int_expr(depth - 1) for _ in range(arguments))})"

    def stmt_macro(self, depth: int) -> str:
        options = [(name, kind) for name, kind, _ in self.macros if kind in ("stmt", "call")]
        if not options:
            return self.stmt_printf(depth)
        name, kind = self.choice(options)
        if kind == "stmt" and self.chance(85):
            variable = self.fresh("$c")
            self.declare(variable, INT)
            map_name = self.fresh("@m")
            self.maps[map_name] = {"key": None, "value": INT}
            return f"{variable} = 0; {map_name} = 0; {name}({variable}, {map_name});"
        return f"{name}({self.int_expr(1)}, {self.int_expr(1)});"

    def statements(self, count: int, depth: int) -> str:
        return " ".join(self.statement(depth) for _ in range(count))

    def block(self, depth: int, loop: bool = False) -> str:
        self.scopes.append({})
        if loop:
            self.loop_depth += 1
        body = self.statements(self.integer(0, 3), depth - 1)
        if loop:
            self.loop_depth -= 1
            if self.chance(20):
                body += " " + self.choice(("break;", "continue;"))
        self.scopes.pop()
        return f"{{ {body} }}"

    # Statements

    def statement(self, depth: int) -> str:
        kinds = ["assign_var", "assign_map", "aggregate", "printf", "print", "increment", "compound", "let",
                 "map_call", "discard"]  # fmt: skip
        if depth > 0:
            kinds += ["if", "while", "for", "unroll", "block", "if", "for_map"]
        if self.loop_depth:
            kinds.append("jump")
        if self.loop_depth == 0:
            kinds.append("exit")
        if self.macros:
            kinds.append("macro")
        kind = self.choice(kinds)
        return getattr(self, f"stmt_{kind}")(depth)

    def stmt_assign_var(self, depth: int) -> str:
        existing = self.variables()
        if existing and self.chance(40):
            name, t = self.choice(sorted(existing.items()))
        else:
            name, t = self.fresh("$v"), self.value_type()
        value = self.rvalue(t)
        self.declare(name, t)
        return f"{name} = {value};"

    def stmt_let(self, depth: int) -> str:
        name = self.fresh("$l")
        form = self.integer(0, 4)
        if form == 4:  # no type, no value: the type comes from a later assignment, or never
            self.declare(name, INT)
            return f"let {name};" + (f" {name} = {self.int_expr(1)};" if self.chance(70) else "")
        if form == 0:
            t = self.value_type()
            value = self.rvalue(t)
            self.declare(name, t)
            return f"let {name} = {value};"
        if form == 1:
            type_name = self.choice(INT_TYPES)
            value = self.integer(0, 127) if self.chance(70) else self.int_expr(2)
            self.declare(name, INT)
            return f"let {name}: {type_name} = {value};"
        if form == 2:
            self.declare(name, INT)
            return f"let {name}: {self.choice(INT_TYPES)};"
        self.declare(name, STR)
        if self.chance(70):
            return f"let {name}: {self.choice(('string', 'string', 'string[8]', 'string[2]', 'string[100]'))} = {self.str_expr(1)};"
        spelling = self.choice(TYPE_SPELLINGS)
        return (
            f"let {name}: {spelling};"
            if self.chance(50)
            else f"let {name}: {spelling} = {self.expr(self.value_type(), 1)};"
        )

    def stmt_assign_map(self, depth: int) -> str:
        name, info = self.some_map(aggregate=False)
        return f"{self.map_access(name, info, 2)} = {self.rvalue(info['value'])};"

    def stmt_aggregate(self, depth: int) -> str:
        name, info = self.some_map(aggregate=True)
        _, kind, params = info["value"]
        target = self.map_access(name, info, 2)
        if kind == "count":
            return f"{target} = count();"
        if kind == "hist":
            return f"{target} = {self.choice(('hist', 'quantize'))}({self.int_expr(2)}{''.join(f', {p}' for p in params)});"
        if kind == "lhist":
            low, high, step = params
            return f"{target} = lhist({self.int_expr(2)}, {low}, {high}, {step});"
        return f"{target} = {kind}({self.int_expr(2)});"

    def stmt_printf(self, depth: int) -> str:
        pieces, args = [], []
        for _ in range(self.integer(0, 4)):
            pieces.append(self.choice(WORDS[:6]) + self.choice((" ", "", ": ", "|")))
            kind = self.integer(0, 5)
            if kind <= 2:
                flags = self.choice(("", "-", "0", "5", "-8", "08", "+", " ", "#"))
                length = self.choice(("", "l", "ll", "h", "hh", "z"))
                pieces.append(f"%{flags}{length}{self.choice('diuxXo')}")
                args.append(self.int_expr(2))
            elif kind == 5:  # any conversion, any argument
                flags = "".join(self.rng.sample("-+ #0", self.integer(0, 2)))
                width = self.choice(("", "1", "12", "0", "999"))
                precision = self.choice(("", "", ".", ".0", ".5", ".300"))
                length = self.choice(("", "l", "ll", "h", "hh", "j", "z", "t", "L", "q"))
                pieces.append(f"%{flags}{width}{precision}{length}{self.choice('diouxXcsp%fen')}")
                args.append(self.expr(self.value_type(), 1))
            elif kind == 3:
                pieces.append(self.choice(("%s", "%-10s", "%20s", "%.3s")))
                args.append(self.str_expr(2))
            else:
                pieces.append("%s")
                args.append(self.expr(self.choice((tuple_type(INT, STR), record_type([("a", INT)]))), 1))
        if self.chance(15):
            pieces.append("%%")
        fmt = "".join(pieces) + self.choice(("\\n", "", "\\t\\n"))
        return f'printf("{fmt}"{"".join(", " + arg for arg in args)});'

    def stmt_print(self, depth: int) -> str:
        if self.maps and self.chance(50):
            name = self.choice(sorted(self.maps))
            extra = self.choice(("", ", 5", ", 3, 2", ", 0"))
            if self.maps[name]["key"] is None or not extra:
                return f"print({name}{extra});"
            return f"print({name});"
        return f"print({self.expr(self.value_type(), 2)});"

    def stmt_increment(self, depth: int) -> str:
        prelude, target = self.int_lvalue()
        op = self.choice(("++", "--"))
        return prelude + (f"{target}{op};" if self.chance(50) else f"{op}{target};")

    def stmt_compound(self, depth: int) -> str:
        prelude, target = self.int_lvalue()
        return f"{prelude}{target} {self.choice(COMPOUND)} {self.int_expr(2)};"

    def stmt_map_call(self, depth: int) -> str:
        if not self.maps:
            return self.stmt_assign_map(depth)
        name = self.choice(sorted(self.maps))
        info = self.maps[name]
        options = ["clear", "zero"]
        agg = info["value"][0] == "agg"
        if info["key"] is not None and not (agg and info["value"][1] in ("hist", "lhist")):
            options += ["delete", "delete_old", "delete_index", "has_key"]
        which = self.choice(options)
        if which in ("clear", "zero"):
            return f"{which}({name});"
        key = self.expr(info["key"], 1)
        if which == "delete":
            return f"delete({name}, {key});"
        if which == "delete_index":
            return f"delete({name}[{key}]);"
        if which == "delete_old":
            return f"{name}[{key}] = delete();"
        return f'if (has_key({name}, {key})) {{ printf("has\\n"); }}'

    def stmt_discard(self, depth: int) -> str:
        return f"_ = {self.expr(self.value_type(), 2)};"

    def stmt_if(self, depth: int) -> str:
        condition = self.condition(2)
        text = f"if ({condition}) {self.block(depth)}" if self.chance(70) else f"if {condition} {self.block(depth)}"
        while self.chance(25):
            text += f" else if ({self.condition(2)}) {self.block(depth)}"
        if self.chance(40):
            text += f" else {self.block(depth)}"
        return text

    def stmt_while(self, depth: int) -> str:
        counter = self.fresh("$w")
        self.declare(counter, INT)
        limit = self.integer(0, 20)
        self.scopes.append({})
        self.loop_depth += 1
        body = self.statements(self.integer(0, 2), depth - 1)
        self.loop_depth -= 1
        self.scopes.pop()
        return f"{counter} = 0; while ({counter} < {limit}) {{ {counter}++; {body} }}"

    def stmt_for(self, depth: int) -> str:
        variable = self.fresh("$i")
        start = self.integer(0, 5)
        end = self.choice((str(self.integer(0, 10)), self.int_expr(1)))
        self.scopes.append({variable: INT})
        self.loop_depth += 1
        body = self.statements(self.integer(0, 3), depth - 1)
        self.loop_depth -= 1
        self.scopes.pop()
        if self.chance(80):
            return f"for ({variable} : {start}..{end}) {{ {body} }}"
        return f"for {variable} : {start}..{self.integer(0, 10)} {{ {body} }}"

    def stmt_for_map(self, depth: int) -> str:
        iterable = [(n, i) for n, i in sorted(self.maps.items()) if i["key"] is not None
                    and (i["value"][0] != "agg" or i["value"][1] in READABLE_AGGREGATES)]  # fmt: skip
        if not iterable:
            return self.stmt_for(depth)
        name, info = self.choice(iterable)
        value = INT if info["value"][0] == "agg" else info["value"]
        variable = self.fresh("$kv")
        self.scopes.append({variable: tuple_type(info["key"], value)})
        self.loop_depth += 1
        body = self.statements(self.integer(0, 3), depth - 1)
        if self.chance(60):
            body = f'printf("%s\\n", {variable}); {body}' if self.chance(20) else f"print({variable}.0); {body}"
        self.loop_depth -= 1
        self.scopes.pop()
        return f"for ({variable} : {name}) {{ {body} }}"

    def stmt_unroll(self, depth: int) -> str:
        return f"unroll({self.integer(1, 5)}) {self.block(depth)}"

    def stmt_block(self, depth: int) -> str:
        return self.block(depth)

    def stmt_jump(self, depth: int) -> str:
        return self.choice(("break;", "continue;", "return;"))

    def stmt_exit(self, depth: int) -> str:
        return self.choice(("exit();", f"exit({self.int_expr(1)});", "return;"))

    # Variables and maps

    def variables(self) -> dict[str, tuple]:
        visible: dict[str, tuple] = {}
        for scope in self.scopes:
            visible.update(scope)
        return visible

    def declare(self, name: str, t: tuple) -> None:
        for scope in self.scopes:
            if name in scope:
                return
        self.scopes[-1][name] = t

    def some_map(self, aggregate: bool) -> tuple[str, dict]:
        candidates = [(n, i) for n, i in sorted(self.maps.items()) if (i["value"][0] == "agg") == aggregate]
        if candidates and self.chance(60):
            return self.choice(candidates)
        name = self.choice(("@", "@_", "@" + "long_" * 10)) if self.chance(5) else self.fresh("@m")
        if name in self.maps:
            name = self.fresh("@m")
        key = self.choice((None, None, INT, STR, tuple_type(INT, STR), tuple_type(INT, INT)))
        if aggregate:
            kind = self.choice(("count", "sum", "min", "max", "avg", "stats", "hist", "lhist"))
            params: tuple = ()
            if kind == "hist" and self.chance(50):
                params = (self.integer(0, 5),)
            elif kind == "lhist":
                low = self.integer(0, 100)
                step = self.integer(1, 50)
                params = (low, low + step * self.integer(1, 40), step)
            value = ("agg", kind, params)
        else:
            value = self.value_type()
        info = {"key": key, "value": value}
        self.maps[name] = info
        return name, info

    def map_access(self, name: str, info: dict, depth: int) -> str:
        """`@m` or `@m[key]`; keys nest at most `depth` deep (they may read maps themselves)."""
        key = info["key"]
        if key is None:
            return name
        if key[0] == "tuple" and self.chance(70):
            return f"{name}[{', '.join(self.expr(element, depth - 1) for element in key[1])}]"
        return f"{name}[{self.expr(key, depth - 1)}]"

    def int_lvalue(self) -> tuple[str, str]:
        """(a statement to put first, an integer variable or map to assign)."""
        existing = self.existing_int_lvalue(1)
        if existing is not None:
            return "", existing
        name = self.fresh("$c")
        self.declare(name, INT)
        return f"{name} = 0; ", name

    def existing_int_lvalue(self, depth: int) -> str | None:
        ints = [name for name, t in sorted(self.variables().items()) if t in (INT, BOOL) and not name.startswith("$i")]
        maps = [(n, i) for n, i in sorted(self.maps.items()) if i["value"] == INT]
        if ints and self.chance(50):
            return self.choice(ints)
        if maps and self.chance(70):
            name, info = self.choice(maps)
            return self.map_access(name, info, depth)
        return None

    # Types and expressions

    def value_type(self) -> tuple:
        pick = self.integer(0, 9)
        if pick <= 4:
            return INT
        if pick <= 6:
            return STR
        if pick == 7:
            return BOOL
        if pick == 8:
            elements = [self.choice((INT, STR, BOOL)) for _ in range(self.integer(1, 3))]
            if self.chance(15):
                elements.append(tuple_type(INT, STR) if self.chance(50) else record_type([("a", INT)]))
            return tuple_type(*elements)
        names = sorted(self.rng.sample(RECORD_FIELDS, self.integer(1, 3)))
        return record_type([(name, self.choice((INT, STR))) for name in names])

    def rvalue(self, t: tuple) -> str:
        if t == INT and self.chance(5):
            self.scopes.append({})
            inner = self.statements(self.integer(0, 2), 0)
            self.scopes.pop()
            return f"{{ {inner} {self.int_expr(1)} }}"
        return self.expr(t, 3)

    def expr(self, t: tuple, depth: int) -> str:
        depth = min(depth, self.depth_cap)
        if self.sloppy and self.chance(8):
            t = self.value_type()
        if t == INT:
            return self.int_expr(depth)
        if t == STR:
            return self.str_expr(depth)
        if t == BOOL:
            return self.bool_expr(depth)
        if t[0] == "tuple":
            from_var = self.typed_variable(t, depth)
            if from_var and self.chance(30):
                return from_var
            elements = [self.expr(element, depth - 1) for element in t[1]]
            return f"({elements[0]},)" if len(elements) == 1 else f"({', '.join(elements)})"
        from_var = self.typed_variable(t, depth)
        if from_var and self.chance(30):
            return from_var
        return "(" + ", ".join(f"{name} = {self.expr(ft, depth - 1)}" for name, ft in t[1]) + ")"

    def typed_variable(self, t: tuple, depth: int) -> str | None:
        """A variable, or a map (when `depth` leaves room for its key), holding values of type `t`."""
        names = [name for name, vt in sorted(self.variables().items()) if vt == t]
        if depth >= 0:
            names += [n for n, i in sorted(self.maps.items()) if i["value"] == t]
        if not names:
            return None
        name = self.choice(names)
        return self.map_access(name, self.maps[name], depth) if name.startswith("@") else name

    def int_literal(self) -> str:
        form = self.integer(0, 14)
        if form <= 6:
            return str(self.integer(0, 300))
        if form == 7:
            return str(self.integer(-(2**63), 2**64 - 1))
        if form == 8:
            return hex(self.integer(0, 2**32))
        if form == 9:
            return f"0b{self.integer(0, 255):b}"
        if form == 10:
            return f"0{self.integer(0, 511):o}"
        if form == 11:
            return self.choice(
                ("1_000", "1e3", "2e2", "1s", "5ms", "10us", "3ns", "1m", "1h", "1d", "10u", "7ul", "8LL")
            )
        if form == 12:
            return str(self.choice((127, 128, 255, 256, 32767, 32768, 65535, 65536, 2**31 - 1, 2**31, 2**32 - 1, 2**32,
                                    2**63 - 1, 2**63, 2**64 - 1)))  # fmt: skip
        if form == 13:
            return f"-{self.integer(1, 200)}"
        return f"sizeof({self.choice(INT_TYPES + ('bool',) if self.chance(80) else TYPE_SPELLINGS)})"

    def int_expr(self, depth: int) -> str:
        """An integer-valued expression (sometimes, to exercise the checker, a bool)."""
        depth = min(depth, self.depth_cap)
        if self.chance(3):
            return self.bool_expr(depth)
        if self.sloppy and self.chance(5):
            return self.expr(self.value_type(), depth - 1)
        if depth <= 0 or self.chance(35):
            pick = self.integer(0, 9)
            if pick <= 3:
                return self.int_literal()
            if pick <= 5:
                if (self.context or self.sloppy) and self.chance(40):
                    return self.choice([f"arg{n}" for n in range(6)] if "args" in self.context else ["retval"])
                if self.chance(8):
                    return self.choice(("$1", "$2", "$#", "$1", "$3"))
                return self.choice(INT_BUILTINS) if self.chance(85) else self.choice(INT_CALLS)
            if pick <= 7:
                variable = self.typed_variable(INT, depth)
                if variable:
                    return variable
            aggregates = [(n, i) for n, i in sorted(self.maps.items()) if i["value"][0] == "agg"
                          and i["value"][1] in READABLE_AGGREGATES]  # fmt: skip
            if pick == 8 and aggregates and depth >= 0:
                name, info = self.choice(aggregates)
                access = self.map_access(name, info, depth)
                return self.choice((access, f"(int64){access}", f"(uint64){access}"))
            return str(self.integer(0, 10))
        pick = self.integer(0, 11)
        if pick <= 4:
            op = self.choice(ARITHMETIC)
            return f"({self.int_expr(depth - 1)} {op} {self.int_expr(depth - 1)})"
        if pick == 5:
            return f"{self.choice(('-', '~'))}{self.int_expr(depth - 1)}"
        if pick == 6:
            if self.chance(15):
                return f"({self.int_expr(depth - 1)} ?: {self.int_expr(depth - 1)})"
            return f"({self.condition(depth - 1)} ? {self.int_expr(depth - 1)} : {self.int_expr(depth - 1)})"
        if pick == 7:
            operand = self.int_expr(depth - 1) if self.chance(70) else self.bool_expr(depth - 1)
            return f"({self.choice(TYPE_SPELLINGS if self.sloppy and self.chance(20) else INT_TYPES)}){operand}"
        if pick == 8:
            t = self.value_type()
            return f"sizeof({self.expr(t, depth - 1)})"
        if pick == 9:
            # An element of a tuple or a field of a record.
            if self.chance(50):
                t = tuple_type(INT, *[self.choice((INT, STR)) for _ in range(self.integer(0, 2))])
                return f"{self.paren_if_literal(self.expr(t, depth - 1))}.0"
            name = self.choice(RECORD_FIELDS)
            t = record_type([(name, INT)])
            return f"{self.paren_if_literal(self.expr(t, depth - 1))}.{name}"
        if pick == 10 and self.chance(25):
            call = self.macro_call(depth)
            if call is not None:
                return call
            strings = f"{self.str_expr(depth - 1)}, {self.str_expr(depth - 1)}"
            return self.choice((f"strlen({self.str_expr(depth - 1)})", f"strncmp({strings}, {self.integer(0, 20)})"))
        if pick == 10:
            lvalue = self.existing_int_lvalue(depth - 1)
            if lvalue is None:
                return self.int_literal()
            return f"{lvalue}{self.choice(('++', '--'))}" if self.chance(50) else f"{self.choice(('++', '--'))}{lvalue}"
        keyed = [name for name, info in sorted(self.maps.items()) if info["key"] is not None]
        if keyed and self.chance(10):
            return f"len({self.choice(keyed)})"
        return f"({self.int_expr(depth - 1)} {self.choice(ARITHMETIC)} {self.int_literal()})"

    @staticmethod
    def paren_if_literal(text: str) -> str:
        return text if text.startswith("(") or text.startswith("$") else f"({text})"

    def condition(self, depth: int) -> str:
        return self.bool_expr(depth) if self.chance(60) else self.int_expr(depth)

    def bool_expr(self, depth: int) -> str:
        """A bool-valued expression: comparisons, logic, key checks."""
        depth = min(depth, self.depth_cap)
        if depth <= 0 or self.chance(20):
            variable = self.typed_variable(BOOL, depth) if self.chance(50) else None
            return variable or self.choice(("true", "false"))
        pick = self.integer(0, 9)
        if pick <= 3:
            return f"({self.int_expr(depth - 1)} {self.choice(COMPARISON)} {self.int_expr(depth - 1)})"
        if pick <= 5:
            return f"({self.condition(depth - 1)} {self.choice(LOGICAL)} {self.condition(depth - 1)})"
        if pick == 6:
            return f"!{self.condition(depth - 1)}"
        if pick == 7:
            return f"(bool){self.int_expr(depth - 1)}"
        if pick == 8:
            if self.chance(20):
                return f"strcontains({self.str_expr(depth - 1)}, {self.str_expr(depth - 1)})"
            return f"({self.str_expr(depth - 1)} {self.choice(('==', '!='))} {self.str_expr(depth - 1)})"
        keyed = [(n, i) for n, i in sorted(self.maps.items()) if i["key"] is not None
                 and not (i["value"][0] == "agg" and i["value"][1] in ("hist", "lhist"))]  # fmt: skip
        if keyed and self.chance(70):
            name, info = self.choice(keyed)
            return f"has_key({name}, {self.expr(info['key'], depth - 1)})"
        t = tuple_type(INT, STR) if self.chance(50) else record_type([("a", INT), ("b", STR)])
        return f"({self.expr(t, depth - 1)} {self.choice(('==', '!='))} {self.expr(t, depth - 1)})"

    def str_expr(self, depth: int) -> str:
        depth = min(depth, self.depth_cap)
        pick = self.integer(0, 9)
        if pick <= 3 or depth <= 0:
            return '"' + self.choice(WORDS) + '"'
        if pick == 4:
            return "comm"
        if pick == 5:
            return "probe"
        if pick == 6:
            variable = self.typed_variable(STR, depth)
            if variable:
                return variable
            return '"' + self.choice(WORDS) + '"'
        if pick == 7:
            return f"({self.int_expr(depth - 1)} ? {self.str_expr(depth - 1)} : {self.str_expr(depth - 1)})"
        if pick == 8:
            return f"(string){self.str_expr(depth - 1)}" if self.chance(50) else f"str({self.str_expr(depth - 1)})"
        if self.chance(70):
            t = tuple_type(STR, INT)
            return f"{self.paren_if_literal(self.expr(t, depth - 1))}.0"
        return f"({self.choice(('string', 'string[4]', 'string[1]', 'string[64]'))}){self.str_expr(depth - 1)}"


# Features of a whole program and how often a program has each (percent). Drawn by hypothesis, so
# that a failure shrinks to a program without the features it does not need.
FEATURES = {"sloppy": 30, "config": 10, "macros": 15, "reflow": 25}
seeds = st.integers(0, 2**32 - 1)
statements = st.tuples(st.integers(0, 9).map(lambda size: min(size, 3)), seeds)  # mostly size 3, shrinks to 0


@st.composite
def generated_programs(draw) -> str:
    features = {name for name, percent in FEATURES.items() if draw(st.integers(0, 99)) >= 100 - percent}
    probes = draw(st.lists(st.tuples(seeds, st.lists(statements, min_size=1, max_size=6)), min_size=1, max_size=3))
    return ProgramGenerator().program(draw(seeds), features, probes)


programs = generated_programs()


# (2) Mutations of real scripts

TOKEN = re.compile(
    r'"(?:\\.|[^"\\\n])*"|[A-Za-z_][A-Za-z0-9_:]*|[@$][A-Za-z0-9_]*|0[xX][0-9a-fA-F]+|\d+\w*'
    r"|<<=|>>=|\+\+|--|->|&&|\|\||[=!<>+\-*/%&|^]=|<<|>>|\.\.|\s+|."
)
EXTRA_TOKENS = (
    "{", "}", "(", ")", "[", "]", ";", ",", "/", "?", ":", ".", "..", "=", "==", "+", "-", "*", "&", "!", "~",
    "++", "--", "->", "&&", "||", "<<", ">>", "+=", "$", "@", "$1", "$#", "$0", "_", "let", "if", "else",
    "while", "for", "unroll", "break", "continue", "return", "sizeof", "offsetof", "config", "struct",
    "uint8", "int64", "string", "string[4]", "bool", "void", "char *", "begin", "end", "BEGIN", "END",
    "kprobe:f", "interval:s:1", "tracepoint:a:b", "args", "arg0", "retval", "comm", "pid", "nsecs", "probe",
    "count()", "hist(", "lhist(", "printf(", "print(", "exit(", "delete(", "clear(", "zero(", "has_key(",
    "len(", "str(", "quantize(", '"', '"%d"', '"%s\\n"', "0", "1", "-1", "0x", "1e", "1e99", "1e9999999", "99999999999999999999999",
    "0b2", "1_", "1s", "1d", "true", "false", "/*", "*/", "//", "\n", "\t", "\\", "'", "\0", "\r",
)  # fmt: skip


@cache
def corpus() -> tuple[str, ...]:
    scripts = [path.read_text() for path in sorted((ROOT / "examples").glob("*.bt"))]
    runtime = ROOT / "tests" / "runtime"
    for path in sorted([*runtime.glob("*.test"), *runtime.glob("pending/*.test")]):
        for line in path.read_text().splitlines():
            if line.startswith("PROG "):
                scripts.append(line[5:].replace("{{WORKLOAD_PID}}", "1234"))
    return tuple(dict.fromkeys(scripts))


def tokens(text: str) -> list[str]:
    return TOKEN.findall(text)


SPACES = ("\n", "\n", "\n\n", "\t", "\r\n", " /* a comment */ ", " // a comment\n", "\n/*\n*/\n", " " * 40)


def reflow(rng: random.Random, text: str) -> str:
    """`text` with some of the blanks between its tokens replaced by line breaks and comments (and
    now and then one very long comment): spans and excerpts across lines, long lines."""
    pieces = tokens(text)
    rate = rng.choice((0.1, 0.3, 1.0))
    for index, piece in enumerate(pieces):
        if piece.isspace() and rng.random() < rate:
            pieces[index] = rng.choice(SPACES) if rng.random() < 0.99 else f" /*{'c' * 5000}*/ "
    return "".join(pieces)


# Characters: anything a UTF-8 file can hold (no lone surrogates, as bpftc reads UTF-8 text).
any_character = st.characters(exclude_categories=("Cs",))
odd_character = st.sampled_from(
    ["\0", "\x01", "\x7f", "\r", "\t", "\v", "\f", "\u00a0", "\u2028", "\u200b", "\ufeff", "é", "ß", "∑", "𝔘", "😀",
     "\\", "'", '"', "`", "#", "$", "@", "/", "*", "{", "}", "(", ")", "\n"]
)  # fmt: skip


@st.composite
def mutated_scripts(draw) -> str:
    pieces = list(corpus())
    if draw(st.integers(0, 99)) < 25:
        base = draw(programs)
    else:
        base = draw(st.sampled_from(pieces))
    text = base
    for _ in range(draw(st.integers(1, 4))):
        text = mutate(draw, text, pieces)
    return text


def mutate(draw, text: str, pieces: list[str]) -> str:
    op = draw(st.integers(0, 12))
    if op == 12:  # lay the script out differently: line breaks, comments
        return reflow(random.Random(draw(st.integers(0, 2**32 - 1))), text)
    if op <= 6:
        toks = tokens(text) or [""]
        n = len(toks)
        i = draw(st.integers(0, n - 1))
        j = draw(st.integers(i, min(n, i + 4)))
        if op == 0:  # delete tokens
            del toks[i:j]
        elif op == 1:  # duplicate tokens
            toks[i:i] = toks[i:j] * draw(st.integers(1, 3))
        elif op == 2:  # swap two tokens
            k = draw(st.integers(0, n - 1))
            toks[i], toks[k] = toks[k], toks[i]
        elif op == 3:  # replace a token with a token of another script
            other = tokens(draw(st.sampled_from(pieces))) or [""]
            toks[i] = draw(st.sampled_from(other))
        elif op == 4:  # insert a token the language knows
            toks.insert(i, draw(st.sampled_from(EXTRA_TOKENS)))
        elif op == 5:  # replace a token with a token the language knows
            toks[i] = draw(st.sampled_from(EXTRA_TOKENS))
        else:  # change a number
            numbers = [index for index, tok in enumerate(toks) if tok[:1].isdigit()]
            if numbers:
                index = draw(st.sampled_from(numbers))
                toks[index] = str(draw(st.one_of(st.integers(-(2**70), 2**70), st.sampled_from([0, 1, 2**64, 2**63]))))
        return "".join(toks)
    n = len(text)
    i = draw(st.integers(0, n))
    if op == 7:  # delete characters
        return text[:i] + text[min(n, i + draw(st.integers(1, 3))) :]
    if op == 8:  # duplicate characters
        j = min(n, i + draw(st.integers(1, 8)))
        return text[:j] + text[i:j] + text[j:]
    if op == 9:  # swap two characters
        if n < 2:
            return text
        j = draw(st.integers(0, n - 1))
        i = min(i, n - 1)
        chars = list(text)
        chars[i], chars[j] = chars[j], chars[i]
        return "".join(chars)
    if op == 10:  # insert random characters
        inserted = draw(st.text(st.one_of(odd_character, any_character), min_size=1, max_size=3))
        return text[:i] + inserted + text[i:]
    # splice: the start of this script and the end of another
    other = draw(st.sampled_from(pieces))
    return text[:i] + other[draw(st.integers(0, len(other))) :]


# (3) Token soup and raw text

LANGUAGE_TOKENS = EXTRA_TOKENS + (
    " ", " ", " ", "$x", "$y", "@m", "@m[1]", "@", "hist(1)", "count()", ")", "(", "{", "}", ";", ";", "1", "2",
    '"a"', "printf(\"%d\\n\", 1)", "exit()", "begin {", "} end {", "tracepoint:syscalls:sys_enter_read",
    "interval:ms:1", "(1, \"a\")", "(a = 1)", ".0", ".a", "(uint8)", "?", ":", "let $z", "$z",
)  # fmt: skip


SOUP_STATEMENT_TOKENS = (
    "$x", "$y", "@m", "@m[1]", "@m[$x]", "1", "0", "-1", "255", '"a"', "comm", "pid", "arg0", "retval", "$1", "(",
    ")", "(", ")", ",", "+", "-", "*", "/", "%", "<<", "==", "<", "&&", "||", "!", "~", "?", ":", "=", "+=", "++",
    "--", ".0", ".a", "(uint8)", "(string)", "(bool)", "a =", "count()", "hist(", "print(", "printf(\"%d\"", "exit(",
    "delete(", "has_key(", "len(", "str(", "sizeof(", "{", "}", "let", "if", "else", "while", "for", "unroll(2)",
    "break", "return", "..", "true", "_",
)  # fmt: skip


@st.composite
def token_soup(draw) -> str:
    if draw(st.booleans()):  # any tokens anywhere
        body = "".join(draw(st.lists(st.sampled_from(LANGUAGE_TOKENS), max_size=40)))
        return draw(st.sampled_from(("", "begin { ", "BEGIN { ", "interval:s:1 { ", "t:a:b /"))) + body
    # statements made of a few expression tokens: these get past the parser more often
    statement = st.lists(st.sampled_from(SOUP_STATEMENT_TOKENS), min_size=1, max_size=7).map(" ".join)
    statements = draw(st.lists(statement, min_size=1, max_size=6))
    return draw(st.sampled_from(("begin", "kprobe:f", "kretprobe:f", "end"))) + " { " + "; ".join(statements) + "; }"


raw_text = st.one_of(
    st.text(st.sampled_from("{}()[];,./*?:=\"\\@$_ \n\tabegintxy0123456789+-<>!&|^%~#'`"), max_size=80),
    st.text(any_character, max_size=60),
    st.text(st.one_of(odd_character, any_character, st.sampled_from("{}();$@ begin")), max_size=60),
    st.binary(max_size=60).map(lambda data: data.decode("utf-8", "replace")),
)


# (4) Deep nesting, up to and past the parser's limit (bpftc.parse.MAX_NESTING)


@st.composite
def deeply_nested(draw) -> str:
    depth = draw(st.one_of(st.integers(1, 60), st.sampled_from([300, 499, 500, 501, 999, 1000, 1001, 1200])))
    return nested_program(draw(st.integers(0, 9)), depth)


def nested_program(shape: int, depth: int) -> str:
    if shape == 0:
        return "begin { $x = " + "(" * depth + "1" + ")" * depth + "; print($x); }"
    if shape == 1:
        return "begin { $x = " + "-" * depth + "1; }" if depth % 2 else "begin { $x = " + "- " * depth + "1; }"
    if shape == 2:
        return "begin { " + "{ " * depth + "$x = 1;" + " }" * depth + " }"
    if shape == 3:
        return "begin { " + "if (1) { " * depth + 'printf("x\\n");' + " }" * depth + " }"
    if shape == 4:
        return "begin { $x = " + "1 + " * depth + "1; print($x); }"
    if shape == 5:
        return "begin { $x = " + "1 ? " * depth + "1" + " : 0" * depth + "; }"
    if shape == 6:
        return "begin { $x = " + "(uint8)" * depth + "1; }"
    if shape == 7:
        return "begin { $t = " + "(" * depth + "1" + ", 2)" * depth + "; }"
    if shape == 8:
        return "begin { @m = " + "{ " * depth + "1" + " }" * depth + "; }"
    return "begin { $x = " + "!" * depth + "1 && " * depth + "1; }"


# The tests


@fuzz_settings(GRAMMAR_EXAMPLES)
@given(programs)
def test_generated_programs(text):
    check_compiles_cleanly(text)


@fuzz_settings(MUTATION_EXAMPLES)
@given(mutated_scripts())
def test_mutated_scripts(text):
    check_compiles_cleanly(text)


@fuzz_settings(TOKEN_SOUP_EXAMPLES)
@given(token_soup())
def test_token_soup(text):
    check_compiles_cleanly(text)


@fuzz_settings(RAW_TEXT_EXAMPLES)
@given(raw_text)
def test_raw_text(text):
    check_compiles_cleanly(text)


@fuzz_settings(NESTING_EXAMPLES)
@given(deeply_nested())
def test_deeply_nested_programs(text):
    check_compiles_cleanly(text)


def test_the_budget_is_ten_thousand_scripts():
    total = GRAMMAR_EXAMPLES + MUTATION_EXAMPLES + TOKEN_SOUP_EXAMPLES + RAW_TEXT_EXAMPLES + NESTING_EXAMPLES
    assert total >= 10_000


def test_the_corpus_has_the_real_scripts():
    assert len(corpus()) > 100
    assert any("quantize" in script for script in corpus())
