"""Probes: validate every attach point and record its target (provider, parts, ELF section).

Consumes an `ast.Program`; produces {AttachPoint node: ProbeTarget}; reports invalid probe types,
wrong part counts and bad interval rates at the attach point.
"""

from __future__ import annotations

from bpftc import ast
from bpftc.diagnostics import Diagnostics
from bpftc.probes import ProbeTarget, describe

ProbeTargets = dict[ast.AttachPoint, ProbeTarget]


def resolve_probes(
    program: ast.Program, diagnostics: Diagnostics, probe_kinds: tuple[str, ...] | None = None
) -> ProbeTargets:
    """`probe_kinds`: what the target kernel can attach (a target description's), None: anything."""
    targets: ProbeTargets = {}
    for probe in program.probes:
        for attach_point in probe.attach_points:
            target = describe(attach_point)
            if isinstance(target, str):
                diagnostics.error(attach_point.span, target)
            elif probe_kinds is not None and target.provider not in probe_kinds:
                diagnostics.error(attach_point.span, f"The target kernel cannot attach {target.provider} probes")
            else:
                targets[attach_point] = target
    if not program.probes:
        diagnostics.error(program.span, "No probes to attach")
    return targets
