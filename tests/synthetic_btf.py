"""A BTF file of our own making, for compiling against a kernel layout that is not this one.

LLVM's BPF backend writes BTF from debug info; this builds a module whose only global has the
struct described, emits it, and cuts the .BTF section out of the ELF object. A struct is given
as its name, its size in bytes and its members (name, byte offset, kind): kind is 'int', 'long'
(64-bit signed), 'char[16]', 'pointer to NAME' (a forward declaration of struct NAME: llvmlite
cannot build the cycle of a struct pointing to itself, and BTF users look structs up by name), or
'bitfield:BITS:BIT' (an unsigned int bitfield of BITS bits, starting BIT bits after the offset).
"""

from __future__ import annotations

import os
import struct

os.environ.setdefault("LLVMLITE_ENABLE_IR_LAYER_TYPED_POINTERS", "0")

from llvmlite import ir  # noqa: E402

from bpftc.codegen.debuginfo import DebugInfo  # noqa: E402
from bpftc.emit import emit  # noqa: E402

Member = tuple[str, int, str]


def build_btf(structs: dict[str, tuple[int, list[Member]]]) -> bytes:
    module = ir.Module("synthetic")
    module.triple = "bpfel"
    debug_info = DebugInfo(module, "synthetic.c")
    composites = {name: _composite(module, debug_info, name, size) for name, (size, _) in structs.items()}
    for name, (_, members) in structs.items():
        elements = [_member(module, debug_info, composites, *member) for member in members]
        composites[name].operands = (*composites[name].operands, ("elements", module.add_metadata(elements)))
    for index, composite in enumerate(composites.values()):
        pointer = module.add_debug_info(
            "DIDerivedType", {"tag": ir.DIToken("DW_TAG_pointer_type"), "baseType": composite, "size": 64}
        )
        variable = ir.GlobalVariable(module, ir.IntType(64), f"keep_{index}")
        variable.initializer = ir.Constant(ir.IntType(64), 0)
        _describe_global(module, debug_info, variable, pointer)
    debug_info.finish()
    return _section(emit(module), b".BTF")


def _composite(module: ir.Module, debug_info: DebugInfo, name: str, size: int) -> ir.DIValue:
    return module.add_debug_info(
        "DICompositeType",
        {"tag": ir.DIToken("DW_TAG_structure_type"), "name": name, "file": debug_info.file, "size": size * 8},
        is_distinct=True,
    )


def _member(module, debug_info, _composites, name: str, offset: int, kind: str) -> ir.DIValue:
    if kind.startswith("bitfield:"):
        bits, bit = map(int, kind.split(":")[1:])
        unsigned = module.add_debug_info(
            "DIBasicType", {"name": "unsigned int", "size": 32, "encoding": ir.DIToken("DW_ATE_unsigned")}
        )
        return module.add_debug_info(
            "DIDerivedType",
            {
                "tag": ir.DIToken("DW_TAG_member"),
                "name": name,
                "file": debug_info.file,
                "baseType": unsigned,
                "size": bits,
                "offset": offset * 8 + bit,
                "flags": ir.DIToken("DIFlagBitField"),
                "extraData": ir.IntType(64)(offset * 8),
            },
        )
    if kind.startswith("pointer to "):
        declaration = module.add_debug_info(
            "DICompositeType",
            {"tag": ir.DIToken("DW_TAG_structure_type"), "name": kind[11:], "flags": ir.DIToken("DIFlagFwdDecl")},
        )
        base = module.add_debug_info(
            "DIDerivedType", {"tag": ir.DIToken("DW_TAG_pointer_type"), "baseType": declaration, "size": 64}
        )
        size = 64
    elif kind == "char[16]":
        char = module.add_debug_info(
            "DIBasicType", {"name": "char", "size": 8, "encoding": ir.DIToken("DW_ATE_signed_char")}
        )
        subrange = module.add_debug_info("DISubrange", {"count": 16})
        base = module.add_debug_info(
            "DICompositeType",
            {
                "tag": ir.DIToken("DW_TAG_array_type"),
                "baseType": char,
                "size": 128,
                "elements": module.add_metadata([subrange]),
            },
        )
        size = 128
    else:
        size = {"int": 32, "long": 64}[kind]
        base = module.add_debug_info(
            "DIBasicType", {"name": kind, "size": size, "encoding": ir.DIToken("DW_ATE_signed")}
        )
    return module.add_debug_info(
        "DIDerivedType",
        {
            "tag": ir.DIToken("DW_TAG_member"),
            "name": name,
            "file": debug_info.file,
            "baseType": base,
            "size": size,
            "offset": offset * 8,
        },
    )


def _describe_global(module, debug_info: DebugInfo, variable, type_info) -> None:
    info = module.add_debug_info(
        "DIGlobalVariable",
        {
            "name": variable.name,
            "scope": debug_info.file,
            "file": debug_info.file,
            "line": 0,
            "type": type_info,
            "isLocal": False,
            "isDefinition": True,
        },
        is_distinct=True,
    )
    expression = module.add_debug_info(
        "DIGlobalVariableExpression", {"var": info, "expr": module.add_debug_info("DIExpression", {})}
    )
    variable.set_metadata("dbg", expression)
    debug_info.globals.append(expression)


def _section(elf: bytes, wanted: bytes) -> bytes:
    """The bytes of the section named `wanted` in a 64-bit little-endian ELF."""
    section_offset, = struct.unpack_from("<Q", elf, 0x28)
    entry_size, count, names_index = struct.unpack_from("<HHH", elf, 0x3A)
    headers = [struct.unpack_from("<IIQQQQIIQQ", elf, section_offset + i * entry_size) for i in range(count)]
    names = headers[names_index]
    for header in headers:
        name_start = names[4] + header[0]
        if elf[name_start : elf.index(b"\0", name_start)] == wanted:
            return elf[header[4] : header[4] + header[5]]
    raise LookupError(wanted)
