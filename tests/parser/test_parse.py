"""The parser: source in, AST text (bpftc.printer) out; spans and syntax errors."""

from textwrap import dedent

import pytest

from bpftc.diagnostics import Diagnostics
from bpftc.parse import parse
from bpftc.source import Source, Span
from tests.compile import diagnostics_text, dump


def ast_text(program: str) -> str:
    return dump(program, "parse")


def test_seed_readme_program_parses_with_its_2017_spellings():
    program = dedent("""\
        kprobe:sys_read
        {
          @start[tid] = nsecs;
        }

        kretprobe:sys_read / @start[tid] /
        {
          @times = quantize(nsecs - @start[tid]);
          @start[tid] = delete();
        }
    """)
    assert ast_text(program) == dedent("""\
        Program
         Probe
          AttachPoint kprobe:sys_read
          Assignment
           Map @start
            Builtin tid
           Builtin nsecs
         Probe
          AttachPoint kretprobe:sys_read
          Predicate
           Map @start
            Builtin tid
          Assignment
           Map @times
           Call quantize()
            Binop -
             Builtin nsecs
             Map @start
              Builtin tid
          Assignment
           Map @start
            Builtin tid
           Call delete()
    """)


def test_operator_precedence_follows_c():
    assert ast_text("BEGIN { @x = 1 + 2 * -3 == 4 && !5 | 6; }") == dedent("""\
        Program
         Probe
          AttachPoint BEGIN
          Assignment
           Map @x
           Binop &&
            Binop ==
             Binop +
              Integer 1
              Binop *
               Integer 2
               Unop -
                Integer 3
             Integer 4
            Binop |
             Unop !
              Integer 5
             Integer 6
    """)


def test_predicate_may_divide_and_end_with_slash_before_brace():
    text = ast_text("interval:s:1 / 10 / 2 == 5 /{ exit(); }")
    assert "  Predicate\n   Binop ==\n    Binop /\n" in text


def test_comments_several_attach_points_and_keys():
    program = dedent("""\
        // a line comment
        BEGIN, END /* a block
        comment */ { @[pid, comm] = count(); printf("%d\\n", 0x10); ; }
    """)
    assert ast_text(program) == dedent("""\
        Program
         Probe
          AttachPoint BEGIN
          AttachPoint END
          Assignment
           Map @
            Builtin pid
            Builtin comm
           Call count()
          ExprStatement
           Call printf()
            String '%d\\n'
            Integer 16
    """)


def test_nodes_carry_their_source_spans():
    diagnostics = Diagnostics()
    program = parse(Source("t.bt", "BEGIN\n{\n  @x[tid] = nsecs;\n}\n"), diagnostics)
    statement = program.probes[0].body.statements[0]
    assert statement.span == Span(3, 3, 3, 18)
    assert statement.target.span == Span(3, 3, 3, 10)
    assert statement.target.keys[0].span == Span(3, 6, 3, 9)
    assert program.probes[0].attach_points[0].span == Span(1, 1, 1, 6)


# Syntax errors; where bpftrace 0.27 has the same error the text is what it prints.


def test_missing_expression_is_reported_at_the_token():
    assert diagnostics_text("BEGIN { @x = 1 + ; }") == dedent("""\
        stdin:1:18-19: ERROR: syntax: expected expression
        BEGIN { @x = 1 + ; }
                         ~
    """)


def test_missing_closing_brace_is_reported_at_the_end():
    # bpftrace prints an empty marker line here too (a zero-width span).
    assert (
        diagnostics_text("BEGIN { @x = 1;")
        == "stdin:1:16-16: ERROR: syntax: expected '}'\nBEGIN { @x = 1;\n" + " " * 15 + "\n"
    )


def test_unclosed_call_and_bad_character_name_the_location():
    assert diagnostics_text('BEGIN { printf("x" }', "f.bt") == dedent("""\
        f.bt:1:20-21: ERROR: syntax: expected ')'
        BEGIN { printf("x" }
                           ~
    """)
    assert diagnostics_text("BEGIN {\n  @x = 1 # 2;\n}") == dedent("""\
        stdin:2:10-11: ERROR: syntax: unexpected character '#'
          @x = 1 # 2;
                 ~
    """)


SYNTAX_ERRORS_SAME_AS_BPFTRACE = [
    ("BEGIN { @x = 1 @y = 2 }", "stdin:1:16-18: ERROR: syntax: expected ';'", "               ~~"),
    ("kprobe:f / pid { }", "stdin:1:16-17: ERROR: syntax: expected '/' to close predicate", "               ~"),
    ("BEGIN { @x[1 = 2; }", "stdin:1:14-15: ERROR: syntax: expected ']'", "             ~"),
    ("BEGIN  @x = 1; }", "stdin:1:8-10: ERROR: syntax: expected '{'", "       ~~"),
    ("BEGIN { @x = (1 + 2; }", "stdin:1:20-21: ERROR: syntax: expected ')'", "                   ~"),
    ("BEGIN { @x = -; }", "stdin:1:15-16: ERROR: syntax: expected expression", "              ~"),
]


@pytest.mark.parametrize("program, first_line, marker", SYNTAX_ERRORS_SAME_AS_BPFTRACE)
def test_syntax_error_matches_bpftrace(program, first_line, marker):
    assert diagnostics_text(program) == f"{first_line}\n{program}\n{marker}\n"


def test_unterminated_string_points_past_the_line():
    # bpftrace adds a second error at the same place ("expected ';'"); one is enough.
    assert diagnostics_text('BEGIN { @x = "abc; }') == (
        'stdin:1:21-21: ERROR: syntax: unterminated string\nBEGIN { @x = "abc; }\n' + " " * 20 + "\n"
    )


def test_a_call_after_an_inner_block_is_not_read_as_an_attach_point():
    # LALR merges the states after the '}' of every rule built on `block`: a probe's or a macro's
    # body shares them, and `exit` after an inner block became an attach point.
    program = "macro m() { 1 } BEGIN { if (1) { } exit(); while (0) { } print(m); } END { { } printf(\"x\"); }"
    text = ast_text(program)
    assert "Call exit()" in text and "Call printf()" in text and "Macro" in text


def test_a_block_after_an_operator_is_a_value_and_at_a_statement_start_a_statement():
    text = ast_text("config = { max_map_keys = 2 } BEGIN { { $a = 1; } -1; $b = { 2 } * { 3 }; @[{ 4 }] = f({ 5 }); }")
    assert text.count("BlockExpr") == 4, text
    assert " ConfigItem max_map_keys = 2\n" in text, text
    assert "  Block\n   Assignment\n" in text and "  ExprStatement\n   Unop -\n" in text, text
