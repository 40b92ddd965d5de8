"""Benchmarks of bpftc + bpfrun against bpftrace, side by side in one run. See bench/README.md.

    sudo .venv/bin/python bench/run.py [events|startup|compile|printf|mapprint|all]...
                                       [--quick] [--rounds N] [--markdown FILE] [--dump-dir DIR] [-v]

Each benchmark alternates the two tools round by round and prints medians and the ratio
bpftc/bpftrace, with the project's target for that ratio where it has one.
"""

from __future__ import annotations

import argparse
import datetime
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import compiletime  # noqa: E402
import events  # noqa: E402
import mapprint  # noqa: E402
import printf  # noqa: E402
import startup  # noqa: E402
from lib import ROOT, BenchError, Options, Tools, kernel_command  # noqa: E402

BENCHMARKS = {
    "events": events.run,
    "startup": startup.run,
    "compile": compiletime.run,
    "printf": printf.run,
    "mapprint": mapprint.run,
}


def describe(tools: Tools) -> list[str]:
    """Which bpftrace, and which revision of bpftc/bpfrun (with its uncommitted changes, if any)."""
    version = subprocess.run([tools.bpftrace, "--version"], capture_output=True, text=True).stdout.strip()
    lines = [f"bpftrace: {version or '?'} ({tools.bpftrace})"]
    git = ["git", "-C", str(ROOT)]
    revision = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    if revision:
        changed = subprocess.run([*git, "status", "--porcelain", "--untracked-files=no", "--", "bpftc", "bpfrun",
                                  "common"], capture_output=True, text=True).stdout.split("\n")
        changed = [line[3:] for line in changed if line.strip()]
        lines.append(f"bpftc/bpfrun: commit {revision}" + (f", with uncommitted changes to {len(changed)} files "
                                                          f"({', '.join(changed[:6])}{', ...' if len(changed) > 6 else ''})"
                                                          if changed else ""))
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    # No `choices`: argparse checks them against the default list as a whole, and refuses it.
    parser.add_argument("benchmarks", nargs="*", default=["all"],
                        metavar="BENCHMARK", help=f"{', '.join(BENCHMARKS)} or all (default)")
    parser.add_argument("--quick", action="store_true", help="a fast smoke run: fewer rounds, fewer events")
    parser.add_argument("--rounds", type=int, help="rounds per benchmark (default 5; 1 with --quick)")
    parser.add_argument("--bpftrace", help="the bpftrace to compare with (default: the oracle wrapper, "
                                           "else bpftrace on PATH)")
    parser.add_argument("--markdown", type=Path, help="also write the tables, in Markdown, to this file")
    parser.add_argument("--dump-dir", type=Path, help="events: save each program's `bpftool prog dump xlated` here")
    parser.add_argument("-v", "--verbose", action="store_true", help="say what runs as it runs")
    arguments = parser.parse_args(argv)
    if os.geteuid() != 0:
        parser.error("run as root (BPF): sudo .venv/bin/python bench/run.py ...")
    unknown = set(arguments.benchmarks) - {*BENCHMARKS, "all"}
    if unknown:
        parser.error(f"unknown benchmark: {', '.join(sorted(unknown))} (choose from {', '.join(BENCHMARKS)}, all)")
    names = list(BENCHMARKS) if "all" in arguments.benchmarks else list(dict.fromkeys(arguments.benchmarks))
    rounds = arguments.rounds or (1 if arguments.quick else 5)
    options = Options(quick=arguments.quick, rounds=rounds, verbose=arguments.verbose, dump_dir=arguments.dump_dir)
    if options.dump_dir is not None:
        options.dump_dir.mkdir(parents=True, exist_ok=True)

    started = datetime.datetime.now(datetime.timezone.utc)
    command = "sudo .venv/bin/python bench/run.py " + shlex.join(argv if argv is not None else sys.argv[1:])
    header = [f"date: {started:%Y-%m-%d %H:%M} UTC", f"machine: {kernel_command()} ({os.uname().machine})",
              f"command: {command}"]
    print("\n".join(header), flush=True)
    tables = []
    status = 0
    try:
        tools = Tools(arguments.bpftrace)
    except BenchError as error:
        print(f"bench: {error}", file=sys.stderr)
        return 1
    try:
        header += describe(tools)
        print("\n".join(header[3:]), flush=True)
        for name in names:
            begin = time.perf_counter()
            print(f"\n[{name}]", flush=True)
            try:
                produced = BENCHMARKS[name](tools, options)
            except BenchError as error:
                print(f"{name}: could not be measured: {error}", flush=True)
                status = 1
                continue
            for table in produced:
                print(table.text(), flush=True)
            tables += produced
            print(f"({name}: {time.perf_counter() - begin:.0f} s)", flush=True)
    finally:
        tools.close()
    if arguments.markdown:
        arguments.markdown.write_text("\n".join(f"- {line}" for line in header) + "\n\n"
                                      + "\n".join(t.markdown() for t in tables))
    return status


if __name__ == "__main__":
    sys.exit(main())
