"""Programs the fuzzer (tests/test_fuzz.py) found crashing, hanging or producing bundles bpfrun
refuses: each now gets the diagnostic written here, or compiles to a bundle bpfrun accepts.

Diagnostics marked "bpftrace" are what bpftrace 0.27 prints for the same program
(../shared/tools/bpftrace-oracle); the others are bpftc's own, for what bpftrace accepts and bpftc
does not support yet, or where bpftrace itself fails differently.
"""

from __future__ import annotations

import pytest

from bpfrun.verify import verify
from bpftc.pipeline import compile_source
from bpftc.source import Source
from common import bundle as bundle_format
from tests.compile import diagnostics_text

# (program, the first line of the diagnostics)
REFUSED = [
    # bpftrace: a uint64 literal past INT64_MAX does not mix with signed values.
    (
        "BEGIN { $x=-2; $x=9223372036854775808; }",
        "stdin:1:16-38: ERROR: Type mismatch for $x: trying to assign value of type 'uint64' when variable "
        "already has a type 'int64'",
    ),
    (
        "BEGIN { $x = 9223372036854775808; $y = (int8)-1; $x = $y; }",
        "stdin:1:9-33: ERROR: Type mismatch for $x: trying to assign value of type 'uint64' when variable "
        "already has a type 'int64'",
    ),
    (
        "BEGIN { @m[1]-=1; @m[3]=9223372036854775808; }",
        "stdin:1:19-44: ERROR: Type mismatch for @m: trying to assign value of type 'uint64' when map already "
        "has a value type 'int64'",
    ),
    ("BEGIN { _ += 1; }", "stdin:1:11-13: ERROR: syntax: unexpected '+='"),
    ("BEGIN { $x += 1; }", "stdin:1:9-11: ERROR: Undefined or undeclared variable: $x"),  # bpftrace
    ("BEGIN { let $x; print($x); }", "stdin:1:23-25: ERROR: Could not resolve the type of this variable"),  # bpftrace
    ("BEGIN { let $x; $x += 1; }", "stdin:1:17-19: ERROR: Could not resolve the type of this variable"),
    ("BEGIN { let $x: int8[4]; }", "stdin:1:17-24: ERROR: A variable of type 'int8[4]' is not supported yet"),
    ("BEGIN { let $x: struct foo; }", "stdin:1:17-27: ERROR: A variable of type 'struct foo' is not supported yet"),
    ("BEGIN { print(sizeof(struct foo)); }", "stdin:1:22-32: ERROR: Unknown struct/union: 'struct foo' (not in the kernel's BTF)"),
    ("BEGIN { $x = (); }", "stdin:1:14-16: ERROR: An empty tuple has no value"),
    # bpftrace refuses it with "syntax: expected ';'" at the '?'; its docs show it as a statement.
    (
        'BEGIN { $a = 1; $a ? print("t") : print("f"); }',
        "stdin:1:17-45: ERROR: Ternary operator must return a value: use if/else for statements",
    ),
    ("tracepoint:a-b:c { }", "stdin:1:1-17: ERROR: 'a-b' cannot name a tracepoint in a tracepoint probe"),
    ("kretprobe:vfs_read+4 { }", "stdin:1:1-21: ERROR: Offset not allowed for kretprobe"),
    ("kretprobe:f/ { }", "stdin:1:1-13: ERROR: 'f/' cannot name a kernel function in a kretprobe probe"),
    ("uprobe:/bin/sh:ma-in { }", "stdin:1:1-21: ERROR: 'ma-in' cannot name a function, function+offset or address in a uprobe probe"),
    ("rawtracepoint:sched-switch { }", "stdin:1:1-27: ERROR: 'sched-switch' cannot name a raw tracepoint in a rawtracepoint probe"),
    # a search generated as straight-line code: LLVM took minutes over it
    (
        'BEGIN { print(strcontains("' + "z" * 300 + '", "' + "z" * 300 + '")); }',
        "stdin:1:15-634: ERROR: strcontains() of a 301-byte string and a 301-byte one is not supported yet",
    ),
    (
        "config = { max_map_keys = 18446744073709551615 } BEGIN { @a[1] = 1; }",
        "stdin:1:12-47: ERROR: max_map_keys is at most 16777216",
    ),
    (
        "BEGIN { print(1e10000000); }",
        "stdin:1:15-25: ERROR: syntax: overflow error, maximum value is 18446744073709551615: 1e10000000",
    ),
    (
        "macro a(x) { x + x } BEGIN { print(" + "a(" * 30 + "1" + ")" * 30 + "); }",
        "stdin:1:72-109: ERROR: Macro expansion too large (more than 20000 nodes)",
    ),
]


@pytest.mark.parametrize("program, first_line", REFUSED, ids=[case[0][:60] for case in REFUSED])
def test_refused_with_a_diagnostic(program, first_line):
    assert diagnostics_text(program).splitlines()[0] == first_line


COMPILED = [
    "BEGIN { $x=~1; $x++; }",  # bpftrace: uint64, ++ wraps
    "BEGIN { $x=18446744073709551615; $x++; }",
    "BEGIN { @m=18446744073709551615; @m++; }",
    "BEGIN { let $x; }",  # bpftrace warns: Variable $x was never assigned to.
    "BEGIN { let $x; $x += --$x; }",
    "BEGIN { print(sizeof(int8[4])); }",
    "BEGIN { @ = 1; @_ = 2; }",  # two maps, two ELF names
    # a loop variable assigned a value of another shape: its type grows once, inference ends
    'BEGIN { @m[1, "a"] = 1; for ($kv : @m) { $kv = ((8, "the quick brown fox"), 38); } }',
    "BEGIN { for ($i : 0..3) { $i = 300; } }",
    "BEGIN { $a = 0; print(1 /\n $a); }",  # a division by zero warning on a span of two lines
    "BEGIN { $a = 0; print(1 / " + "(" * 40 + "$a" + ")" * 40 + "); }" + " " * 5000,
]


@pytest.mark.parametrize("program", COMPILED, ids=[case[:60] for case in COMPILED])
def test_compiled_to_a_bundle_bpfrun_accepts(program):
    result = compile_source(Source("stdin", program))
    assert result.bundle is not None, diagnostics_text(program)
    verify(bundle_format.read(result.bundle).resources)


def test_a_probe_llvm_cannot_fit_in_bpfs_stack_is_a_diagnostic_at_the_probe():
    """LLVM's BPF backend ends the process when a program needs more than 512 bytes of stack: the
    code is made in a child process, and its end is a diagnostic at the probe (here: six searches
    of one 1024-byte string in one statement, all of whose results are live at once)."""
    searches = ", ".join(f'strstr($f, "{needle}")' for needle in ("name", "xyz", "", "hostname", "namex", "e"))
    program = (
        "BEGIN { exit(); } tracepoint:syscalls:sys_enter_openat { $f = str(args.filename); "
        f'printf("%d %d %d %d %d %d\\n", {searches}); }}'
    )
    first = diagnostics_text(program).splitlines()[0]
    assert first.startswith("stdin:1:19-") and first.endswith(
        ": ERROR: LLVM cannot compile this probe for BPF: Looks like the BPF stack limit is exceeded"
    ), first
