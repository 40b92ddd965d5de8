"""Kernel data layouts: what bpftc knows of the structs a script reads (`args.filename`,
`curtask->real_parent->pid`) and where that knowledge comes from, without privileges.

Sources, in order:
- a target description (`bpftc --target FILE`, common/target.py): the target's BTF and its
  tracepoints' fields, as `bpfrun --describe-target` read them there;
- the `syscalls:*` tracepoints: bpftc/data/syscalls.json, their fields as tracefs lists them (the
  syscall ABI: `__syscall_nr`, then one 8-byte slot per argument, the same on every kernel);
- other tracepoints: the kernel BTF's `trace_event_raw_<event>` struct (BTF is world-readable);
  every field read from it is a CO-RE relocation, fixed by libbpf for the kernel it loads on;
- then, when readable (as root), the tracepoint's tracefs format file: fixed offsets;
- kernel structs (`struct task_struct`), enums, fentry/fexit and raw tracepoint arguments: the
  kernel BTF, read through CO-RE relocations;
- uprobe arguments: the probed binary's DWARF on the build host (bpftc/dwarf.py).

The BTF is the target description's, else `bpftc --btf FILE`, else `/sys/kernel/btf/vmlinux`.
A whole struct held as a value (`@x = *p`) is a copy of its bytes: `struct_value` lays it out.
"""

from __future__ import annotations

import functools
import json
import pathlib
import re

from bpftc import cache
from bpftc.types import INT8, UINT8, Array, Bool, Enum, Int, Pointer, String, Struct, Type
from common import btf as btf_format
from common import layout
from common.layout import Layout
from common.record import record
from common.target import Target, parse_format

DEFAULT_BTF = "/sys/kernel/btf/vmlinux"
TRACEFS_EVENTS = ("/sys/kernel/tracing/events", "/sys/kernel/debug/tracing/events")
SYSCALLS_TABLE = pathlib.Path(__file__).parent / "data" / "syscalls.json"
_C_INTEGERS = {"char": 8, "short": 16, "int": 32, "long": 64, "long long": 64}


@record(frozen=True, slots=True)
class Field:
    """One readable field of a struct: its value's type and where it is."""

    name: str
    type: Type | None  # None: a field bpftc cannot read yet
    offset: int  # bytes from the struct's start, in the layout bpftc compiles against
    data_loc: bool = False  # a tracepoint's `__data_loc` string: a u32 (length << 16 | offset)
    core_path: tuple[int, ...] = ()  # member indexes in the BTF struct, through anonymous members
    bitfield: bool = False  # bits of an integer, read through CO-RE bitfield relocations


@record(frozen=True, slots=True)
class StructValue:
    """A whole struct held as a value (`@x = *curtask->mm`, `print(args)`): how its copy is laid
    out and printed, and what the host's BTF must agree with for the copy to mean the same."""

    layout: Layout  # a record of its members at their offsets
    requirement: str = ""  # "struct NAME DIGEST" (common/btf.py layout_digest); "" for a fixed ABI


# struct trace_entry: the fields every tracepoint record starts with (a fixed ABI).
TRACE_ENTRY_FIELDS = (
    ("common_type", layout.integer(2, False), 0),
    ("common_flags", layout.integer(1, False), 2),
    ("common_preempt_count", layout.integer(1, False), 3),
    ("common_pid", layout.integer(4, True), 4),
)


@record(frozen=True, slots=True)
class StructLayout:
    type: Struct  # as messages name it: struct task_struct, struct tracepoint:sched:sched_switch_args
    size: int
    fields: dict[str, Field]
    btf_id: int = 0  # the BTF struct whose fields are read by CO-RE relocation; 0: fixed offsets
    user: bool = False  # pointers in it point to user memory (syscall arguments)


