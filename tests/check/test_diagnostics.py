"""The checker's diagnostics, exactly as printed.

Unless a test says otherwise, each expected text is what bpftrace 0.27 prints for the same program
(checked with ../shared/tools/bpftrace-oracle --dry-run -e PROGRAM).
"""

from textwrap import dedent

import pytest

from tests.compile import diagnostics_text

SAME_AS_BPFTRACE = [
    (
        'begin { $x = getopt("aa", 10); print(getopt("aa", 11)); exit(); }',
        """\
        stdin:1:38-54: ERROR: Command line option 'aa' needs to have the same default value in all places it is used. Previous default value: 10
        begin { $x = getopt("aa", 10); print(getopt("aa", 11)); exit(); }
                                             ~~~~~~~~~~~~~~~~
        """,
    ),
    (
        "BEGIN { foo(1); }",
        """\
        stdin:1:9-15: ERROR: Unknown function: 'foo'
        BEGIN { foo(1); }
                ~~~~~~
        """,
    ),
    (
        "BEGIN { @x = count(1); }",
        """\
        stdin:1:14-22: ERROR: count() requires no arguments (1 provided)
        BEGIN { @x = count(1); }
                     ~~~~~~~~
        """,
    ),
    (
        "BEGIN { @x = hist(); }",
        """\
        stdin:1:14-20: ERROR: hist() requires at least one argument (0 provided)
        BEGIN { @x = hist(); }
                     ~~~~~~
        """,
    ),
    (
        "BEGIN { @x = hist(1,2,3,4); }",
        """\
        stdin:1:14-27: ERROR: hist() takes up to 2 arguments (4 provided)
        BEGIN { @x = hist(1,2,3,4); }
                     ~~~~~~~~~~~~~
        """,
    ),
    (
        "BEGIN { exit(1,2,3); }",
        """\
        stdin:1:9-20: ERROR: exit() takes up to one argument (3 provided)
        BEGIN { exit(1,2,3); }
                ~~~~~~~~~~~
        """,
    ),
    (
        "BEGIN { @x = 1; @x = comm; }",
        """\
        stdin:1:17-26: ERROR: Type mismatch for @x: trying to assign value of type 'string[16]' when map already has a type 'int8'
        BEGIN { @x = 1; @x = comm; }
                        ~~~~~~~~~
        """,
    ),
    (
        "BEGIN { @x = count(); @x = hist(2); }",
        """\
        stdin:1:28-35: ERROR: Type mismatch for @x: trying to assign value of type 'hist_t' when map already has a type 'count_t'
        BEGIN { @x = count(); @x = hist(2); }
                                   ~~~~~~~
        """,
    ),
    (
        "BEGIN { @x = count(); @x = 1; }",
        """\
        stdin:1:23-29: ERROR: Type mismatch for @x: trying to assign value of type 'int8' when map already has a type 'count_t'
        BEGIN { @x = count(); @x = 1; }
                              ~~~~~~
        """,
    ),
    (
        "BEGIN { @x = pid; @x = hist(1); }",
        """\
        stdin:1:24-31: ERROR: Type mismatch for @x: trying to assign value of type 'hist_t' when map already has a type 'uint32'
        BEGIN { @x = pid; @x = hist(1); }
                               ~~~~~~~
        """,
    ),
    (
        "BEGIN { @x = 100000; @x = comm; }",
        """\
        stdin:1:22-31: ERROR: Type mismatch for @x: trying to assign value of type 'string[16]' when map already has a type 'int32'
        BEGIN { @x = 100000; @x = comm; }
                             ~~~~~~~~~
        """,
    ),
    (
        "BEGIN { @x[1] = 1; @x[comm] = 1; }",
        """\
        stdin:1:20-28: ERROR: Argument mismatch for @x: trying to access with arguments: 'string[16]' when map expects arguments: 'int8'
        BEGIN { @x[1] = 1; @x[comm] = 1; }
                           ~~~~~~~~
        """,
    ),
    (
        "BEGIN { @x[1] = 1; @x[1,2] = 1; }",
        """\
        stdin:1:20-27: ERROR: Argument mismatch for @x: trying to access with arguments: '(int8,int8)' when map expects arguments: 'int8'
        BEGIN { @x[1] = 1; @x[1,2] = 1; }
                           ~~~~~~~
        """,
    ),
    (
        "BEGIN { @x = 1; @x[1] = 2; }",
        """\
        stdin:1:17-22: ERROR: @x used as a map with an explicit key (non-scalar map), previously used without an explicit key (scalar map)
        BEGIN { @x = 1; @x[1] = 2; }
                        ~~~~~
        """,
    ),
    (
        "BEGIN { @x[1] = 1; @x = 2; }",
        """\
        stdin:1:20-22: ERROR: @x used as a map without an explicit key (scalar map), previously used with an explicit key (non-scalar map)
        BEGIN { @x[1] = 1; @x = 2; }
                           ~~
        """,
    ),
    (
        "tracepoint:a:b { @x = arg0; }",
        """\
        stdin:1:23-27: ERROR: The arg0 builtin can only be used with 'kprobes', 'uprobes' and 'usdt' probes
        tracepoint:a:b { @x = arg0; }
                              ~~~~
        """,
    ),
    (
        'BEGIN { printf("%d\\n"); }',
        """\
        stdin:1:9-23: ERROR: not enough arguments for format string (0 supplied, 1 expected)
        BEGIN { printf("%d\\n"); }
                ~~~~~~~~~~~~~~
        """,
    ),
    (
        'BEGIN { printf("%d\\n", 1, 2); }',
        """\
        stdin:1:9-29: ERROR: too many arguments for format string (2 supplied, 1 expected)
        BEGIN { printf("%d\\n", 1, 2); }
                ~~~~~~~~~~~~~~~~~~~~
        """,
    ),
    (
        'BEGIN { printf("%d\\n", comm); }',
        """\
        stdin:1:9-29: ERROR: unsupported format specifier for type 'string[16]': d
        BEGIN { printf("%d\\n", comm); }
                ~~~~~~~~~~~~~~~~~~~~
        """,
    ),
    (
        "BEGIN { printf(); }",
        """\
        stdin:1:9-17: ERROR: printf() requires at least one argument (0 provided)
        BEGIN { printf(); }
                ~~~~~~~~
        """,
    ),
    (
        "BEGIN { printf(1); }",
        """\
        stdin:1:9-18: ERROR: printf() expects a string literal (int provided)
        BEGIN { printf(1); }
                ~~~~~~~~~
        """,
    ),
    (
        'BEGIN { @x = hist("a"); }',
        """\
        stdin:1:14-23: ERROR: hist() only supports int arguments (string provided)
        BEGIN { @x = hist("a"); }
                     ~~~~~~~~~
        """,
    ),
    (
        "BEGIN { exit(comm); }",
        """\
        stdin:1:9-19: ERROR: exit() only supports int arguments (string provided)
        BEGIN { exit(comm); }
                ~~~~~~~~~~
        """,
    ),
    (
        "BEGIN { count(); }",
        """\
        stdin:1:9-16: ERROR: count() must be assigned directly to a map
        BEGIN { count(); }
                ~~~~~~~
        """,
    ),
    (
        "foo:bar { }",
        """\
        stdin:1:1-8: ERROR: Invalid probe type: foo
        foo:bar { }
        ~~~~~~~
        """,
    ),
    (
        "interval:x:1 { }",
        """\
        stdin:1:1-13: ERROR: x is not an accepted unit of time
        interval:x:1 { }
        ~~~~~~~~~~~~
        """,
    ),
    (
        "interval:s { }",
        """\
        stdin:1:1-11: ERROR: Invalid rate of interval probe: invalid integer: s
        interval:s { }
        ~~~~~~~~~~
        """,
    ),
    (
        "tracepoint:foo { }",
        """\
        stdin:1:1-15: ERROR: tracepoint probe type requires 2 arguments, found 1
        tracepoint:foo { }
        ~~~~~~~~~~~~~~
        """,
    ),
    (
        "begin { $e = (enum nope)1; }",
        """\
        stdin:1:14-25: ERROR: Unknown enum: nope
        begin { $e = (enum nope)1; }
                     ~~~~~~~~~~~
        """,
    ),
    (
        "let @a = percpuhash(10); begin { @a[1] = 5; exit(); }",
        """\
        stdin:1:34-36: ERROR: Incompatible map types. Type from declaration: percpuhash. Type from value/key type: hash
        let @a = percpuhash(10); begin { @a[1] = 5; exit(); }
                                         ~~
        """,
    ),
    (
        "let @a = foo(3); begin { @a[1] = 1; exit(); }",
        """\
        stdin:1:1-17: ERROR: Invalid bpf map type: foo
        let @a = foo(3); begin { @a[1] = 1; exit(); }
        ~~~~~~~~~~~~~~~~
        HINT: Valid map types: percpulruhash, percpuhash, lruhash, hash
        """,
    ),
    (
        "begin { $a = (int8[3])(uint32)1; print($a); exit(); }",
        """\
        stdin:1:14-23: ERROR: Cannot cast from "uint32" to "int8[3]"
        begin { $a = (int8[3])(uint32)1; print($a); exit(); }
                     ~~~~~~~~~
        """,
    ),
    (
        "begin { $a = (int8[8])1; print((uint32)$a); exit(); }",
        """\
        stdin:1:32-40: ERROR: Cannot cast from "int8[8]" to "uint32"
        begin { $a = (int8[8])1; print((uint32)$a); exit(); }
                                       ~~~~~~~~
        """,
    ),
    (
        "begin { $a = (int16[2])(uint32)0x00020001; print($a[5]); exit(); }",
        """\
        stdin:1:50-55: ERROR: the index 5 is out of bounds for array of size 2
        begin { $a = (int16[2])(uint32)0x00020001; print($a[5]); exit(); }
                                                         ~~~~~
        """,
    ),
]


