"""The compiler's stages, in order. Each stage does one thing; the pipeline stops after the first
stage that reported an error.

    parse → desugar → probes → resolve → check → resources → generate (and its stack check) → emit → bundle
"""

from __future__ import annotations

from dataclasses import dataclass

from bpftc.arch import X86_64, Arch
from bpftc.bundle import write_bundle
from bpftc.codegen.generate import check_stack, generate
from bpftc.diagnostics import Diagnostics
from bpftc.emit import emit
from bpftc.parse import parse
from bpftc.passes.check import check
from bpftc.passes.desugar import desugar
from bpftc.passes.probes import resolve_probes
from bpftc.passes.resolve import resolve
from bpftc.passes.resources import plan_resources
from bpftc.printer import print_ast
from bpftc.source import Source

STAGES = ("parse", "desugar", "probes", "resolve", "check", "resources", "generate", "emit", "bundle")


@dataclass
class Result:
    diagnostics: Diagnostics
    bundle: bytes | None = None
    dump: str | None = None  # what --dump asked for


def compile_source(source: Source, arch: Arch = X86_64, dump: str | None = None) -> Result:
    """Run every stage on `source`; stop early on errors or after the stage named by `dump`."""
    diagnostics = Diagnostics()
    result = Result(diagnostics)
    program = parse(source, diagnostics)
    if program is None:
        return result
    if dump == "parse":
        result.dump = print_ast(program)
        return result
    program = desugar(program)
    targets = resolve_probes(program, diagnostics)
    if diagnostics.has_errors:
        return result
    resolution = resolve(program)
    check(program, targets, resolution, diagnostics)
    if diagnostics.has_errors:
        return result
    plan = plan_resources(program, targets, resolution, source.name, arch)
    if dump == "resources":
        result.dump = repr(plan.resources)
        return result
    generated = generate(program, resolution, plan, arch, source.name)
    check_stack(generated, diagnostics)
    if diagnostics.has_errors:
        return result
    if dump == "generate":
        result.dump = str(generated.module)
        return result
    result.bundle = write_bundle(plan.resources, emit(generated.module))
    return result
