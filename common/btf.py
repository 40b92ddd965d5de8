"""A reader of BTF, the kernel's type information (/sys/kernel/btf/vmlinux is world-readable): bpftc
reads the layouts of kernel structs and tracepoint records from it, bpfrun checks that its host
has the fields a bundle reads. Pure Python, standard library only.

The format is include/uapi/linux/btf.h: a header, then a run of type records (each a 12-byte
`btf_type` and kind-specific data after it; type ids count from 1 in file order), then the
strings. One pass records where each type starts and indexes structs, unions and typedefs by
name; a type is decoded when asked for.
"""

from __future__ import annotations

import struct
from functools import lru_cache

from common.record import record

MAGIC = 0xEB9F
MAX_BYTES = 1 << 28  # vmlinux BTF is a few MiB; refuse anything absurd before reading it

INT, PTR, ARRAY, STRUCT, UNION, ENUM, FWD, TYPEDEF, VOLATILE, CONST, RESTRICT = range(1, 12)
FUNC, FUNC_PROTO, VAR, DATASEC, FLOAT, DECL_TAG, TYPE_TAG, ENUM64 = range(12, 20)
QUALIFIERS = (TYPEDEF, VOLATILE, CONST, RESTRICT, TYPE_TAG)  # kinds that only name another type

# Bytes after the 12-byte header of a type record: a fixed part, plus this many per member (vlen).
_EXTRA = {INT: (4, 0), ARRAY: (12, 0), STRUCT: (0, 12), UNION: (0, 12), ENUM: (0, 8), FUNC_PROTO: (0, 8),
          VAR: (4, 0), DATASEC: (0, 12), DECL_TAG: (4, 0), ENUM64: (0, 12)}  # fmt: skip


class BtfError(Exception):
    """The file is not BTF this reader understands."""


@record(frozen=True, slots=True)
class Member:
    name: str
    type_id: int
    bit_offset: int
    bitfield_size: int  # 0: not a bitfield


@record(frozen=True, slots=True)
class BtfType:
    id: int
    kind: int
    name: str
    size: int  # INT, STRUCT, UNION, ENUM, FLOAT: bytes
    type_id: int  # PTR, qualifiers, TYPEDEF, FUNC: the type referred to; ARRAY: the element
    members: tuple[Member, ...] = ()  # STRUCT, UNION; FUNC_PROTO: its parameters
    length: int = 0  # ARRAY: elements
    signed: bool = False  # INT; ENUM: values are signed
    bits: int = 0  # INT: value bits
    enumerators: tuple[tuple[str, int], ...] = ()  # ENUM, ENUM64


