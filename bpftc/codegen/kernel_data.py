"""Reading kernel data: fields of structs (the tracepoint record a program gets, kernel memory
behind a pointer) and strings from memory.

A field of a BTF struct is addressed with LLVM's `llvm.preserve.struct.access.index`, whose
debug-info metadata describes the struct as bpftc saw it: LLVM's BPF backend turns each into a
CO-RE relocation in .BTF.ext, and libbpf rewrites the offset for the kernel the bundle loads on
(by the names of the struct and its members). Only the members read are described, as C
programs do with `__attribute__((preserve_access_index))`. Fields of fixed layouts (the syscall
ABI, tracefs formats) are plain offsets.

Where the bytes are decides how they are read: the tracepoint record is the program's context,
read with direct loads at fixed offsets (the verifier wants the context's address unchanged
plus a constant); a relocated field of it, like any other memory, goes through
bpf_probe_read_kernel (or _user), which takes any address.

LLVM's BPF backend keeps the relocations it made in a process-wide table keyed by struct name
and access path, which a second module in the same process would find stale (and crash on):
each module names its structs with a flavor suffix of its own (`task_struct___bpftc3`), which
libbpf ignores when it matches them with the kernel's.
"""

from __future__ import annotations

import itertools

from llvmlite import ir

from common import btf as btf_format
from bpftc.codegen.builder import I32, I64, PTR, BpfBuilder
from bpftc.codegen.debuginfo import DebugInfo
from bpftc.kernel import Field, KernelTypes, StructLayout

PROBE_READ_USER = 112
PROBE_READ_KERNEL = 113
PROBE_READ_USER_STR = 114
PROBE_READ_KERNEL_STR = 115
GET_CURRENT_TASK = 35

CONTEXT, KERNEL, USER = "context", "kernel", "user"  # where a struct's bytes are
_ACCESS_INDEX = "llvm.preserve.struct.access.index.p0.p0"
_FIELD_INFO = "llvm.bpf.preserve.field.info.p0"
_BYTE_OFFSET, _BYTE_SIZE, _LSHIFT_U64, _RSHIFT_U64 = 0, 1, 4, 5  # enum bpf_field_info_kind
_ELEMENT = ir.LiteralStructType([I64])  # the intrinsic's IR element type; offsets come from the metadata
_MODULE_NUMBERS = itertools.count(1)


class _ElementType:
    """The `elementtype(T)` attribute the intrinsic's pointer argument needs: llvmlite's own
    attribute support wants typed pointers."""

    def __init__(self, element: ir.Type) -> None:
        self.element = element

    def _to_list(self, _type: ir.Type) -> list[str]:
        return [f"elementtype({self.element})"]


