"""Emit: an LLVM module → a BPF ELF object (little-endian, with BTF), through llvmlite.binding.

Consumes an `ir.Module`; produces the object's bytes (or, for `--dump emit`, its BPF assembly).
LLVM's BPF backend ends the process when a program does not fit BPF (more than 512 bytes of
stack): the code of a long function (where that can happen) is generated in a child process,
whose end is then an `EmitError` with LLVM's words, a diagnostic like any other. Short ones are
generated here: a fork costs a compile about 20 ms.
"""

from __future__ import annotations

import functools
import os
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


class EmitError(Exception):
    """LLVM could not make BPF code of the program (its message, one line)."""


LONG_FUNCTION = 1500  # IR instructions in a function from which BPF's stack may not hold it


def emit(module: ir.Module) -> bytes:
    return _guarded(module, lambda: _target_machine().emit_object(_optimized(module)))


def assembly(module: ir.Module) -> str:
    return _guarded(module, lambda: _target_machine().emit_assembly(_optimized(module)).encode()).decode()


def _guarded(module: ir.Module, make) -> bytes:
    long = any(sum(len(block.instructions) for block in function.blocks) > LONG_FUNCTION for function in module.functions)
    return _in_child(make) if long else make()


def _in_child(make) -> bytes:
    """make() run in a forked child, its bytes read back through a pipe; LLVM's fatal errors end
    only the child, and what it printed on stderr becomes an EmitError."""
    output, errors = os.pipe(), os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: write the bytes, or die as LLVM makes it
        status = 1
        try:
            os.close(output[0])
            os.close(errors[0])
            os.dup2(errors[1], 2)
            data = make()
            with os.fdopen(output[1], "wb") as pipe:
                pipe.write(data)
            status = 0
        finally:
            os._exit(status)
    os.close(output[1])
    os.close(errors[1])
    with os.fdopen(output[0], "rb") as pipe, os.fdopen(errors[0], "rb") as messages:
        data = pipe.read()
        said = messages.read(1 << 16).decode("utf-8", "replace")
    _, status = os.waitpid(pid, 0)
    if status != 0:
        lines = [line.removeprefix("error: ").removeprefix("<unknown>:0:0: ") for line in said.splitlines() if line.strip()]
        raise EmitError(lines[0] if lines else f"LLVM failed (status {status})")
    return data