@pytest.mark.parametrize("program, expected", SAME_AS_BPFTRACE, ids=[case[0] for case in SAME_AS_BPFTRACE])
def test_diagnostic_matches_bpftrace(program, expected):
    assert diagnostics_text(program) == dedent(expected)


def test_every_error_of_a_pass_is_reported_in_source_order():
    assert diagnostics_text("BEGIN { @a = foo(); @b = bar; }", "x.bt") == dedent("""\
        x.bt:1:14-19: ERROR: Unknown function: 'foo'
        BEGIN { @a = foo(); @b = bar; }
                     ~~~~~
        x.bt:1:26-29: ERROR: Unknown identifier: 'bar'
        BEGIN { @a = foo(); @b = bar; }
                                 ~~~
    """)


def test_aggregation_map_copy_has_bpftraces_message_and_hint():
    assert diagnostics_text("BEGIN { @x = count(); @y = @x; }") == dedent("""\
        stdin:1:23-30: ERROR: Map value 'count_t' cannot be assigned from one map to another. The function that returns this type must be called directly e.g. `@y = count();`.
        BEGIN { @x = count(); @y = @x; }
                              ~~~~~~~
        HINT: Add a cast to integer if you want the value of the aggregate, e.g. `@y = (int64)@x;`.
    """)


