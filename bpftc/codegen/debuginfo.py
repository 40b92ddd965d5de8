"""DWARF metadata that makes LLVM's BPF backend emit BTF for our maps and functions.

libbpf (1.0 and later) only knows BTF-defined maps: a global in section `.maps` whose BTF type is a
struct of pointer-typed members, each member encoding one attribute in its pointee's array length
(`int (*type)[BPF_MAP_TYPE_HASH]`, as libbpf's `__uint()` macro does in C). LLVM derives that BTF
from the debug info of the global, so every map gets a DIGlobalVariable with such a struct type.

Every function gets a DISubprogram too, from which LLVM writes BTF func_info (.BTF.ext): the
kernel wants it for a program with subprograms (a for-map body is a callback) and refuses the
load otherwise ("missing btf func_info").
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
        self.functions: list[ir.Function] = []

    def describe_function(self, function: ir.Function) -> None:
        """Give `function` (its arguments pointers or i64s, returning an i64) a DISubprogram at finish()."""
        self.functions.append(function)

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
        for function in self.functions:
            function.set_metadata("dbg", self._subprogram(function, unit))
        self.module.add_named_metadata(
            "llvm.module.flags", self.module.add_metadata([_I32(7), "Dwarf Version", _I32(4)])
        )
        self.module.add_named_metadata(
            "llvm.module.flags", self.module.add_metadata([_I32(2), "Debug Info Version", _I32(3)])
        )

    def _subprogram(self, function: ir.Function, unit: ir.DIValue) -> ir.DIValue:
        long_type = self.module.add_debug_info(
            "DIBasicType", {"name": "long", "size": 64, "encoding": ir.DIToken("DW_ATE_signed")}
        )
        pointer = self.module.add_debug_info(
            "DIDerivedType", {"tag": ir.DIToken("DW_TAG_pointer_type"), "baseType": None, "size": 64}
        )
        types = [long_type if isinstance(argument.type, ir.IntType) else pointer for argument in function.args]
        signature = self.module.add_debug_info("DISubroutineType", {"types": self.module.add_metadata([long_type] + types)})
        local = function.linkage == "internal"
        flags = (
            "DISPFlagLocalToUnit | DISPFlagDefinition | DISPFlagOptimized"
            if local
            else "DISPFlagDefinition | DISPFlagOptimized"
        )
        subprogram = self.module.add_debug_info(
            "DISubprogram",
            {
                "name": function.name,
                "scope": self.file,
                "file": self.file,
                "line": 0,
                "type": signature,
                "scopeLine": 0,
                "flags": ir.DIToken("DIFlagPrototyped"),
                "spFlags": ir.DIToken(flags),
                "unit": unit,
            },
            is_distinct=True,
        )
        # The kernel refuses a BTF function whose arguments have no names ("Invalid arg#1"); LLVM
        # takes them from the subprogram's retained DILocalVariables, whose scope is the
        # subprogram itself: a cycle llvmlite cannot build, so the list is added to the
        # (distinct, never shared) subprogram once its variables exist.
        arguments = [
            self.module.add_debug_info(
                "DILocalVariable",
                {"name": f"arg{index}", "arg": index, "scope": subprogram, "file": self.file, "type": types[index - 1]},
            )
            for index in range(1, len(function.args) + 1)
        ]
        subprogram.operands = (*subprogram.operands, ("retainedNodes", self.module.add_metadata(arguments)))
        return subprogram

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