class KernelTypes:
    """Struct layouts, looked up by the passes and the code generator; the BTF file is read on first use."""

    def __init__(self, btf_path: str = DEFAULT_BTF, target: Target | None = None) -> None:
        self.btf_path = btf_path
        self.target = target
        self.layouts: dict[Struct, StructLayout] = {}
        self._held: dict[Struct, Struct] = {}

    @functools.cached_property
    def btf(self) -> btf_format.Btf | None:
        try:
            if self.target is not None:
                data = self.target.btf
            else:
                with open(self.btf_path, "rb") as file:
                    data = file.read(btf_format.MAX_BYTES + 1)
            saved = cache.btf_starts(data)
            found = btf_format.Btf(data, saved)
        except (OSError, btf_format.BtfError):
            return None
        if found.record_starts is not saved:
            cache.save_btf_starts(data, found.record_starts)
        return found

    def btf_struct_name(self, btf_id: int) -> str:
        """'struct task_struct', as the BTF that bpftc compiles against names it."""
        found = self.btf.type(btf_id)
        return f"{'union' if found.kind == btf_format.UNION else 'struct'} {found.name}"

    # Tracepoints

    def tracepoint_args(self, category: str, event: str) -> StructLayout | str:
        """The layout of `args` for tracepoint:category:event, or why there is none."""
        struct = Struct("struct", f"tracepoint:{category}:{event}_args")
        if struct in self.layouts:
            return self.layouts[struct]
        described = self.target.tracepoints.get(f"{category}:{event}") if self.target is not None else None
        if category == "syscalls":
            found = _format_layout(struct, described, user=True) if described else self._syscall_args(struct, event)
        elif described is not None:  # BTF's struct first: its fields are relocated
            found = self._btf_tracepoint_args(struct, event) or _format_layout(struct, described, user=False)
        else:
            found = self._btf_tracepoint_args(struct, event) or self._tracefs_args(struct, category, event)
        if found is None:
            return f"Cannot find the fields of tracepoint:{category}:{event} (no BTF struct trace_event_raw_{event})"
        self.layouts[struct] = found
        return found

    def _syscall_args(self, struct: Struct, event: str) -> StructLayout | None:
        fields = _syscall_table().get(event)
        if fields is None:
            return None
        return _format_layout(struct, fields, user=True)

    def _btf_tracepoint_args(self, struct: Struct, event: str) -> StructLayout | None:
        if self.btf is None:
            return None
        record = self.btf.find(btf_format.STRUCT, f"trace_event_raw_{event}")
        if record is None:
            return None
        fields = {}
        for index, member in enumerate(record.members):
            if member.name in ("ent", "__data"):
                continue
            if member.name.startswith("__data_loc_"):
                name = member.name.removeprefix("__data_loc_")
                fields[name] = Field(name, Int(64, True), member.bit_offset // 8, data_loc=True, core_path=(index,))
            else:
                fields.update(self._btf_fields(member, (index,), 0))
        return StructLayout(struct, record.size, fields, btf_id=record.id)

    def _tracefs_args(self, struct: Struct, category: str, event: str) -> StructLayout | None:
        for events in TRACEFS_EVENTS:
            try:
                text = (pathlib.Path(events) / category / event / "format").read_text()
            except OSError:
                continue
            return _format_layout(struct, parse_format(text), user=False)
        return None

    def rawtracepoint_args(self, event: str) -> StructLayout | str:
        """`args` of rawtracepoint:event: the parameters of the tracepoint's prototype, from the
        BTF of the kernel's stub function `__probestub_<event>`, whose parameters have names (its
        first is the probe's own data); the program's context holds them as an array of u64."""
        struct = Struct("struct", f"rawtracepoint:{event}_args")
        if struct in self.layouts:
            return self.layouts[struct]
        stub = self.btf.find(btf_format.FUNC, f"__probestub_{event}") if self.btf is not None else None
        prototype = self.btf.type(stub.type_id) if stub is not None else None
        if prototype is None or prototype.kind != btf_format.FUNC_PROTO or not prototype.members:
            return f"Cannot find the arguments of rawtracepoint:{event} (no BTF function __probestub_{event})"
        fields = {
            parameter.name: Field(parameter.name, self.semantic_type(parameter.type_id), 8 * index)
            for index, parameter in enumerate(prototype.members[1:])
        }
        layout = StructLayout(struct, 8 * (len(prototype.members) - 1), fields)
        self.layouts[struct] = layout
        return layout

    def function_args(self, function: str) -> StructLayout | str:
        """`args` of fentry:function and fexit:function: the function's parameters, from its BTF
        prototype; the program's context holds them as an array of u64 (fexit's return value
        after them)."""
        struct = Struct("struct", f"fentry:{function}_args")
        if struct in self.layouts:
            return self.layouts[struct]
        found = self.btf.find(btf_format.FUNC, function) if self.btf is not None else None
        prototype = self.btf.type(found.type_id) if found is not None else None
        if prototype is None or prototype.kind != btf_format.FUNC_PROTO:
            return f"Cannot find the arguments of {function} (no BTF function {function})"
        fields = {
            parameter.name: Field(parameter.name, self.semantic_type(parameter.type_id), 8 * index)
            for index, parameter in enumerate(prototype.members)
            if parameter.name
        }
        layout = StructLayout(struct, 8 * len(prototype.members), fields)
        self.layouts[struct] = layout
        return layout

    # User functions

    def uprobe_args(self, binary: str, function: str) -> StructLayout | str:
        """`args` of uprobe:binary:function: the function's parameters, from the binary's DWARF
        (bpftc/dwarf.py) on this build host, read from the registers the x86_64 calling
        convention puts them in (the probe's context is struct pt_regs). Pointers point to user
        memory; floats, structs passed by value and parameters past the sixth are not readable."""
        struct = Struct("struct", f"uprobe:{binary}:{function}_args")
        if struct in self.layouts:
            return self.layouts[struct]
        from bpftc import dwarf
        from common.binaries import find_binary

        path = find_binary(binary)
        if path is None:
            return f"Cannot find the arguments of {function}: no binary {binary!r} on this build host"
        try:
            parameters = dwarf.function_parameters(path, function)
        except dwarf.DwarfError as error:
            return f"Cannot find the arguments of {function}: {error}"
        if parameters is None:
            return f"Cannot find the arguments of {function}: {path} has no debug information for it"
        fields = {}
        for index, parameter in enumerate(parameters):
            readable = _user_type(parameter.type) if index < len(_ARGUMENT_REGISTERS) else None
            offset = _ARGUMENT_REGISTERS[index] if index < len(_ARGUMENT_REGISTERS) else 0
            fields[parameter.name] = Field(parameter.name, readable, offset)
        layout = StructLayout(struct, _PT_REGS_SIZE, fields, user=True)
        self.layouts[struct] = layout
        return layout

    # Kernel structs

    def struct_layout(self, struct: Struct) -> StructLayout | None:
        if struct in self.layouts:
            return self.layouts[struct]
        if self.btf is None:
            return None
        kind = btf_format.UNION if struct.kind == "union" else btf_format.STRUCT
        found = self.btf.find(kind, struct.name)
        anonymous = re.fullmatch(r"\(anonymous ([0-9]+)\)", struct.name)  # semantic_type's name for one
        if anonymous is not None:
            found = self._anonymous(int(anonymous.group(1)))
        if found is None:
            typedef = self.btf.find(btf_format.TYPEDEF, struct.name)
            found = self.btf.strip(typedef.id) if typedef is not None else None
            if found is None or found.kind not in (btf_format.STRUCT, btf_format.UNION):
                return None
        fields: dict[str, Field] = {}
        for index, member in enumerate(found.members):
            for name, field in self._btf_fields(member, (index,), 0).items():
                fields.setdefault(name, field)
        layout = StructLayout(struct, found.size, fields, btf_id=found.id)
        self.layouts[struct] = layout
        return layout

    def holdable(self, struct: Struct) -> Struct:
        """`struct` with its StructValue (types.Struct.held) when bpftc can copy it whole."""
        if struct not in self._held:
            if struct.name.startswith("rawtracepoint:"):
                found = self.layouts.get(struct)
            else:
                found = self.struct_layout(struct)
            value = self.struct_value(found, struct.name.startswith("tracepoint:")) if found is not None else None
            self._held[struct] = Struct(struct.kind, struct.name, value)
        return self._held[struct]

    def struct_value(self, struct_layout: StructLayout, tracepoint: bool = False) -> StructValue | None:
        """The value of a whole struct of `struct_layout`; a tracepoint's record (`tracepoint`)
        starts with the common fields. None when some member has no layout bpftc can print."""
        try:
            if struct_layout.btf_id and not tracepoint:
                found = self.btf.type(struct_layout.btf_id)
                return StructValue(self._btf_value_layout(found, 0), self._requirement(struct_layout.type, found))
            members = [(name, value, offset) for name, value, offset in TRACE_ENTRY_FIELDS] if tracepoint else []
            for field in struct_layout.fields.values():  # as declared
                member = layout.integer(4, False) if field.data_loc else self._value_layout_of_type(field.type)
                members.append((field.name, member, field.offset))
        except _NotHeld:
            return None
        record = _record(members, struct_layout.size)
        found = self.btf.type(struct_layout.btf_id) if struct_layout.btf_id else None
        return StructValue(record, self._requirement(struct_layout.type, found) if found is not None else "")

    def _requirement(self, struct: Struct, found: btf_format.BtfType) -> str:
        """"struct NAME DIGEST", NAME as bpftc found it (a typedef's name for an anonymous struct)."""
        name = found.name or struct.name
        return f"{struct.kind} {name} {btf_format.layout_digest(self.btf, found)}"

    def _btf_value_layout(self, found: btf_format.BtfType, depth: int) -> Layout:
        """BTF type → the layout of its bytes, as bpftrace prints them."""
        if depth > 32:
            raise _NotHeld()
        if found.kind in (btf_format.STRUCT, btf_format.UNION):
            members = []
            for member in found.members:
                if member.bitfield_size or member.bit_offset % 8:
                    continue  # bitfields are not printed yet
                inner = self._btf_value_layout(self.btf.strip(member.type_id), depth + 1)
                offset = member.bit_offset // 8
                if not member.name and inner.kind == layout.RECORD:  # C reads its fields as the outer's
                    members += [(field.name, field.layout, offset + field.offset) for field in inner.fields]
                else:
                    members.append((member.name, inner, offset))
            return _record(members, found.size)
        if found.kind == btf_format.ARRAY:
            element = self.btf.strip(found.type_id)
            if element.kind == btf_format.INT and element.size == 1:
                return Layout(layout.STRING, max(found.length, 1))
            return layout.array(self._btf_value_layout(element, depth + 1), found.length)
        if found.kind == btf_format.PTR:
            return Layout(layout.POINTER, 8)
        if found.kind == btf_format.INT and found.name == "_Bool":
            return Layout(layout.BOOL, 1)
        if found.kind in (btf_format.INT, btf_format.ENUM, btf_format.ENUM64) and found.size in layout.INTEGER_SIZES:
            return layout.integer(found.size, found.signed)
        raise _NotHeld()

    def _value_layout_of_type(self, t: Type) -> Layout:
        """A field's layout in a whole-struct copy: storage.py's, but a struct (or an array of them)
        laid out from its BTF."""
        from bpftc import storage

        if isinstance(t, Struct):
            struct_layout = self.struct_layout(t)
            if struct_layout is None or not struct_layout.btf_id:
                raise _NotHeld()
            return self._btf_value_layout(self.btf.type(struct_layout.btf_id), 1)
        if isinstance(t, Array):
            return layout.array(self._value_layout_of_type(t.element), t.length)
        if isinstance(t, (Int, Bool, Pointer, String)):
            return storage.layout_of(t)
        raise _NotHeld()

    def _anonymous(self, type_id: int) -> btf_format.BtfType | None:
        try:
            found = self.btf.type(type_id)
        except (btf_format.BtfError, IndexError, KeyError):
            return None
        return found if found.kind in (btf_format.STRUCT, btf_format.UNION) and not found.name else None

    def typedef(self, name: str) -> Type | None:
        """What a typedef of the BTF names (u32, pid_t), as bpftc types its values; None without one."""
        found = self.btf.find(btf_format.TYPEDEF, name) if self.btf is not None else None
        if found is None:
            return None
        underlying = self.btf.strip(found.id)
        if underlying.kind in (btf_format.STRUCT, btf_format.UNION) and not underlying.name:
            return Struct("union" if underlying.kind == btf_format.UNION else "struct", name)
        if underlying.kind in (btf_format.ENUM, btf_format.ENUM64):
            return _enum_type(underlying)
        return self.semantic_type(found.id)

    def enum(self, name: str) -> Enum | None:
        """`enum NAME` of the BTF, as bpftc types its values."""
        found = self.btf.find(btf_format.ENUM, name) or self.btf.find(btf_format.ENUM64, name) if self.btf else None
        return _enum_type(found) if found is not None else None

    def enumerator(self, name: str) -> Enum | None:
        """The type of a kernel enum's enumerator used by name (`BPF_PROG_LOAD`)."""
        found = self.btf.enumerator(name) if self.btf is not None else None
        return _enum_type(found[0]) if found is not None else None

    def _btf_fields(self, member: btf_format.Member, path: tuple[int, ...], base: int) -> dict[str, Field]:
        """The field `member` names, or the fields of an anonymous struct or union member, which C
        reads as the outer struct's own."""
        offset = base + member.bit_offset // 8
        if member.name and (member.bitfield_size or member.bit_offset % 8):
            integer = self.btf.strip(member.type_id)
            readable = Int(64, integer.signed) if integer.kind in (btf_format.INT, btf_format.ENUM) else None
            return {member.name: Field(member.name, readable, offset, core_path=path, bitfield=True)}
        if member.name:
            return {member.name: Field(member.name, self.semantic_type(member.type_id), offset, core_path=path)}
        inner = self.btf.strip(member.type_id)
        fields: dict[str, Field] = {}
        for index, nested in enumerate(inner.members):
            for name, field in self._btf_fields(nested, (*path, index), offset).items():
                fields.setdefault(name, field)
        return fields

    def semantic_type(self, type_id: int) -> Type:
        """A BTF type as bpftrace types it: char arrays are strings, enums integers."""
        found = self.btf.strip(type_id)
        kind = found.kind
        if kind == btf_format.INT:
            if found.name == "_Bool":
                return Bool()
            return Int(found.size * 8, found.signed) if found.size in (1, 2, 4, 8) else Array(UINT8, found.size)
        if kind in (btf_format.ENUM, btf_format.ENUM64):
            return Int(found.size * 8, found.signed) if found.size in (1, 2, 4, 8) else Int(64, False)
        if kind == btf_format.PTR:
            return Pointer(self._pointee(found.type_id))
        if kind == btf_format.ARRAY:
            element = self.btf.strip(found.type_id)
            if element.kind == btf_format.INT and element.size == 1:
                return String(max(found.length, 1))
            return Array(self.semantic_type(found.type_id), found.length)
        if kind in (btf_format.STRUCT, btf_format.UNION):
            name = found.name or self._typedef_name(type_id) or f"(anonymous {found.id})"
            return Struct("union" if kind == btf_format.UNION else "struct", name)
        return Int(64, False)

    def _typedef_name(self, type_id: int) -> str:
        """The name a typedef gives an anonymous struct (atomic_t), which finds it again."""
        name = ""
        for _ in range(64):
            found = self.btf.type(type_id)
            if found.kind not in btf_format.QUALIFIERS:
                return name
            if found.kind == btf_format.TYPEDEF:
                name = found.name
            type_id = found.type_id
        return name

    def _pointee(self, type_id: int) -> Type:
        found = self.btf.strip(type_id)
        if found.kind in (btf_format.STRUCT, btf_format.UNION, btf_format.FWD) and found.name:
            return Struct("union" if found.kind == btf_format.UNION else "struct", found.name)
        if found.kind in (btf_format.INT, btf_format.ENUM) and found.size in (1, 2, 4, 8):
            return Int(found.size * 8, found.signed)
        return INT8  # void * and the like: bytes


# struct pt_regs on x86_64: the call arguments are in di si dx cx r8 r9 (bpftc/arch.py).
_ARGUMENT_REGISTERS = (112, 104, 96, 88, 72, 64)
_PT_REGS_SIZE = 168


def _user_type(c_type) -> Type | None:
    """A C parameter's type (bpftc/dwarf.py's CType) as bpftc reads it from a register, or None."""
    if c_type.kind == "pointer":
        target = c_type.target
        if target is not None and target.kind in ("int", "enum") and target.size in (1, 2, 4, 8):
            return Pointer(Int(target.size * 8, target.signed), user=True)
        return Pointer(INT8, user=True)  # void *, struct pointers...: an address
    if c_type.kind == "bool":
        return Bool()
    if c_type.kind in ("int", "enum") and c_type.size in (1, 2, 4, 8):
        return Int(c_type.size * 8, c_type.signed)
    return None


def _enum_type(found: btf_format.BtfType) -> Enum:
    return Enum(64, False, found.name or f"(anonymous {found.id})", found.enumerators)


class _NotHeld(Exception):
    """A member bpftc cannot lay out as a value (a float, a 16-byte integer)."""


def _record(members: list[tuple[str, Layout, int]], size: int) -> Layout:
    """Members at their C offsets (a union's all at 0): unlike bpftc's own records, not 8-aligned."""
    fields = tuple(layout.Field(name, offset, member) for name, member, offset in members)
    return Layout(layout.RECORD, size, fields)


def c_type(declaration: str, size: int, signed: bool) -> Type:
    """The type of a tracefs format field, from its C declaration and the size tracefs gives."""
    pointers = declaration.count("*")
    words = [word for word in declaration.replace("*", " ").split() if word not in ("const", "volatile", "__user")]
    if pointers:
        target: Type = INT8
        if len(words) >= 2 and words[0] in ("struct", "union"):
            target = Struct(words[0], words[1])
        elif " ".join(w for w in words if w not in ("unsigned", "signed")) in _C_INTEGERS:
            bits = _C_INTEGERS[" ".join(w for w in words if w not in ("unsigned", "signed"))]
            target = Int(bits, "unsigned" not in words)
        for _ in range(pointers - 1):
            target = Pointer(target)
        return Pointer(target)
    if declaration.endswith("]") and "char" in declaration.split("[")[0].split():  # char[16], unsigned char[6]
        return String(max(size, 1))
    if size in (1, 2, 4, 8):
        return Int(size * 8, signed)
    return Array(UINT8, size)


def _format_layout(struct: Struct, fields: list[tuple[str, str, int, int, int]], user: bool) -> StructLayout:
    layout_fields = {}
    end = 0
    for name, declaration, offset, size, signed in fields:
        if declaration.startswith("__data_loc"):
            layout_fields[name] = Field(name, Int(64, True), offset, data_loc=True)
        else:
            field_type = c_type(declaration, size, bool(signed))
            if user and isinstance(field_type, Pointer):
                field_type = Pointer(field_type.target, user=True)
            layout_fields[name] = Field(name, field_type, offset)
        end = max(end, offset + size)
    return StructLayout(struct, end, layout_fields, user=user)


def syscall_tracepoints(pattern: str) -> list[str]:
    """The syscall tracepoints (sys_enter_read...) a shell pattern matches, sorted."""
    import fnmatch

    return sorted(event for event in _syscall_table() if fnmatch.fnmatchcase(event, pattern))


@functools.cache
def _syscall_table() -> dict[str, list]:
    return json.loads(SYSCALLS_TABLE.read_text())