def test_string_operand_reports_both_sides():
    # bpftrace points the 'left' context into its own stdlib (where comm is a macro); bpftc at the
    # operand in the script.
    assert diagnostics_text("BEGIN { @x = comm + 1; }") == dedent("""\
        stdin:1:14-22: ERROR: Type mismatch for '+': comparing string[16] with int8
        BEGIN { @x = comm + 1; }
                     ~~~~~~~~
        stdin:1:14-18: ERROR: left (string[16])
        BEGIN { @x = comm + 1; }
                     ~~~~
        stdin:1:21-22: ERROR: right (int8)
        BEGIN { @x = comm + 1; }
                            ~
    """)


def test_retval_outside_kretprobe():
    assert diagnostics_text("tracepoint:a:b { @x = retval; }") == dedent("""\
        stdin:1:23-29: ERROR: The retval builtin can only be used with 'kretprobe' and 'uretprobe' and 'fentry' probes
        tracepoint:a:b { @x = retval; }
                              ~~~~~~
    """)


def test_legacy_spellings_are_accepted():
    # Current bpftrace rejects both; the original README's program must keep compiling.
    assert diagnostics_text("kretprobe:f { @t = quantize(retval); @s[tid] = delete(); }") == ""


def test_kprobe_scripts_compile_without_the_kernel():
    # bpftrace resolves kprobes at compile time; bpftc cannot (no privileges, maybe another host),
    # so a missing function is bpfrun's error at attach time.
    assert diagnostics_text("kprobe:no_such_function { @c = count(); }") == ""


def test_hist_bits_are_checked_as_bpftrace_checks_them():
    assert diagnostics_text("BEGIN { @h = hist(1, 6); }") == dedent("""\
        stdin:1:14-24: ERROR: hist: bits 6 must be 0..5
        BEGIN { @h = hist(1, 6); }
                     ~~~~~~~~~~
    """)


def test_locations_count_lines_and_columns_in_files():
    program = "BEGIN\n{\n  @x = 1;\n  @x = comm;\n}\n"
    assert diagnostics_text(program, "m.bt") == dedent("""\
        m.bt:4:3-12: ERROR: Type mismatch for @x: trying to assign value of type 'string[16]' when map already has a type 'int8'
          @x = comm;
          ~~~~~~~~~
    """)


def test_many_strings_fit_without_stack_and_a_probe_that_needs_too_much_is_located():
    # 20 comm buffers go straight into the ring buffer record: no stack needed.
    program = 'BEGIN { printf("' + "%s" * 20 + '", ' + ", ".join(["comm"] * 20) + "); }"
    assert diagnostics_text(program) == ""
    # Variables live until their block ends: 40 strings of 1 KiB each are more than a probe may
    # keep (32 KiB); the statement that tips it over is named.
    big = '"' + "x" * 1023 + '"'
    statements = "".join(f"$v{index} = {big}; " for index in range(40))
    first_line = diagnostics_text("BEGIN { " + statements + "}").splitlines()[0]
    assert first_line.endswith(
        "ERROR: the values this statement keeps need more than 32768 bytes of memory, the most a probe may use"
    )
    assert first_line.startswith("stdin:1:")


