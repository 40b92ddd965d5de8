"""The compiler's stages, in order. Each stage does one thing; the pipeline stops after the first
stage that reported an error. `--dump STAGE` prints what a stage produced and stops there.

    preprocess → parse → macros → desugar → probes → resolve → check → convert → resources → generate → emit → bundle
"""

from __future__ import annotations

import json

from bpftc.arch import X86_64, Arch
from bpftc.bundle import write_bundle
from bpftc.diagnostics import Diagnostics
from bpftc.kernel import DEFAULT_BTF, KernelTypes
from bpftc.parse import parse
from bpftc.passes.check import check
from bpftc.passes.convert import convert
from bpftc.passes.desugar import desugar
from bpftc.passes.macros import expand_macros
from bpftc.passes.probes import resolve_probes
from bpftc.passes.resolve import resolve
from bpftc.passes.resources import plan_resources
from bpftc.preprocess import preprocess
from bpftc.printer import print_ast
from bpftc.source import Source
from common import schema
from common.record import record, replace
from common.target import Target

STAGES = (
    "preprocess",
    "parse",
    "macros",
    "desugar",
    "probes",
    "resolve",
    "check",
    "convert",
    "resources",
    "generate",
    "emit",
    "bundle",
)


@record
class Result:
    diagnostics: Diagnostics
    bundle: bytes | None = None
    dump: str | None = None  # what --dump asked for


def compile_source(
    source: Source,
    arch: Arch = X86_64,
    dump: str | None = None,
    unsafe: bool = False,
    btf: str = DEFAULT_BTF,
    target: Target | None = None,
    signing_key=None,
) -> Result:
    """Run every stage on `source`; stop early on errors or after the stage named by `dump`.
    `unsafe` allows the functions that act outside tracing (system()); `btf` is the kernel BTF
    that kernel data layouts come from (bpftc/kernel.py), unless a `target` description has one."""
    assert dump is None or dump in STAGES, dump
    diagnostics = Diagnostics()
    result = Result(diagnostics)

    def stop_after(stage: str, text) -> bool:
        """True when the pipeline ends here: errors were reported, or `stage` is the one to dump."""
        if diagnostics.has_errors:
            return True
        if dump == stage:
            result.dump = text()
            return True
        return False

    script = source  # as written: what the bundle carries
    source = preprocess(source, diagnostics)
    if stop_after("preprocess", lambda: source.text):
        return result
    program = parse(source, diagnostics)
    if program is None or stop_after("parse", lambda: print_ast(program)):
        return result
    program = expand_macros(program, diagnostics)
    if stop_after("macros", lambda: print_ast(program)):
        return result
    program = desugar(program)
    if stop_after("desugar", lambda: print_ast(program)):
        return result
    targets = resolve_probes(program, diagnostics, target.probe_kinds if target else None)
    if stop_after("probes", lambda: "\n".join(repr(target) for target in targets.values()) + "\n"):
        return result
    resolution = resolve(program, targets, KernelTypes(btf, target))
    if stop_after("resolve", lambda: print_ast(program, resolution.types)):
        return result
    check(program, targets, resolution, diagnostics, unsafe)
    if stop_after("check", lambda: print_ast(program, resolution.types)):
        return result
    program, resolution = convert(program, resolution)
    if stop_after("convert", lambda: print_ast(program, resolution.types)):
        return result
    plan = plan_resources(program, targets, resolution, source, arch)
    if stop_after("resources", lambda: json.dumps(schema.to_dict(plan.resources), indent=1) + "\n"):
        return result
    from bpftc.codegen.generate import generate  # imports llvmlite: only when the script is valid
    from bpftc.emit import EmitError, assembly, emit

    module, helpers = generate(program, resolution, plan, arch, source.name, diagnostics)
    if stop_after("generate", lambda: str(module)):
        return result
    try:
        elf = emit(module)
        if stop_after("emit", lambda: assembly(module)):
            return result
    except EmitError as error:  # a program LLVM cannot make BPF of (too much stack)
        where = next((plan.probe.span for plan in plan.programs if f"function {plan.spec.program} " in str(error)), program.span)
        message = str(error).split("): ", 1)[-1].split(". ")[0]  # LLVM's first sentence, without its advice
        diagnostics.error(where, f"LLVM cannot compile this probe for BPF: {message}")
        return result
    requirements = replace(plan.resources.requirements, helpers=helpers)
    kept = script.text if plan.resources.source else ""  # resources.py leaves out one too large
    resources = replace(plan.resources, requirements=requirements, source=kept)
    result.bundle = write_bundle(resources, elf, signing_key)
    if dump == "bundle":
        result.dump = f"{len(result.bundle)} bytes\n"
    return result
