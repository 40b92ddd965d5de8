"""Emit: an LLVM module → a BPF ELF object (little-endian, with BTF), through llvmlite.binding.

Consumes an `ir.Module`; produces the object's bytes (or, for `--dump emit`, its BPF assembly).
LLVM rejecting the module is a compiler bug.
"""

from __future__ import annotations

import functools
import re

import llvmlite.binding as llvm
from llvmlite import ir

# v3 adds 32-bit jumps and ALU ops (kernel 5.1); v4 (kernel 6.6) would narrow which hosts can run a
# bundle, so it is not used.
CPU = "v3"


@functools.cache
def _target_machine() -> llvm.TargetMachine:
    # llvm.initialize() raises in recent llvmlite; targets and printers are enough to emit.
    llvm.initialize_all_targets()
    llvm.initialize_all_asmprinters()
    target = llvm.Target.from_triple("bpfel")
    return target.create_target_machine(cpu=CPU, opt=2, reloc="static", codemodel="small")


def _optimized(module: ir.Module) -> llvm.ModuleRef:
    parsed = llvm.parse_assembly(_without_builtins(str(module)))
    parsed.verify()
    machine = _target_machine()
    tuning = llvm.create_pipeline_tuning_options(speed_level=2)
    passes = llvm.create_pass_builder(machine, tuning)
    passes.getModulePassManager().run(parsed, passes)
    return parsed


def _without_builtins(text: str) -> str:
    """Mark every function "no-builtins": otherwise LLVM merges runs of stores into calls to memset
    or memcpy, which BPF does not have ("A call to built-in function 'memset' is not supported",
    a fatal error). llvmlite cannot set string attributes, hence the text."""
    marked = re.sub(r"^(define [^\n]*\)) nounwind ", r'\1 nounwind "no-builtins" ', text, flags=re.MULTILINE)
    assert marked.count('"no-builtins"') == text.count("\ndefine "), "a function without nounwind"
    return marked


def emit(module: ir.Module) -> bytes:
    return _target_machine().emit_object(_optimized(module))


def assembly(module: ir.Module) -> str:
    return _target_machine().emit_assembly(_optimized(module))
