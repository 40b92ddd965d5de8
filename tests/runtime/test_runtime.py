"""Every case in tests/runtime/*.test, compiled by bpftc and run by bpfrun against the real kernel."""

from __future__ import annotations

import os

import pytest

from tests.runtime.harness import (
    BIN,
    case_files,
    json_variant,
    kernel_has_kprobes,
    mismatches,
    parse_cases,
    run_case,
)

TEXT_CASES = [case for path in case_files() for case in parse_cases(path)]
CASES = TEXT_CASES + [json for json in map(json_variant, TEXT_CASES) if json is not None]

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="loads BPF programs: needs root")


@pytest.mark.parametrize("case", CASES, ids=[case.origin for case in CASES])
def test_case(case):
    if case.no_kprobes and kernel_has_kprobes():
        pytest.skip("this kernel has kprobes")
    filled, run = run_case(case, [str(BIN / "bpfrun")], compile_first=True)
    problems = mismatches(filled, run)
    assert not problems, "\n".join(problems)