class Btf:
    def __init__(self, data: bytes) -> None:
        if len(data) < 24 or len(data) > MAX_BYTES:
            raise BtfError("not a BTF file (size)")
        magic, _version, _flags, header_length = struct.unpack_from("<HBBI", data, 0)
        if magic != MAGIC:
            raise BtfError("not a BTF file (magic)")
        type_offset, type_length, string_offset, string_length = struct.unpack_from("<IIII", data, 8)
        types_start = header_length + type_offset
        self._data = data
        self._types_end = types_start + type_length
        self._strings = data[header_length + string_offset : header_length + string_offset + string_length]
        if self._types_end > len(data) or len(self._strings) != string_length:
            raise BtfError("truncated BTF")
        self._starts = [0]  # type id → offset of its record (id 0 is void)
        self._by_name: dict[tuple[int, str], int] = {}
        self._enumerators: dict[str, tuple[int, int]] | None = None
        try:
            self._index(types_start)
        except struct.error:
            raise BtfError("truncated BTF types") from None

    @classmethod
    def from_file(cls, path: str) -> Btf:
        with open(path, "rb") as file:
            return cls(file.read(MAX_BYTES + 1))

    def _index(self, offset: int) -> None:
        data, end = self._data, self._types_end
        named = (STRUCT, UNION, TYPEDEF, ENUM, ENUM64, FUNC)
        while offset < end:
            name_offset, info = struct.unpack_from("<II", data, offset)
            kind, vlen = (info >> 24) & 0x1F, info & 0xFFFF
            fixed, each = _EXTRA.get(kind, (0, 0))
            self._starts.append(offset)
            if kind in named and name_offset:
                self._by_name.setdefault((kind, self._string(name_offset)), len(self._starts) - 1)
            offset += 12 + fixed + each * vlen
        if offset != end:
            raise BtfError("malformed BTF types")

    def _string(self, offset: int) -> str:
        end = self._strings.find(b"\0", offset)
        return self._strings[offset : end if end >= 0 else None].decode("utf-8", "replace")

    def find(self, kind: int, name: str) -> BtfType | None:
        type_id = self._by_name.get((kind, name))
        return None if type_id is None else self.type(type_id)

    def enumerator(self, name: str) -> tuple[BtfType, int] | None:
        """The enum that has an enumerator `name`, and its value: the first such enum (the index
        of every enumerator is built on first use)."""
        if self._enumerators is None:
            self._enumerators = {}
            for type_id, offset in enumerate(self._starts):
                if type_id and (struct.unpack_from("<I", self._data, offset + 4)[0] >> 24) & 0x1F in (ENUM, ENUM64):
                    for enumerator, value in self.type(type_id).enumerators:
                        self._enumerators.setdefault(enumerator, (type_id, value))
        found = self._enumerators.get(name)
        return None if found is None else (self.type(found[0]), found[1])

    @lru_cache(maxsize=4096)  # noqa: B019 (one Btf per compile; the cache dies with it)
    def type(self, type_id: int) -> BtfType:
        if type_id == 0 or type_id >= len(self._starts):
            return BtfType(0, 0, "void", 0, 0)
        offset = self._starts[type_id]
        name_offset, info, size_or_type = struct.unpack_from("<III", self._data, offset)
        kind, vlen, kind_flag = (info >> 24) & 0x1F, info & 0xFFFF, info >> 31
        name = self._string(name_offset) if name_offset else ""
        extra = offset + 12
        if kind == INT:
            (encoding,) = struct.unpack_from("<I", self._data, extra)
            return BtfType(type_id, kind, name, size_or_type, 0, signed=bool(encoding >> 24 & 1), bits=encoding & 0xFF)
        if kind == ARRAY:
            element, _index, length = struct.unpack_from("<III", self._data, extra)
            return BtfType(type_id, kind, name, 0, element, length=length)
        if kind in (STRUCT, UNION):
            members = []
            for index in range(vlen):
                member_name, member_type, offset_info = struct.unpack_from("<III", self._data, extra + 12 * index)
                bit_offset, bitfield = (offset_info & 0xFFFFFF, offset_info >> 24) if kind_flag else (offset_info, 0)
                members.append(Member(self._string(member_name), member_type, bit_offset, bitfield))
            return BtfType(type_id, kind, name, size_or_type, 0, members=tuple(members))
        if kind in (ENUM, ENUM64):
            step = 8 if kind == ENUM else 12
            values = []
            for index in range(vlen):
                if kind == ENUM:
                    value_name, value = struct.unpack_from("<Ii", self._data, extra + step * index)
                else:
                    value_name, low, high = struct.unpack_from("<III", self._data, extra + step * index)
                    value = high << 32 | low
                values.append((self._string(value_name), value))
            return BtfType(type_id, kind, name, size_or_type, 0, signed=bool(kind_flag), enumerators=tuple(values))
        if kind == FUNC_PROTO:  # its parameters, as members without offsets
            parameters = []
            for index in range(vlen):
                parameter_name, parameter_type = struct.unpack_from("<II", self._data, extra + 8 * index)
                parameters.append(Member(self._string(parameter_name), parameter_type, 0, 0))
            return BtfType(type_id, kind, name, 0, size_or_type, members=tuple(parameters))
        if kind in (FLOAT, FWD):
            return BtfType(type_id, kind, name, size_or_type if kind == FLOAT else 0, 0)
        return BtfType(type_id, kind, name, 0, size_or_type)

    def strip(self, type_id: int) -> BtfType:
        """The type behind typedefs and qualifiers (const, volatile...)."""
        for _ in range(64):
            found = self.type(type_id)
            if found.kind not in QUALIFIERS:
                return found
            type_id = found.type_id
        raise BtfError("typedef chain too long")

    def has_field(self, kind: int, struct_name: str, field: str) -> bool:
        """Whether struct (or union) `struct_name` has `field`, directly or in an anonymous member."""
        found = self.find(kind, struct_name)
        return found is not None and self._has_member(found, field, 0)

    def _has_member(self, structure: BtfType, field: str, depth: int) -> bool:
        for member in structure.members:
            if member.name == field:
                return True
            if not member.name and depth < 8:
                inner = self.strip(member.type_id)
                if inner.kind in (STRUCT, UNION) and self._has_member(inner, field, depth + 1):
                    return True
        return False

    def size_of(self, type_id: int) -> int:
        found = self.strip(type_id)
        if found.kind == PTR:
            return 8
        if found.kind == ARRAY:
            return found.length * self.size_of(found.type_id)
        return found.size


def layout_digest(btf: Btf, found: BtfType) -> str:
    """A digest of everything that gives a byte copy of struct or union `found` its meaning: its
    size, and each member's name, offset and type, nested structs and arrays included (not what
    pointers point to). bpftc records it for a struct a bundle copies whole; bpfrun compares its
    host's, since a copy is not relocated field by field as reads are (CO-RE)."""
    from common.signing import sha256  # CPython's own, not OpenSSL's (see there)

    lines: list[str] = []
    _describe(btf, found, lines, 0)
    return sha256("\n".join(lines).encode()).hexdigest()[:16]


def _describe(btf: Btf, found: BtfType, lines: list[str], depth: int) -> None:
    if depth > 32:
        raise BtfError("types nested too deeply")
    if found.kind in (STRUCT, UNION):
        lines.append(f"{found.kind} {found.size} {len(found.members)}")
        for member in found.members:
            lines.append(f"{member.name} {member.bit_offset} {member.bitfield_size}")
            _describe(btf, btf.strip(member.type_id), lines, depth + 1)
    elif found.kind == ARRAY:
        lines.append(f"array {found.length}")
        _describe(btf, btf.strip(found.type_id), lines, depth + 1)
    elif found.kind in (INT, ENUM, ENUM64, FLOAT):
        lines.append(f"{found.kind} {found.size} {found.signed}")
    else:  # a pointer (8 bytes, whatever it points to), a function pointer...
        lines.append(str(found.kind))
