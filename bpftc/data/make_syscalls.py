"""Write syscalls.json: the fields of every syscalls:sys_enter_* and sys_exit_* tracepoint, read
from tracefs's format files (as root, on any recent x86_64 kernel).

bpftc reads `args` of the syscall tracepoints from that file, not from the host: tracefs is
readable by root only, and BTF has no struct for these records. Their layout follows the stable
syscall ABI (`__syscall_nr`, then each argument in 8 bytes), so one table serves every kernel;
a syscall the table lacks is reported by bpftc, and regenerating the table adds it:

    sudo .venv/bin/python bpftc/data/make_syscalls.py > bpftc/data/syscalls.json
"""

import json
import pathlib
import sys

from common.target import parse_format

EVENTS = pathlib.Path("/sys/kernel/tracing/events/syscalls")


def main() -> None:
    table = {path.name: parse_format((path / "format").read_text()) for path in sorted(EVENTS.iterdir()) if path.is_dir()}
    lines = [f"{json.dumps(name)}: {json.dumps(table[name])}" for name in table]  # one tracepoint a line
    sys.stdout.write("{\n" + ",\n".join(lines) + "\n}\n")


if __name__ == "__main__":
    main()
