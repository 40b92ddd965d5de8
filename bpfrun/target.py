"""`bpfrun --describe-target`: this host, described for `bpftc --target` (common/target.py): its
kernel's BTF, every tracepoint's fields, the probe kinds it can attach."""

from __future__ import annotations

import os
from pathlib import Path

from bpfrun import tracefs
from bpfrun.errors import UserError
from common import schema
from common.target import MAX_BTF_BYTES, Target, parse_format, to_json

KERNEL_BTF = Path("/sys/kernel/btf/vmlinux")
UPROBE_PMU = Path("/sys/bus/event_source/devices/uprobe")
CPU_PMU = Path("/sys/bus/event_source/devices/cpu")  # hardware counters
# Always there on a kernel that runs bpfrun at all (tracepoints, perf events, BPF test runs).
_BASE_KINDS = (schema.BEGIN, schema.END, schema.TRACEPOINT, schema.RAWTRACEPOINT, schema.INTERVAL, schema.PROFILE,
               schema.SOFTWARE, schema.SIGNAL)  # fmt: skip


def describe_target() -> str:
    try:
        btf = KERNEL_BTF.read_bytes()[: MAX_BTF_BYTES + 1]
    except OSError as error:
        raise UserError(f"cannot read {KERNEL_BTF}: {error.strerror} (a kernel without BTF cannot run CO-RE bundles)") from None
    uname = os.uname()
    target = Target(uname.release, uname.machine, btf, _tracepoint_fields(), _probe_kinds())
    return to_json(target) + "\n"


def _tracepoint_fields() -> dict[str, list]:
    events = Path(tracefs.events_directory())
    fields = {}
    for format_file in sorted(events.glob("*/*/format")):
        category, event = format_file.parent.parent.name, format_file.parent.name
        try:
            fields[f"{category}:{event}"] = parse_format(format_file.read_text(errors="replace"))
        except OSError:
            continue
    return fields


def _probe_kinds() -> tuple[str, ...]:
    kinds = list(_BASE_KINDS)
    if tracefs.kprobes_available():
        kinds += [schema.KPROBE, schema.KRETPROBE]
    if UPROBE_PMU.exists():
        kinds += [schema.UPROBE, schema.URETPROBE]
    if CPU_PMU.exists():
        kinds.append(schema.HARDWARE)
    return tuple(kinds)
