"""Checks of this host against what a bundle needs, before anything is loaded: each finds every
missing piece at once, so that one message names them all (not a verifier log about the first).
"""

from __future__ import annotations

from bpfrun.errors import UserError
from common import btf as btf_format

HOST_BTF = "/sys/kernel/btf/vmlinux"


def missing_kernel_fields(fields: tuple[str, ...], btf_path: str = HOST_BTF) -> list[str]:
    """The "struct NAME.FIELD" entries this host's BTF lacks (all of them without a BTF)."""
    if not fields:
        return []
    try:
        btf = btf_format.Btf.from_file(btf_path)
    except (OSError, btf_format.BtfError):
        return list(fields)
    missing = []
    for entry in fields:
        struct_part, _, field = entry.partition(".")
        kind_name, _, name = struct_part.partition(" ")
        kind = btf_format.UNION if kind_name == "union" else btf_format.STRUCT
        if not btf.has_field(kind, name, field):
            missing.append(entry)
    return missing


def different_kernel_layouts(layouts: tuple[str, ...], btf_path: str = HOST_BTF) -> list[str]:
    """The "struct NAME DIGEST" entries (schema.Requirements.kernel_layouts) this host's BTF lays
    out differently, or lacks; as "struct NAME"."""
    if not layouts:
        return []
    try:
        btf = btf_format.Btf.from_file(btf_path)
    except (OSError, btf_format.BtfError):
        return [entry.rpartition(" ")[0] for entry in layouts]
    different = []
    for entry in layouts:
        struct_part, _, digest = entry.rpartition(" ")
        kind_name, _, name = struct_part.partition(" ")
        try:
            found = btf.find(btf_format.UNION if kind_name == "union" else btf_format.STRUCT, name)
            if found is None and btf.find(btf_format.TYPEDEF, name) is not None:  # atomic_t
                found = btf.strip(btf.find(btf_format.TYPEDEF, name).id)
            same = found is not None and btf_format.layout_digest(btf, found) == digest
        except btf_format.BtfError:
            same = False
        if not same:
            different.append(struct_part)
    return different


def check_kernel_fields(fields: tuple[str, ...], layouts: tuple[str, ...] = ()) -> None:
    missing = missing_kernel_fields(fields)
    if missing:
        raise UserError(f"this kernel's BTF ({HOST_BTF}) lacks what the bundle reads: {', '.join(missing)}")
    different = different_kernel_layouts(layouts)
    if different:
        raise UserError(
            f"this kernel lays out {', '.join(different)} differently from the kernel the bundle was compiled "
            "against, and the bundle copies it whole: compile it again with bpftc --btf (or --target) of this host"
        )


# The BPF program type of each probe kind's programs (enum bpf_prog_type), to ask the kernel which
# helpers it offers them.
_PROGRAM_TYPES = {
    "tracepoint": 5, "kprobe": 2, "kretprobe": 2, "uprobe": 2, "uretprobe": 2, "usdt": 2,
    "profile": 7, "interval": 7, "software": 7, "hardware": 7,
    "rawtracepoint": 17, "begin": 17, "end": 17, "self": 17,
}  # fmt: skip


def missing_helpers(requirements) -> list[str]:
    """The helpers a bundle calls that this kernel offers none of its program types (asked with
    libbpf_probe_bpf_helper, which loads a tiny program; an answer it cannot give counts as yes)."""
    from bpfrun.libbpf import lib
    from common.schema import BPF_HELPERS

    numbers = {name: number for number, name in BPF_HELPERS.items()}
    types = {_PROGRAM_TYPES[kind] for kind in requirements.probe_kinds if kind in _PROGRAM_TYPES}
    if not types:
        return []
    return [
        helper
        for helper in requirements.helpers
        if helper in numbers and all(lib.libbpf_probe_bpf_helper(t, numbers[helper], None) == 0 for t in types)
    ]


def host_problems(resources) -> list[str]:
    """`bpfrun --check`: everything this host lacks for the bundle, in one pass: its architecture,
    probe kinds, tracepoints, binaries and functions, USDT probes, kernel struct fields."""
    import os

    from bpfrun.attach import PROVIDERS, expand_usdt, expand_wildcards

    problems = []
    if resources.requirements.arch != os.uname().machine:
        problems.append(f"bundle was built for {resources.requirements.arch}, this host is {os.uname().machine}")
    for probe in resources.probes:
        try:
            for expanded in expand_usdt(expand_wildcards([probe])):
                PROVIDERS[expanded.provider].check(expanded)
        except UserError as error:
            problems.append(str(error))
    problems += [f"kernel BTF lacks {field}" for field in missing_kernel_fields(resources.requirements.kernel_fields)]
    problems += [f"kernel lacks the BPF helper {helper}" for helper in missing_helpers(resources.requirements)]
    problems += [
        f"kernel lays out {struct} differently from the kernel compiled against"
        for struct in different_kernel_layouts(resources.requirements.kernel_layouts)
    ]
    return problems
