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
    problems += [
        f"kernel lays out {struct} differently from the kernel compiled against"
        for struct in different_kernel_layouts(resources.requirements.kernel_layouts)
    ]
    return problems