PROBE_ERRORS_SAME_AS_BPFTRACE = [
    (
        "interval:s:99999999999999999999 { }",
        "stdin:1:1-32: ERROR: Invalid rate of interval probe: overflow error, maximum value is "
        "18446744073709551615: 99999999999999999999",
    ),
    ("interval:s:0 { }", "stdin:1:1-13: ERROR: interval frequency should be a positive integer"),
    ("interval:xs:1 { }", "stdin:1:1-14: ERROR: xs is not an accepted unit of time"),
    ("begin:x { }", "stdin:1:1-8: ERROR: begin probe type requires 0 arguments, found 1"),
    (
        "BEGIN { @x = 99999999999999999999999; }",
        "stdin:1:14-37: ERROR: syntax: overflow error, maximum value is 18446744073709551615: 99999999999999999999999",
    ),
]


@pytest.mark.parametrize("program, first_line", PROBE_ERRORS_SAME_AS_BPFTRACE)
def test_probe_and_literal_errors_match_bpftrace(program, first_line):
    assert diagnostics_text(program).splitlines()[0] == first_line


def test_periods_bpfrun_would_refuse_are_diagnostics():
    # bpftrace compiles these and fails only when it attaches; bpftc says why at compile time.
    assert diagnostics_text("interval:hz:2000000000 { }").splitlines()[0] == (
        "stdin:1:1-23: ERROR: Invalid rate of interval probe: 2000000000 Hz is faster than the maximum, 1000000000 Hz"
    )
    assert diagnostics_text("interval:ms:18446744073709551 { }").splitlines()[0] == (
        "stdin:1:1-30: ERROR: Invalid rate of interval probe: the period is longer than 9223372036854775807 nanoseconds"
    )


def test_scopes_and_declarations_match_bpftrace():
    assert diagnostics_text("BEGIN { if (1) { $x = 1; } print($x); }") == dedent("""\
        stdin:1:34-36: ERROR: Undefined or undeclared variable: $x
        BEGIN { if (1) { $x = 1; } print($x); }
                                         ~~
    """)
    assert diagnostics_text("BEGIN { let $x = 1; let $x = 2; }") == dedent("""\
        stdin:1:21-27: ERROR: Variable $x was already declared. Variable shadowing is not allowed.
        BEGIN { let $x = 1; let $x = 2; }
                            ~~~~~~
        stdin:1:9-15: ERROR: This is the initial declaration.
        BEGIN { let $x = 1; let $x = 2; }
                ~~~~~~
    """)
    assert diagnostics_text("BEGIN { $x = 1; $x = comm; }").splitlines()[0] == (
        "stdin:1:17-26: ERROR: Type mismatch for $x: trying to assign value of type 'string[16]' "
        "when variable already has a type 'int8'"
    )


def test_a_cast_to_an_enum_value_it_lacks():
    # bpftrace 0.27 knows only the enums a program names an enumerator of, and says "Unknown enum:
    # bpf_cmd" here unless it does; its message for a missing value, given it knows the enum:
    assert diagnostics_text("begin { $z = (enum bpf_cmd)1000; }") == dedent("""\
        stdin:1:14-28: ERROR: Enum: bpf_cmd doesn't contain a variant value of 1000
        begin { $z = (enum bpf_cmd)1000; }
                     ~~~~~~~~~~~~~~
    """)


def test_macro_type_parameters_are_only_cast_to():
    """bpftc's own wording: `(a)x` in a macro is a cast to the type its call passes for `a` with
    typeof(...); a type where a value goes, or a value where a type goes, is an error."""
    def first_line(program: str) -> str:
        return diagnostics_text(program).splitlines()[0]

    assert diagnostics_text("macro p(a, b) { (a)b } BEGIN { print(p(typeof(uint8), -1)); }") == ""
    assert diagnostics_text("macro p(a, b) { (a) - b } BEGIN { $a = 5; print(p($a, 1)); }") == ""  # a subtraction
    assert first_line("macro p(a) { a + 1 } BEGIN { print(p(typeof(uint8))); }") == (
        "stdin:1:14-15: ERROR: Macro parameter a is given a type: it can only be cast to"
    )
    assert first_line("macro p(a, b) { (a)b } BEGIN { print(p(5, 1)); }") == (
        "stdin:1:18-19: ERROR: Macro parameter a is cast to: pass it a type, typeof(...)"
    )
    assert first_line("BEGIN { print(typeof(uint8)); }") == "stdin:1:15-28: ERROR: print() takes values, not a type"
