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


def check_kernel_fields(fields: tuple[str, ...]) -> None:
    missing = missing_kernel_fields(fields)
    if missing:
        raise UserError(f"this kernel's BTF ({HOST_BTF}) lacks what the bundle reads: {', '.join(missing)}")


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
    return problems
