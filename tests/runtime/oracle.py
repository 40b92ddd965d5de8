"""Run runtime cases under bpftrace 0.27 (../shared/tools/bpftrace-oracle) and report differences.

    .venv/bin/python -m tests.runtime.oracle [FILE.test ...]

This is how the expected text in the case files is checked against current bpftrace. Cases whose
comments say bpftrace differs on purpose are expected to show up here.
"""

from __future__ import annotations

import sys
from pathlib import Path

from tests.runtime.harness import ORACLE, case_files, json_variant, mismatches, parse_cases, run_case


def main() -> int:
    paths = [Path(arg) for arg in sys.argv[1:]] or case_files()
    failed = 0
    for path in paths:
        text_cases = parse_cases(path)
        for case in text_cases + [json for json in map(json_variant, text_cases) if json is not None]:
            filled, run = run_case(case, [str(ORACLE)], compile_first=False)
            # bpftrace prints warnings about this VM (no available_filter_functions, RLIMIT_MEMLOCK).
            run.stderr = "".join(line for line in run.stderr.splitlines(True) if not line.startswith("WARNING"))
            problems = mismatches(filled, run)
            if problems and case.bpftrace_differs:
                print(f"differs on purpose: {case.origin}: {case.bpftrace_differs}")
                continue
            print(f"{'DIFFERS' if problems else 'same   '} {case.origin}")
            for problem in problems:
                print("    " + problem.replace("\n", "\n    "))
            failed += bool(problems)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
