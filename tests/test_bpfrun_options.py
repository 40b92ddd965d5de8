"""Named program options (getopt) given to bpfrun after `--`: what the program reads, and one
error line (bpftrace's words) with nothing loaded for an option it does not have or a bad value."""

from __future__ import annotations

import pytest

from tests.bpfrun_run import compile_program, needs_bpf, programs_loaded, run_bpfrun, wait_unloaded

PROGRAM = 'begin { print((getopt("count", 10), getopt("name", "x"), getopt("verbose"), $1, $#)); exit(); }'

pytestmark = needs_bpf


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return compile_program(PROGRAM, tmp_path_factory.mktemp("options") / "options.bpfb")


@pytest.mark.parametrize(
    "arguments, printed",
    [
        ((), "(10, x, false, 0, 0)"),
        (("7", "--", "--count=0x10", "--verbose", "--name=web-1"), "(16, web-1, true, 7, 1)"),
        (("--", "--verbose=0", "-5", "--count=-3"), "(-3, x, false, -5, 1)"),
    ],
)
def test_options_and_positional_parameters_reach_the_program(bundle, arguments, printed):
    run = run_bpfrun("-q", bundle, *arguments)
    assert run.returncode == 0, run.stderr
    assert run.stdout.decode().splitlines()[0] == printed


@pytest.mark.parametrize(
    "arguments, message",
    [
        (
            ("--", "--colour=red"),
            "unexpected program command line options: --colour (expected program options: --count, --name, --verbose)",
        ),
        (("--", "--count=ten"), "program command line option --count invalid integer (value: ten)"),
        (("--", "--count"), "program command line option --count expects an integer (value: true)"),
        (("--", "--verbose=yes"), "program command line option --verbose expects a boolean (value: yes)"),
    ],
)
def test_a_bad_option_is_one_line_and_loads_nothing(bundle, arguments, message):
    before = programs_loaded()
    run = run_bpfrun(bundle, *arguments)
    assert run.returncode != 0
    assert run.stderr.decode() == f"bpfrun: ERROR: {message}\n"
    assert not wait_unloaded(before)