class KernelData:
    """Reads for one module: owns the debug-info descriptions of the structs it relocates."""

    def __init__(self, module: ir.Module, debug_info: DebugInfo, kernel: KernelTypes) -> None:
        self.module = module
        self.debug_info = debug_info
        self.kernel = kernel
        self._described: dict[tuple[int, tuple[int, ...]], list[ir.DIValue]] = {}
        self._flavor = f"___bpftc{next(_MODULE_NUMBERS)}"

    # Addresses

    def field_address(self, bpf: BpfBuilder, base: ir.Value, layout: StructLayout, field: Field) -> ir.Value:
        if not layout.btf_id:
            return bpf.at(base, field.offset)
        intrinsic = self.module.globals.get(_ACCESS_INDEX) or ir.Function(
            self.module, ir.FunctionType(PTR, [PTR, I32, I32]), _ACCESS_INDEX
        )
        address = base
        for structure in self._structs(layout.btf_id, field.core_path):
            call = bpf.ir.call(intrinsic, [address, I32(0), I32(0)], name="field")
            call.arg_attributes[0] = _ElementType(_ELEMENT)
            call.set_metadata("llvm.preserve.access.index", structure)
            address = call
        return address

    def read_bitfield(
        self, bpf: BpfBuilder, base: ir.Value, layout: StructLayout, field: Field, space: str, slot: ir.Value
    ) -> ir.Value:
        """A bitfield, read as libbpf's BPF_CORE_READ_BITFIELD_PROBED reads one: the bytes that
        hold it, at an offset and of a size relocated for the kernel it loads on, then shifted
        left and right by relocated amounts (signed or not), into `slot` (8 bytes) first."""
        member = self.field_address(bpf, base, layout, field)
        info = self.module.globals.get(_FIELD_INFO) or ir.Function(
            self.module, ir.FunctionType(I32, [PTR, I64]), _FIELD_INFO
        )

        def relocated(kind: int) -> ir.Value:
            return bpf.ir.zext(bpf.ir.call(info, [member, I64(kind)], name="field_info"), I64)

        bpf.store_i64(I64(0), slot)
        address = bpf.ir.add(bpf.ir.ptrtoint(base, I64), relocated(_BYTE_OFFSET), name="storage")
        size = bpf.ir.trunc(relocated(_BYTE_SIZE), I32)
        helper = PROBE_READ_USER if space == USER else PROBE_READ_KERNEL
        bpf.call_helper(helper, [slot, size, bpf.ir.inttoptr(address, PTR)], name="read")
        value = bpf.ir.shl(bpf.load_i64(slot), relocated(_LSHIFT_U64))
        right = relocated(_RSHIFT_U64)
        return bpf.ir.ashr(value, right) if field.type.signed else bpf.ir.lshr(value, right)

    def _structs(self, btf_id: int, path: tuple[int, ...]) -> list[ir.DIValue]:
        """One DICompositeType per step of `path`: each describes the member the step reads (as
        element 0), whose type is the next step's struct; the last member's type is its own."""
        key = (btf_id, path)
        if key in self._described:
            return self._described[key]
        btf = self.kernel.btf
        chain = [btf.type(btf_id)]
        for index in path[:-1]:
            chain.append(btf.strip(chain[-1].members[index].type_id))
        described: list[ir.DIValue] = []
        inner = None
        for structure, index in reversed(list(zip(chain, path))):
            member = structure.members[index]
            member_type = inner if inner is not None else self._type(member.type_id)
            size = btf.size_of(member.type_id) * 8
            description = {
                "tag": ir.DIToken("DW_TAG_member"),
                "name": member.name,
                "file": self.debug_info.file,
                "baseType": member_type,
                "size": size,
                "offset": member.bit_offset,
            }
            if member.bitfield_size:  # LLVM turns field-info calls on it into bitfield relocations
                description.update(size=member.bitfield_size, flags=ir.DIToken("DIFlagBitField"))
                description["extraData"] = I64(member.bit_offset // size * size)  # its storage unit
            element = self.module.add_debug_info("DIDerivedType", description)
            inner = self.module.add_debug_info("DICompositeType", self._composite(structure, [element]))
            described.insert(0, inner)
        self._described[key] = described
        return described

    def _composite(self, structure: btf_format.BtfType, elements: list[ir.DIValue]) -> dict:
        tag = "DW_TAG_union_type" if structure.kind == btf_format.UNION else "DW_TAG_structure_type"
        fields = {
            "tag": ir.DIToken(tag),
            "file": self.debug_info.file,
            "size": structure.size * 8,
            "elements": self.module.add_metadata(elements),
        }
        if structure.name:
            fields["name"] = structure.name + self._flavor
        return fields

    def _type(self, type_id: int) -> ir.DIValue:
        """Debug info for a member's own type: enough for libbpf to see the kinds match."""
        btf = self.kernel.btf
        found = btf.strip(type_id)
        if found.kind == btf_format.PTR:
            return self.module.add_debug_info(
                "DIDerivedType", {"tag": ir.DIToken("DW_TAG_pointer_type"), "baseType": None, "size": 64}
            )
        if found.kind == btf_format.ARRAY:
            subrange = self.module.add_debug_info("DISubrange", {"count": found.length})
            return self.module.add_debug_info(
                "DICompositeType",
                {
                    "tag": ir.DIToken("DW_TAG_array_type"),
                    "baseType": self._type(found.type_id),
                    "size": btf.size_of(type_id) * 8,
                    "elements": self.module.add_metadata([subrange]),
                },
            )
        if found.kind in (btf_format.STRUCT, btf_format.UNION):
            return self.module.add_debug_info("DICompositeType", self._composite(found, []))
        if found.kind in (btf_format.ENUM, btf_format.ENUM64):  # libbpf matches an enum only with an enum
            fields = {"tag": ir.DIToken("DW_TAG_enumeration_type"), "size": found.size * 8, "elements": self.module.add_metadata([])}
            if found.name:
                fields["name"] = found.name
            return self.module.add_debug_info("DICompositeType", fields)
        encoding = "DW_ATE_signed" if found.signed else "DW_ATE_unsigned"
        return self.module.add_debug_info(
            "DIBasicType",
            {"name": found.name or "int", "size": max(found.size, 1) * 8, "encoding": ir.DIToken(encoding)},
        )


# Reads


def load_scalar(bpf: BpfBuilder, address: ir.Value, size: int, signed: bool, space: str, temporary) -> ir.Value:
    """The integer of `size` bytes at `address`, as an i64. `temporary()` gives 8 bytes of memory
    for a read through a helper."""
    width = ir.IntType(size * 8)
    if space == CONTEXT:
        value = bpf.ir.load(address, typ=width, name="field", align=1)
    else:
        slot = temporary()
        bpf.store_i64(I64(0), slot)
        probe_read(bpf, slot, size, address, space)
        value = bpf.ir.load(slot, typ=width, name="field", align=8)
    if size == 8:
        return value
    return bpf.ir.sext(value, I64) if signed else bpf.ir.zext(value, I64)


def probe_read(bpf: BpfBuilder, destination: ir.Value, size: int | ir.Value, address: ir.Value, space: str) -> None:
    helper = PROBE_READ_USER if space == USER else PROBE_READ_KERNEL
    length = I32(size) if isinstance(size, int) else size
    bpf.call_helper(helper, [destination, length, address], name="read")


def read_string(bpf: BpfBuilder, destination: ir.Value, size: int, limit: ir.Value | None, address: ir.Value, space: str):
    """A NUL-terminated string from `address` into `destination` (`size` bytes, zeroed first so that
    equal strings are equal keys), at most `limit` - 1 characters.

    Without a limit, a string longer than the buffer is marked cut short, as bpftrace prints it
    ("bpftrace.." in 8 bytes): the helper ends it with a NUL in the last byte, which is then
    replaced by the source's own byte there; only a string that ended at that byte has its NUL."""
    bpf.zero(destination, (size + 7) // 8 * 8)
    helper = PROBE_READ_USER_STR if space == USER else PROBE_READ_KERNEL_STR
    length: ir.Value = I32(size)
    if limit is not None:  # clamped, so that the verifier sees a size within the buffer
        limit = bpf.ir.trunc(limit, I32)
        length = bpf.ir.select(bpf.ir.icmp_unsigned("<", limit, I32(size)), limit, I32(size), name="length")
    copied = bpf.call_helper(helper, [destination, length, address], name="read_string")
    if limit is None:
        with bpf.ir.if_then(bpf.ir.icmp_signed("==", copied, I64(size))):
            last = bpf.at(destination, size - 1)
            source = bpf.ir.inttoptr(bpf.ir.add(bpf.ir.ptrtoint(address, I64), I64(size - 1)), PTR)
            bpf.call_helper(PROBE_READ_USER if space == USER else PROBE_READ_KERNEL, [last, I32(1), source], name="last")


def read_string_raw(bpf: BpfBuilder, destination: ir.Value, size: int, address: ir.Value, space: str) -> None:
    """A NUL-terminated string into `destination`, the bytes after its NUL left as they were (an
    event record, whose reader stops at the NUL)."""
    helper = PROBE_READ_USER_STR if space == USER else PROBE_READ_KERNEL_STR
    bpf.call_helper(helper, [destination, I32(size), address], name="read_string")


def as_address(bpf: BpfBuilder, value: ir.Value) -> ir.Value:
    return bpf.ir.inttoptr(value, PTR, name="address")


def context_plus(bpf: BpfBuilder, offset: ir.Value) -> ir.Value:
    """The context's address plus `offset`, as an integer (a __data_loc string's address)."""
    return bpf.ir.add(bpf.ir.ptrtoint(bpf.context, I64), offset, name="data")

