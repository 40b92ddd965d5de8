"""The preprocessor lines of bpftrace scripts (bpftc/preprocess.py): text in, text out, same lines."""

from textwrap import dedent

from bpftc.diagnostics import Diagnostics
from bpftc.preprocess import preprocess
from bpftc.source import Source
from tests.compile import diagnostics_text


def preprocessed(text: str) -> str:
    diagnostics = Diagnostics()
    result = preprocess(Source("x.bt", text), diagnostics)
    assert not diagnostics.has_errors
    return result.text


def test_the_lines_of_bpftraces_own_tools_stay_where_they_are():
    script = dedent("""\
        #!/usr/bin/env bpftrace
        #ifndef BPFTRACE_HAVE_BTF
        #include <linux/socket.h>
        #else
        #define AF_INET   2 /* IPv4 */
        #define AF_INET6 10
        #endif
        BEGIN { if ($f == AF_INET) { printf("AF_INET6 // AF_INET\\n"); } } // AF_INET
        """)
    assert preprocessed(script).split("\n") == [
        "", "", "", "", "", "", "",
        'BEGIN { if ($f == 2) { printf("AF_INET6 // AF_INET\\n"); } } // AF_INET',
        "",
    ]  # fmt: skip


def test_conditions_macros_expand_in_and_undef():
    script = "#define A 1\n#define B (A + A)\n#if defined(A) && !defined(C) && B == 2\nyes B\n#elif 1\nno\n#endif\n#undef A\nA"
    assert preprocessed(script).split("\n") == ["", "", "", "yes (1 + 1)", "", "", "", "", "A"]


def test_what_it_does_not_take_is_an_error_at_its_line():
    assert diagnostics_text("BEGIN { }\n#pragma once\n").splitlines()[0] == (
        "stdin:2:1-13: ERROR: The preprocessor directive #pragma is not supported yet"
    )
    assert diagnostics_text("#define MAX(a, b) ((a) > (b) ? (a) : (b))\nBEGIN { }").splitlines()[0] == (
        "stdin:1:1-42: ERROR: #define of a macro with parameters (MAX) is not supported yet"
    )
    assert diagnostics_text("#ifdef X\nBEGIN { }\n").splitlines()[0] == "stdin:1:1-9: ERROR: #if without #endif"
    assert diagnostics_text("#if 9**9**9\n#endif\n").splitlines()[0] == (
        "stdin:1:1-12: ERROR: #if condition bpftc cannot evaluate: 9**9**9"
    )
