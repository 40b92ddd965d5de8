"""Hand-made BPF ELF objects for bpfrun tests that need what the compiler never produces.

Built with llvmlite (tests may import it; bpfrun never does): one raw_tp program named `bad`
that reads memory through an integer, which the verifier rejects ("invalid mem access").
"""

from __future__ import annotations

import llvmlite.binding as llvm
import llvmlite.ir as ir


def verifier_rejected_elf() -> bytes:
    i64 = ir.IntType(64)
    module = ir.Module(name="bad")
    module.triple = "bpfel"
    module.data_layout = "e-m:e-p:64:64-i64:64-i128:128-n32:64-S128"
    license_type = ir.ArrayType(ir.IntType(8), 4)
    license_variable = ir.GlobalVariable(module, license_type, "LICENSE")
    license_variable.initializer = ir.Constant(license_type, bytearray(b"GPL\0"))
    license_variable.section = "license"
    function = ir.Function(module, ir.FunctionType(i64, [ir.PointerType()]), "bad")
    function.section = "raw_tp"
    function.attributes.add("nounwind")  # no .eh_frame, as bpftc writes its objects
    builder = ir.IRBuilder(function.append_basic_block("entry"))
    address = builder.inttoptr(builder.add(builder.ptrtoint(function.args[0], i64), i64(1 << 40)), ir.PointerType())
    builder.ret(builder.load(address, typ=i64, name="value"))
    llvm.initialize_all_targets()
    llvm.initialize_all_asmprinters()
    parsed = llvm.parse_assembly(str(module))
    parsed.verify()
    machine = llvm.Target.from_triple("bpfel").create_target_machine(cpu="v3", opt=0, reloc="static", codemodel="small")
    return machine.emit_object(parsed)
