"""DWARF metadata that makes LLVM's BPF backend emit BTF for our maps.

libbpf (1.0 and later) only knows BTF-defined maps: a global in section `.maps` whose BTF type is a
struct of pointer-typed members, each member encoding one attribute in its pointee's array length
(`int (*type)[BPF_MAP_TYPE_HASH]`, as libbpf's `__uint()` macro does in C). LLVM derives that BTF
from the debug info of the global, so every map gets a DIGlobalVariable with such a struct type.
"""

from __future__ import annotations

from llvmlite import ir

_I32 = ir.IntType(32)


class DebugInfo:
    """Owns the module's compile unit and the list of globals it describes."""

    def __init__(self, module: ir.Module, file_name: str) -> None:
        self.module = module
        self.file = module.add_debug_info("DIFile", {"filename": file_name, "directory": "."})
        self.int_type = module.add_debug_info(
            "DIBasicType", {"name": "int", "size": 32, "encoding": ir.DIToken("DW_ATE_signed")}
        )
        self.globals: list[ir.DIValue] = []

    def describe_map(self, variable: ir.GlobalVariable, attributes: dict[str, int]) -> None:
        """Attach BTF map-definition debug info to `variable`: {'type': 1, 'max_entries': 4096, ...}."""
        members = [self._uint_member(name, value, index * 64) for index, (name, value) in enumerate(attributes.items())]
        struct = self.module.add_debug_info(
            "DICompositeType",
            {
                "tag": ir.DIToken("DW_TAG_structure_type"),
                "file": self.file,
                "size": 64 * len(members),
                "elements": self.module.add_metadata(members),
            },
        )
        # The scope is the file, not the compile unit, so the unit can be created last with the
        # full list of globals (llvmlite metadata cannot be changed once made).
        variable_info = self.module.add_debug_info(
            "DIGlobalVariable",
            {
                "name": variable.name,
                "scope": self.file,
                "file": self.file,
                "line": 0,
                "type": struct,
                "isLocal": False,
                "isDefinition": True,
            },
            is_distinct=True,
        )
        expression = self.module.add_debug_info(
            "DIGlobalVariableExpression", {"var": variable_info, "expr": self.module.add_debug_info("DIExpression", {})}
        )
        variable.set_metadata("dbg", expression)
        self.globals.append(expression)

    def finish(self) -> None:
        """Create the compile unit and the module flags; call once, after the last map."""
        unit = self.module.add_debug_info(
            "DICompileUnit",
            {
                "language": ir.DIToken("DW_LANG_C99"),
                "file": self.file,
                "producer": "bpftc",
                "isOptimized": True,
                "runtimeVersion": 0,
                "emissionKind": ir.DIToken("FullDebug"),
                "globals": self.module.add_metadata(self.globals),
            },
            is_distinct=True,
        )
        self.module.add_named_metadata("llvm.dbg.cu", unit)
        self.module.add_named_metadata(
            "llvm.module.flags", self.module.add_metadata([_I32(7), "Dwarf Version", _I32(4)])
        )
        self.module.add_named_metadata(
            "llvm.module.flags", self.module.add_metadata([_I32(2), "Debug Info Version", _I32(3)])
        )

    def _uint_member(self, name: str, value: int, offset: int) -> ir.DIValue:
        subrange = self.module.add_debug_info("DISubrange", {"count": value})
        array = self.module.add_debug_info(
            "DICompositeType",
            {
                "tag": ir.DIToken("DW_TAG_array_type"),
                "baseType": self.int_type,
                "size": 32 * value,
                "elements": self.module.add_metadata([subrange]),
            },
        )
        pointer = self.module.add_debug_info(
            "DIDerivedType", {"tag": ir.DIToken("DW_TAG_pointer_type"), "baseType": array, "size": 64}
        )
        return self.module.add_debug_info(
            "DIDerivedType",
            {
                "tag": ir.DIToken("DW_TAG_member"),
                "name": name,
                "file": self.file,
                "baseType": pointer,
                "size": 64,
                "offset": offset,
            },
        )
