"""The parameters of a function in a user-space binary, from its DWARF debug information: what
`uprobe:BINARY:FUNCTION { args.NAME }` reads. Pure Python, standard library only.

Contract: `function_parameters(path, function)` reads the ELF file at `path` (64-bit little-endian
executables and shared libraries) and returns the formal parameters of `function` in order, each
with its name and its C type (CType: typedefs and qualifiers resolved, the outermost typedef's
name kept). It returns None when no unit defines a function of that name (or a function at the
address of a symbol of that name: glibc's `malloc` is `__libc_malloc` in DWARF). It raises
DwarfError, with the path and one line, when the file cannot be read, has no debug information at
all (stripped, and no separate debug file found), or is damaged or of a kind this reader does not
support (zstd-compressed sections, relocatable objects, DWARF versions other than 2 to 5).

Where the debug information is: the binary's own .debug_* sections, compressed (SHF_COMPRESSED
with zlib, or the older .zdebug_*) or not; else a separate debug file found by build id
(/usr/lib/debug/.build-id/xx/yyyy.debug) or by .gnu_debuglink (next to the binary, in its .debug/
folder, or under /usr/lib/debug), as Debian's -dbg/-dbgsym packages install them; plus the dwz
supplementary file that one names (.gnu_debugaltlink or .debug_sup), when there is one.

How the function is found without reading every entry: the units whose address ranges
(.debug_aranges) hold the address of an ELF symbol named `function` are searched first, then all
the others. A unit is searched at its top level only (and inside namespaces); the subtree of any
other entry is skipped through its DW_AT_sibling when it has one (GCC writes them). Abbreviation
tables and resolved types are cached, and so are the last few files read.

Which entry: a definition (never a DW_AT_declaration), by DW_AT_name or linkage name, else one
whose DW_AT_specification or DW_AT_abstract_origin leads to the name; the first unit that has one
wins (two static functions of one name: the first). A function written in assembly has an entry
without parameters: []. Types: const, volatile, restrict and _Atomic are dropped; a pointer's and
an array's `name` spell their target ('char *', 'struct entry **', 'int [4]'); structs are not
expanded into members.

Not supported: 32-bit or big-endian ELF, zstd-compressed sections, split DWARF (.dwo files,
skeleton units), relocatable objects (.o, whose debug information is not relocated yet).

Every offset and length read from the file is checked before use; loops advance by at least a
byte; chains of references and types are capped, so a damaged file ends in DwarfError.
"""

from __future__ import annotations

import bisect
import functools
import os
import struct
import zlib

from common.record import record, replace

DEBUG_ROOT = "/usr/lib/debug"
MAX_SECTION = 1 << 31  # a decompressed section larger than this is refused, not allocated
MAX_DEPTH = 32  # types inside types (pointer to pointer to array...), references to references

# ELF
_ELF_HEADER = struct.Struct("<16sHHIQQQIHHHHHH")
_SECTION_HEADER = struct.Struct("<IIQQQQIIQQ")
_COMPRESSION_HEADER = struct.Struct("<IIQQ")
_SYMBOL = struct.Struct("<IBBHQQ")
_ET_REL, _ET_EXEC, _ET_DYN = 1, 2, 3
_SHT_SYMTAB, _SHT_NOTE, _SHT_NOBITS, _SHT_DYNSYM = 2, 7, 8, 11
_SHF_COMPRESSED = 0x800
_ELFCOMPRESS_ZLIB, _ELFCOMPRESS_ZSTD = 1, 2
_STT_FUNC = 2
_NT_GNU_BUILD_ID = 3

# DWARF tags
_TAG_ARRAY, _TAG_CLASS, _TAG_ENUMERATION, _TAG_FORMAL_PARAMETER = 0x01, 0x02, 0x04, 0x05
_TAG_POINTER, _TAG_REFERENCE, _TAG_COMPILE_UNIT, _TAG_STRUCTURE = 0x0F, 0x10, 0x11, 0x13
_TAG_SUBROUTINE_TYPE, _TAG_TYPEDEF, _TAG_UNION, _TAG_SUBRANGE = 0x15, 0x16, 0x17, 0x21
_TAG_BASE, _TAG_CONST, _TAG_ENUMERATOR, _TAG_SUBPROGRAM = 0x24, 0x26, 0x28, 0x2E
_TAG_VOLATILE, _TAG_RESTRICT, _TAG_INTERFACE, _TAG_NAMESPACE = 0x35, 0x37, 0x38, 0x39
_TAG_MODULE, _TAG_UNSPECIFIED_TYPE, _TAG_PARTIAL_UNIT = 0x1E, 0x3B, 0x3C
_TAG_RVALUE_REFERENCE, _TAG_ATOMIC, _TAG_IMMUTABLE = 0x42, 0x47, 0x4B
_QUALIFIERS = frozenset({_TAG_CONST, _TAG_VOLATILE, _TAG_RESTRICT, _TAG_ATOMIC, _TAG_IMMUTABLE})
_SCOPES = frozenset({_TAG_COMPILE_UNIT, _TAG_PARTIAL_UNIT, _TAG_NAMESPACE, _TAG_MODULE})  # searched inside

# DWARF attributes
_AT_SIBLING, _AT_NAME, _AT_BYTE_SIZE, _AT_LOW_PC = 0x01, 0x03, 0x0B, 0x11
_AT_UPPER_BOUND, _AT_ABSTRACT_ORIGIN, _AT_COUNT, _AT_CONST_VALUE = 0x2F, 0x31, 0x37, 0x1C
_AT_DECLARATION, _AT_ENCODING, _AT_SPECIFICATION, _AT_TYPE = 0x3C, 0x3E, 0x47, 0x49
_AT_LINKAGE_NAME, _AT_STR_OFFSETS_BASE, _AT_ADDR_BASE = 0x6E, 0x72, 0x73
_AT_MIPS_LINKAGE_NAME, _AT_GNU_ADDR_BASE = 0x2007, 0x2133

# DWARF base type encodings
_ATE_BOOLEAN, _ATE_COMPLEX_FLOAT, _ATE_FLOAT, _ATE_SIGNED, _ATE_SIGNED_CHAR = 0x02, 0x03, 0x04, 0x05, 0x06
_ATE_IMAGINARY_FLOAT, _ATE_DECIMAL_FLOAT, _ATE_SIGNED_FIXED = 0x09, 0x0F, 0x0D
_FLOATS = frozenset({_ATE_COMPLEX_FLOAT, _ATE_FLOAT, _ATE_IMAGINARY_FLOAT, _ATE_DECIMAL_FLOAT})
_SIGNED = frozenset({_ATE_SIGNED, _ATE_SIGNED_CHAR, _ATE_SIGNED_FIXED})

# DWARF unit types (version 5) and forms
_UT_COMPILE, _UT_TYPE, _UT_PARTIAL, _UT_SKELETON, _UT_SPLIT_COMPILE, _UT_SPLIT_TYPE = range(1, 7)
_FORM_ADDR, _FORM_BLOCK2, _FORM_BLOCK4, _FORM_DATA2, _FORM_DATA4, _FORM_DATA8 = 0x01, 0x03, 0x04, 0x05, 0x06, 0x07
_FORM_STRING, _FORM_BLOCK, _FORM_BLOCK1, _FORM_DATA1, _FORM_FLAG, _FORM_SDATA = 0x08, 0x09, 0x0A, 0x0B, 0x0C, 0x0D
_FORM_STRP, _FORM_UDATA, _FORM_REF_ADDR, _FORM_REF1, _FORM_REF2, _FORM_REF4 = 0x0E, 0x0F, 0x10, 0x11, 0x12, 0x13
_FORM_REF8, _FORM_REF_UDATA, _FORM_INDIRECT, _FORM_SEC_OFFSET, _FORM_EXPRLOC = 0x14, 0x15, 0x16, 0x17, 0x18
_FORM_FLAG_PRESENT, _FORM_STRX, _FORM_ADDRX, _FORM_REF_SUP4, _FORM_STRP_SUP = 0x19, 0x1A, 0x1B, 0x1C, 0x1D
_FORM_DATA16, _FORM_LINE_STRP, _FORM_REF_SIG8, _FORM_IMPLICIT_CONST = 0x1E, 0x1F, 0x20, 0x21
_FORM_LOCLISTX, _FORM_RNGLISTX, _FORM_REF_SUP8 = 0x22, 0x23, 0x24
_FORM_STRX1, _FORM_STRX2, _FORM_STRX3, _FORM_STRX4 = 0x25, 0x26, 0x27, 0x28
_FORM_ADDRX1, _FORM_ADDRX2, _FORM_ADDRX3, _FORM_ADDRX4 = 0x29, 0x2A, 0x2B, 0x2C
_FORM_GNU_ADDR_INDEX, _FORM_GNU_STR_INDEX, _FORM_GNU_REF_ALT, _FORM_GNU_STRP_ALT = 0x1F01, 0x1F02, 0x1F20, 0x1F21

_LEB_FORMS = frozenset({_FORM_UDATA, _FORM_REF_UDATA, _FORM_STRX, _FORM_ADDRX, _FORM_LOCLISTX, _FORM_RNGLISTX,
                        _FORM_GNU_ADDR_INDEX, _FORM_GNU_STR_INDEX})  # fmt: skip
_BLOCK_FORMS = {_FORM_BLOCK1: 1, _FORM_BLOCK2: 2, _FORM_BLOCK4: 4}  # length prefix size
_VARIABLE_FORMS = _LEB_FORMS | {_FORM_SDATA, _FORM_STRING, _FORM_BLOCK, _FORM_EXPRLOC, _FORM_INDIRECT, *_BLOCK_FORMS}
_LOCAL_REFERENCES = frozenset({_FORM_REF1, _FORM_REF2, _FORM_REF4, _FORM_REF8, _FORM_REF_UDATA})
_STRX_FORMS = frozenset({_FORM_STRX, _FORM_STRX1, _FORM_STRX2, _FORM_STRX3, _FORM_STRX4, _FORM_GNU_STR_INDEX})
_ADDRX_FORMS = frozenset({_FORM_ADDRX, _FORM_ADDRX1, _FORM_ADDRX2, _FORM_ADDRX3, _FORM_ADDRX4, _FORM_GNU_ADDR_INDEX})


class DwarfError(Exception):
    """The file cannot be read, has no debug information, or has debug information this reader
    cannot use (damaged, or of an unsupported kind)."""


@record(frozen=True, slots=True)
class CType:
    """A C type as a parameter has it, typedefs and qualifiers (const, volatile...) resolved."""

    kind: str  # 'int', 'bool', 'float', 'enum', 'pointer', 'struct', 'union', 'array', 'void',
    # 'function' (what a function pointer points to), 'unknown' (a type C does not have)
    name: str  # 'int', 'unsigned long', 'struct foo', 'char *', 'int [4]'; '' for an anonymous struct, union, enum
    size: int  # bytes (pointers: 8); 0 for void, functions and structs only declared here
    signed: bool = False  # integers and enums
    target: CType | None = None  # pointer: what it points to (None for void *); array: the element;
    # function: what it returns (None for void)
    length: int = 0  # array: elements (0 when not known)
    typedef: str = ""  # the outermost typedef the parameter was declared with ('size_t'), if any


@record(frozen=True, slots=True)
class Parameter:
    name: str  # '' for a parameter without a name
    type: CType


def function_parameters(path: str, function: str) -> list[Parameter] | None:
    """The formal parameters of `function` in the ELF binary `path`, in order; None when no debug
    information defines a function of that name; DwarfError when the file cannot be used."""
    try:
        status = os.stat(path)
        dwarf = _load(os.path.realpath(path), status.st_dev, status.st_ino, status.st_size, status.st_mtime_ns)
        return dwarf.function_parameters(function)
    except OSError as error:
        raise DwarfError(f"{path}: cannot read: {error.strerror or error}") from None
    except DwarfError as error:
        raise DwarfError(f"{path}: {error}") from None
    except (IndexError, struct.error, OverflowError) as error:  # a check this reader lacks: still one line
        raise DwarfError(f"{path}: malformed debug information ({error})") from None


@functools.lru_cache(maxsize=4)
def _load(path: str, _device: int, _inode: int, _size: int, _modified: int) -> _Dwarf:
    """The debug information of `path`, kept while the file is unchanged (a script may probe
    several functions of one library)."""
    elf = _Elf(path)
    debug = elf if elf.has_section(".debug_info") else _separate_debug_file(elf)
    if debug is None:
        raise DwarfError("no DWARF debug information (no .debug_info section, and no separate debug file found)")
    return _Dwarf(debug, symbol_files=(debug, elf) if debug is not elf else (elf,))


# ELF


class _Elf:
    """The section headers of a 64-bit little-endian ELF file; a section's bytes are read (and
    decompressed) when asked for, so a large binary is not read whole."""

    def __init__(self, path: str) -> None:
        self.path = path
        with open(path, "rb") as file:
            self._file_size = os.fstat(file.fileno()).st_size
            header = file.read(_ELF_HEADER.size)
            if len(header) < _ELF_HEADER.size or header[:4] != b"\x7fELF":
                raise DwarfError("not an ELF file")
            if header[4] != 2 or header[5] != 1:
                raise DwarfError("not a 64-bit little-endian ELF file")
            fields = _ELF_HEADER.unpack(header)
            elf_type, section_offset, entry_size, count, names_index = fields[1], fields[6], fields[11], fields[12], fields[13]
            if elf_type not in (_ET_REL, _ET_EXEC, _ET_DYN):
                raise DwarfError(f"ELF type {elf_type} is neither an executable nor a shared library")
            if section_offset == 0:
                raise DwarfError("no section headers")
            if entry_size != _SECTION_HEADER.size:
                raise DwarfError(f"section header size {entry_size}, expected {_SECTION_HEADER.size}")
            first = self._read(file, section_offset, entry_size)
            if count == 0:  # more than 0xff00 sections: the count is in section 0 (ELF gABI)
                count = _SECTION_HEADER.unpack(first)[5]
            if names_index == 0xFFFF:
                names_index = _SECTION_HEADER.unpack(first)[6]
            if count > self._file_size // entry_size:
                raise DwarfError("section header table larger than the file")
            table = self._read(file, section_offset, count * entry_size)
            headers = [_SECTION_HEADER.unpack_from(table, index * entry_size) for index in range(count)]
            if names_index >= count:
                raise DwarfError("section name table index out of range")
            self._headers = headers
            names = self._raw(file, headers[names_index])
            self.sections: dict[str, tuple] = {}
            for header in headers:
                name = _c_string(names, header[0]).decode("utf-8", "replace")
                self.sections.setdefault(name, header)
            if elf_type == _ET_REL and (".rela.debug_info" in self.sections or ".rel.debug_info" in self.sections):
                # A .o file; dwz's supplementary file is ET_REL too, but without relocations.
                raise DwarfError("a relocatable object (.o): its debug information needs relocating; link it first")

    def _read(self, file, offset: int, size: int) -> bytes:
        if offset + size > self._file_size:
            raise DwarfError(f"a section lies past the end of the file ({offset + size} > {self._file_size})")
        file.seek(offset)
        data = file.read(size)
        if len(data) != size:
            raise DwarfError("file truncated while reading")
        return data

    def _raw(self, file, header: tuple) -> bytes:
        if header[1] == _SHT_NOBITS:
            return b""
        if header[5] > MAX_SECTION:
            raise DwarfError(f"section of {header[5]} bytes is too large")
        return self._read(file, header[4], header[5])

    def has_section(self, name: str) -> bool:
        header = self.sections.get(name) or self.sections.get(".z" + name[1:])
        return header is not None and header[1] != _SHT_NOBITS and header[5] > 0

    def section(self, name: str) -> bytes | None:
        """The bytes of section `name` (e.g. '.debug_info'), decompressed; None when absent."""
        header = self.sections.get(name)
        legacy = header is None and name.startswith(".debug_")
        if legacy:  # GCC's older -gz=zlib-gnu: '.zdebug_info', "ZLIB" and a big-endian size
            header = self.sections.get(".z" + name[1:])
        if header is None or header[1] == _SHT_NOBITS:
            return None
        with open(self.path, "rb") as file:
            data = self._raw(file, header)
        if legacy:
            if len(data) < 12 or data[:4] != b"ZLIB":
                raise DwarfError(f"compressed section {name} has no ZLIB header")
            return _inflate(data[12:], int.from_bytes(data[4:12], "big"), name)
        if header[2] & _SHF_COMPRESSED:
            if len(data) < _COMPRESSION_HEADER.size:
                raise DwarfError(f"compressed section {name} is truncated")
            kind, _reserved, size, _alignment = _COMPRESSION_HEADER.unpack_from(data)
            if kind == _ELFCOMPRESS_ZSTD:
                raise DwarfError(f"section {name} is compressed with zstd, which is not supported (only zlib)")
            if kind != _ELFCOMPRESS_ZLIB:
                raise DwarfError(f"section {name} is compressed with unknown method {kind}")
            return _inflate(data[_COMPRESSION_HEADER.size :], size, name)
        return data

    def sections_of_type(self, section_type: int) -> list[tuple]:
        return [header for header in self._headers if header[1] == section_type]

    def section_data(self, header: tuple) -> bytes:
        with open(self.path, "rb") as file:
            return self._raw(file, header)

    def linked(self, header: tuple) -> tuple | None:
        return self._headers[header[6]] if header[6] < len(self._headers) else None

    def build_id(self) -> bytes:
        for header in self.sections_of_type(_SHT_NOTE):
            data = self.section_data(header)
            position = 0
            while position + 12 <= len(data):
                name_size, description_size, note_type = struct.unpack_from("<III", data, position)
                name_start = position + 12
                description_start = name_start + _aligned(name_size, 4)
                position = description_start + _aligned(description_size, 4)
                if position > len(data):
                    break
                if note_type == _NT_GNU_BUILD_ID and data[name_start : name_start + name_size] == b"GNU\0":
                    return data[description_start : description_start + description_size]
        return b""


def _inflate(data: bytes, size: int, name: str) -> bytes:
    if size > MAX_SECTION:
        raise DwarfError(f"compressed section {name} claims {size} bytes, too large")
    try:
        inflated = zlib.decompressobj().decompress(data, size + 1)  # max_length: no bomb is inflated whole
    except zlib.error as error:
        raise DwarfError(f"compressed section {name} is damaged ({error})") from None
    if len(inflated) != size:
        raise DwarfError(f"compressed section {name} inflates to {len(inflated)} bytes, not {size}")
    return inflated


def _aligned(value: int, alignment: int) -> int:
    return (value + alignment - 1) // alignment * alignment


def _c_string(data: bytes, offset: int) -> bytes:
    if not 0 <= offset < len(data):
        raise DwarfError(f"string offset {offset} out of range")
    end = data.find(b"\0", offset)
    if end < 0:
        raise DwarfError(f"string at offset {offset} is not terminated")
    return data[offset:end]


def _separate_debug_file(elf: _Elf) -> _Elf | None:
    """The debug file a package installs apart from `elf`: by build id, else by .gnu_debuglink
    (GDB's search order; see "Separate Debug Files" in its manual)."""
    build_id = elf.build_id()
    candidates = []
    if len(build_id) >= 2:
        hexadecimal = build_id.hex()
        candidates.append(f"{DEBUG_ROOT}/.build-id/{hexadecimal[:2]}/{hexadecimal[2:]}.debug")
    link = elf.section(".gnu_debuglink")
    if link:
        name = os.path.basename(_c_string(link, 0).decode("utf-8", "replace"))
        folder = os.path.dirname(elf.path)
        if name:
            candidates += [os.path.join(folder, name), os.path.join(folder, ".debug", name),
                           DEBUG_ROOT + os.path.join(folder, name)]  # fmt: skip
    for candidate in candidates:
        if os.path.realpath(candidate) == os.path.realpath(elf.path):
            continue
        try:
            debug = _Elf(candidate)
        except (OSError, DwarfError):
            continue
        if debug.has_section(".debug_info") and (not build_id or debug.build_id() in (build_id, b"")):
            return debug
    return None


def _supplementary_file(elf: _Elf) -> str | None:
    """The dwz file that `elf` shares strings and entries with (DW_FORM_GNU_ref_alt and the like)."""
    link = elf.section(".gnu_debugaltlink")
    if link is not None:
        name = _c_string(link, 0).decode("utf-8", "replace")
        build_id = link[len(name.encode()) + 1 :]
    else:
        supplement = elf.section(".debug_sup")
        if supplement is None or len(supplement) < 4:
            return None
        name, build_id = _c_string(supplement, 3).decode("utf-8", "replace"), b""
    candidates = [os.path.join(os.path.dirname(elf.path), name)]
    if len(build_id) >= 2:
        candidates.append(f"{DEBUG_ROOT}/.build-id/{build_id.hex()[:2]}/{build_id.hex()[2:]}.debug")
    for candidate in candidates:
        if os.path.isfile(candidate):
            return candidate
    raise DwarfError(f"its debug information continues in {name!r} (dwz), which is not installed")


# DWARF


@record(frozen=True, slots=True)
class _Abbreviation:
    tag: int
    has_children: bool
    attributes: tuple[tuple[int, int, int], ...]  # (attribute, form, implicit constant)
    fixed_size: int | None  # bytes of all the attributes, when no form has a variable size
    sibling_at: int | None  # offset of a DW_FORM_ref4 DW_AT_sibling after fixed-size attributes


class _Unit:
    """A unit's header, its abbreviations and the bases its root entry sets."""

    __slots__ = ("dwarf", "data", "offset", "end", "entries", "version", "unit_type", "offset_size",
                 "address_size", "abbreviation_offset", "signature", "type_offset", "form_sizes",
                 "abbreviations", "string_offsets_base", "address_base")  # fmt: skip

    def __init__(self, dwarf: _Dwarf, data: bytes, offset: int, end: int) -> None:
        self.dwarf, self.data, self.offset, self.end = dwarf, data, offset, end
        self.signature = self.type_offset = 0
        self.abbreviations: dict[int, _Abbreviation] | None = None
        self.string_offsets_base: int | None = None
        self.address_base = 0


@record(frozen=True, slots=True, eq=False)
class _Entry:
    """A debugging information entry (DIE)."""

    unit: _Unit
    offset: int
    tag: int
    attributes: dict[int, tuple[int, int]]  # attribute → (form, raw value)
    has_children: bool
    end: int  # where its attributes end: its first child, or its next sibling


def _form_sizes(offset_size: int, address_size: int, version: int) -> dict[int, int]:
    """Bytes of each fixed-size form, in a unit of these sizes."""
    sizes = {_FORM_ADDR: address_size, _FORM_DATA1: 1, _FORM_DATA2: 2, _FORM_DATA4: 4, _FORM_DATA8: 8,
             _FORM_DATA16: 16, _FORM_FLAG: 1, _FORM_FLAG_PRESENT: 0, _FORM_IMPLICIT_CONST: 0, _FORM_REF1: 1,
             _FORM_REF2: 2, _FORM_REF4: 4, _FORM_REF8: 8, _FORM_REF_SIG8: 8, _FORM_REF_SUP4: 4, _FORM_REF_SUP8: 8,
             _FORM_STRX1: 1, _FORM_STRX2: 2, _FORM_STRX3: 3, _FORM_STRX4: 4, _FORM_ADDRX1: 1, _FORM_ADDRX2: 2,
             _FORM_ADDRX3: 3, _FORM_ADDRX4: 4}  # fmt: skip
    for form in (_FORM_STRP, _FORM_LINE_STRP, _FORM_SEC_OFFSET, _FORM_STRP_SUP, _FORM_GNU_REF_ALT, _FORM_GNU_STRP_ALT):
        sizes[form] = offset_size
    sizes[_FORM_REF_ADDR] = address_size if version == 2 else offset_size  # DWARF 2 said address-sized
    return sizes


def _uleb(data: bytes, position: int, end: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if position >= end:
            raise DwarfError("LEB128 number runs past the end of its unit")
        byte = data[position]
        position += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, position
        shift += 7
        if shift > 70:  # ten bytes hold any 64-bit value
            raise DwarfError("LEB128 number too long")


def _sleb(data: bytes, position: int, end: int) -> tuple[int, int]:
    start = position
    result, position = _uleb(data, position, end)
    bits = 7 * (position - start)
    if data[position - 1] & 0x40:
        result -= 1 << bits
    return result, position


def _initial_length(data: bytes, position: int) -> tuple[int, int, int]:
    """A unit's initial length: (length, offset size: 4 or 8 for 64-bit DWARF, position after)."""
    length = _unsigned(data, position, 4, len(data))
    if length == 0xFFFFFFFF:
        return _unsigned(data, position + 4, 8, len(data)), 8, position + 12
    return length, 4, position + 4


def _unsigned(data: bytes, position: int, size: int, end: int) -> int:
    if position + size > end:
        raise DwarfError("value runs past the end of its unit")
    return int.from_bytes(data[position : position + size], "little")


class _Dwarf:
    """The DWARF sections of one ELF file, and what has been decoded of them."""

    def __init__(self, elf: _Elf, symbol_files: tuple[_Elf, ...] = (), supplementary: bool = False) -> None:
        self.elf = elf
        self._symbol_files = symbol_files
        self._supplementary = supplementary
        self.info = elf.section(".debug_info") or b""
        self.abbrev = elf.section(".debug_abbrev") or b""
        self.strings = elf.section(".debug_str") or b""
        self.line_strings = elf.section(".debug_line_str") or b""
        self.string_offsets = elf.section(".debug_str_offsets") or b""
        self.addresses = elf.section(".debug_addr") or b""
        self._units: list[_Unit] | None = None
        self._type_units: dict[int, _Unit] | None = None
        self._abbreviation_tables: dict[tuple[int, int, int, int], dict[int, _Abbreviation]] = {}
        self._types: dict[tuple[int, int], CType] = {}
        self._alternate: _Dwarf | None = None

    # Finding the function

    def function_parameters(self, function: str) -> list[Parameter] | None:
        addresses, aliases = self._symbols(function.encode())
        names = aliases | {function.encode()}
        first = self._units_holding(addresses)
        if not self._may_name(names):
            units = first  # no need to read every unit to know that no entry has one of `names`
        else:
            units = first + self.units()
        searched = set()
        for unit in units:
            if id(unit) in searched or unit.unit_type not in (_UT_COMPILE, _UT_PARTIAL):
                continue
            searched.add(id(unit))
            found = self._search(unit, names, addresses)
            if found is not None:
                return self._parameters(found)
        return None

    def _may_name(self, names: frozenset[bytes]) -> bool:
        """Whether an entry may have one of `names`: whether it is a string in any section that
        holds names (a supplementary file's strings are not looked at)."""
        if self.elf.has_section(".gnu_debugaltlink") or self.elf.has_section(".debug_sup"):
            return True
        texts = (self.strings, self.line_strings, self.info)  # DW_FORM_string: a name in .debug_info itself
        return any(name + b"\0" in text for name in names for text in texts)

    def _search(self, unit: _Unit, names: frozenset[bytes], addresses: frozenset[int]) -> _Entry | None:
        """The definition of the function in `unit`: an entry with one of `names` (or at one of
        `addresses`), else one that completes such an entry (DW_AT_specification: C++ methods
        defined outside their class; DW_AT_abstract_origin: out-of-line copies)."""
        self._prepare(unit)
        data, end, abbreviations = unit.data, unit.end, unit.abbreviations
        position, depth, completing = unit.entries, 0, None
        while position < end:
            start = position
            code = data[position]
            if code < 0x80:
                position += 1
            else:
                code, position = _uleb(data, position, end)
            if code == 0:  # the end of a list of children
                depth -= 1
                if depth <= 0:
                    break
                continue
            abbreviation = abbreviations.get(code)
            if abbreviation is None:
                raise DwarfError(f"entry at 0x{start:x} uses undefined abbreviation {code}")
            if abbreviation.tag == _TAG_SUBPROGRAM:
                entry = self._entry_from(unit, start, abbreviation, position)
                match = self._matches(entry, names, addresses)
                if match == 2:
                    return entry
                if match == 1 and completing is None:
                    completing = entry
                position = self._after(entry)
                continue
            if not abbreviation.has_children or abbreviation.tag in _SCOPES:
                if abbreviation.fixed_size is not None:
                    position += abbreviation.fixed_size
                else:
                    position = self._entry_from(unit, start, abbreviation, position).end
                depth += abbreviation.has_children
                continue
            if abbreviation.sibling_at is not None:  # GCC: skip the subtree in one step
                sibling = unit.offset + _unsigned(data, position + abbreviation.sibling_at, 4, end)
                if not start < sibling <= end:
                    raise DwarfError(f"entry at 0x{start:x} has a sibling outside its unit")
                position = sibling
                continue
            position = self._skip_subtree(unit, self._skip_attributes(unit, abbreviation, position))
        return completing

    def _matches(self, entry: _Entry, names: frozenset[bytes], addresses: frozenset[int]) -> int:
        """2: a definition with one of `names`, or at one of `addresses`; 1: one that completes an
        entry with one of `names`; 0: another function, or only a declaration."""
        attributes = entry.attributes
        if _AT_DECLARATION in attributes:
            return 0
        own = [self._string_bytes(entry, attribute) for attribute in (_AT_NAME, _AT_LINKAGE_NAME, _AT_MIPS_LINKAGE_NAME)
               if attribute in attributes]  # fmt: skip
        if not names.isdisjoint(own):
            return 2
        if addresses and _AT_LOW_PC in attributes and self._address(entry, _AT_LOW_PC) in addresses:
            return 2
        if own:
            return 0
        referred = entry
        for _ in range(MAX_DEPTH):
            attribute = next((a for a in (_AT_SPECIFICATION, _AT_ABSTRACT_ORIGIN) if a in referred.attributes), None)
            if attribute is None:
                return 0
            referred = self._referred(referred, attribute)
            referred_names = [self._string_bytes(referred, a) for a in (_AT_NAME, _AT_LINKAGE_NAME)
                              if a in referred.attributes]  # fmt: skip
            if referred_names:
                return 0 if names.isdisjoint(referred_names) else 1
        raise DwarfError(f"entry at 0x{entry.offset:x}: chain of specifications too long")

    def _symbols(self, name: bytes) -> tuple[frozenset[int], frozenset[bytes]]:
        """The addresses of the defined function symbols named `name` (in .symtab, else .dynsym),
        and the names of every function symbol at those addresses: glibc's `malloc` is
        `__libc_malloc` in DWARF, `pthread_create@@GLIBC_2.34` is `__pthread_create_2_1`."""
        for elf in self._symbol_files:
            for section_type in (_SHT_SYMTAB, _SHT_DYNSYM):
                addresses, names = set(), set()
                for header in elf.sections_of_type(section_type):
                    strings_header = elf.linked(header)
                    if strings_header is None:
                        continue
                    strings, symbols = elf.section_data(strings_header), elf.section_data(header)
                    offsets = set()
                    for suffix in (b"\0", b"@"):  # 'pthread_create@@GLIBC_2.34': a versioned name
                        position = strings.find(name + suffix)
                        while position >= 0:  # a name may be the tail of a longer one (merged strings)
                            offsets.add(position)
                            position = strings.find(name + suffix, position + 1)
                    if not offsets:
                        continue
                    whole = len(symbols) - len(symbols) % _SYMBOL.size
                    functions = [(name_offset, value) for name_offset, info, _other, section, value, _size
                                 in _SYMBOL.iter_unpack(symbols[:whole]) if info & 0xF == _STT_FUNC and section != 0]  # fmt: skip
                    found = {value for name_offset, value in functions if name_offset in offsets}
                    for name_offset, value in functions:
                        if value in found and 0 <= name_offset < len(strings):
                            names.add(_c_string(strings, name_offset).split(b"@")[0])
                    addresses |= found
                if addresses:
                    return frozenset(addresses), frozenset(names)
        return frozenset(), frozenset()

    def _units_holding(self, addresses: frozenset[int]) -> list[_Unit]:
        """The compilation units whose .debug_aranges ranges hold one of `addresses`."""
        data = self.elf.section(".debug_aranges") if addresses else None
        if not data:
            return []
        found, position = [], 0
        while position + 4 <= len(data):
            start = position
            length, offset_size, position = _initial_length(data, position)
            end = position + length
            if end > len(data) or length < 4 + offset_size:
                raise DwarfError(".debug_aranges: a set runs past the end of the section")
            info_offset = _unsigned(data, position + 2, offset_size, end)
            address_size = _unsigned(data, position + 2 + offset_size, 1, end)
            if address_size not in (4, 8):
                raise DwarfError(f".debug_aranges: address size {address_size}")
            position = start + _aligned(position + 4 + offset_size - start, 2 * address_size)
            while position + 2 * address_size <= end:
                low = _unsigned(data, position, address_size, end)
                size = _unsigned(data, position + address_size, address_size, end)
                position += 2 * address_size
                if low == size == 0:
                    break
                if any(low <= address < low + size for address in addresses):
                    unit = self.unit_at(info_offset)
                    if unit is not None and unit.offset == info_offset and unit not in found:
                        found.append(unit)
                    break
            position = end
        return found

    # Parameters and types

    def _parameters(self, function: _Entry) -> list[Parameter]:
        parameters = []
        for child in self._children(function):
            if child.tag != _TAG_FORMAL_PARAMETER:
                continue
            described = self._through_origins(child)
            name = self._string(described, _AT_NAME) if _AT_NAME in described.attributes else ""
            if _AT_TYPE not in described.attributes:
                raise DwarfError(f"parameter {name!r} at 0x{child.offset:x} has no type")
            parameters.append(Parameter(name, self._type(self._referred(described, _AT_TYPE), 0)))
        return parameters

    def _through_origins(self, entry: _Entry) -> _Entry:
        """The entry that names and types `entry`: itself, or its abstract origin's."""
        for _ in range(MAX_DEPTH):
            if _AT_NAME in entry.attributes and _AT_TYPE in entry.attributes:
                return entry
            if _AT_ABSTRACT_ORIGIN not in entry.attributes:
                return entry
            entry = self._referred(entry, _AT_ABSTRACT_ORIGIN)
        raise DwarfError(f"entry at 0x{entry.offset:x}: chain of abstract origins too long")

    def _type(self, entry: _Entry | None, depth: int) -> CType:
        """The CType of type entry `entry` (None: void), through typedefs and qualifiers."""
        typedef = ""
        for _ in range(MAX_DEPTH):
            if entry is None or (entry.tag not in _QUALIFIERS and entry.tag != _TAG_TYPEDEF):
                break
            if entry.tag == _TAG_TYPEDEF and not typedef:
                typedef = self._name(entry)
            entry = self._referred(entry, _AT_TYPE) if _AT_TYPE in entry.attributes else None
        else:
            raise DwarfError("chain of typedefs and qualifiers too long")
        if entry is None:
            found = _VOID
        else:
            key = (id(entry.unit.data), entry.offset)
            found = self._types.get(key)
            if found is None:
                found = self._types[key] = self._base_type(entry, depth)
        return replace(found, typedef=typedef) if typedef else found

    def _base_type(self, entry: _Entry, depth: int) -> CType:
        if depth > MAX_DEPTH:
            raise DwarfError("types nested too deeply")
        tag, name = entry.tag, self._name(entry)
        size = self._constant(entry, _AT_BYTE_SIZE)
        if tag == _TAG_BASE:
            encoding = self._constant(entry, _AT_ENCODING)
            if encoding == _ATE_BOOLEAN:
                return CType("bool", name, size)
            if encoding in _FLOATS:
                return CType("float", name, size)
            return CType("int", _c_integer_name(name), size, signed=encoding in _SIGNED)
        if tag in (_TAG_POINTER, _TAG_REFERENCE, _TAG_RVALUE_REFERENCE):
            target = self._type(self._referred(entry, _AT_TYPE) if _AT_TYPE in entry.attributes else None, depth + 1)
            size = size or entry.unit.address_size
            if target.kind == "void":
                return CType("pointer", "void *", size)
            spelled = target.name or target.typedef or f"({target.kind})"
            return CType("pointer", spelled + ("*" if spelled.endswith("*") else " *"), size, target=target)
        if tag in (_TAG_STRUCTURE, _TAG_CLASS, _TAG_INTERFACE, _TAG_UNION):
            kind = "union" if tag == _TAG_UNION else "struct"
            return CType(kind, f"{kind} {name}" if name else "", size)
        if tag == _TAG_ENUMERATION:
            return CType("enum", f"enum {name}" if name else "", size, signed=self._enum_signed(entry, depth))
        if tag == _TAG_ARRAY:
            return self._array(entry, depth)
        if tag == _TAG_SUBROUTINE_TYPE:
            returns = self._type(self._referred(entry, _AT_TYPE) if _AT_TYPE in entry.attributes else None, depth + 1)
            return CType("function", "", 0, target=None if returns.kind == "void" else returns)
        if tag == _TAG_UNSPECIFIED_TYPE:
            return CType("void", name or "void", 0)
        return CType("unknown", name, size)

    def _enum_signed(self, entry: _Entry, depth: int) -> bool:
        if _AT_ENCODING in entry.attributes:  # GCC's DW_AT_encoding on an enum, an extension
            return self._constant(entry, _AT_ENCODING) in _SIGNED
        if _AT_TYPE in entry.attributes:  # the underlying integer type (DWARF 3 and later)
            return self._type(self._referred(entry, _AT_TYPE), depth + 1).signed
        for child in self._children(entry):
            if child.tag == _TAG_ENUMERATOR and child.attributes.get(_AT_CONST_VALUE, (0, 0))[0] == _FORM_SDATA:
                if child.attributes[_AT_CONST_VALUE][1] < 0:
                    return True
        return False

    def _array(self, entry: _Entry, depth: int) -> CType:
        element = self._type(self._referred(entry, _AT_TYPE) if _AT_TYPE in entry.attributes else None, depth + 1)
        lengths = []
        for child in self._children(entry):
            if child.tag != _TAG_SUBRANGE:
                continue
            if _AT_COUNT in child.attributes:
                lengths.append(self._constant(child, _AT_COUNT))
            elif _AT_UPPER_BOUND in child.attributes:
                bound = self._constant(child, _AT_UPPER_BOUND, default=-1)
                lengths.append(bound + 1 if bound >= 0 else 0)
            else:
                lengths.append(0)  # a flexible array member
            if len(lengths) > MAX_DEPTH:
                raise DwarfError("array of too many dimensions")
        found = element
        for length in reversed(lengths or [0]):  # int a[2][3]: an array of 2 arrays of 3 ints
            spelled = found.name or found.typedef or f"({found.kind})"
            spelled = spelled.replace(" [", f" [{length}][", 1) if found.kind == "array" else f"{spelled} [{length}]"
            found = CType("array", spelled, length * found.size, target=found, length=length)
        return found

    # Entries

    def units(self) -> list[_Unit]:
        if self._units is None:
            self._units = self._read_units(self.info, types=False)
        return self._units

    def unit_at(self, offset: int) -> _Unit | None:
        """The unit of .debug_info that holds `offset` (its header or its entries)."""
        units = self.units()
        index = bisect.bisect_right(self._unit_offsets, offset) - 1
        if index < 0 or offset >= units[index].end:
            return None
        return units[index]

    @functools.cached_property
    def _unit_offsets(self) -> list[int]:
        return [unit.offset for unit in self.units()]

    def _read_units(self, data: bytes, types: bool) -> list[_Unit]:
        units, position = [], 0
        while position < len(data):
            start = position
            length, offset_size, position = _initial_length(data, position)
            if offset_size == 4 and length >= 0xFFFFFFF0:
                raise DwarfError(f"unit at 0x{start:x} has reserved length 0x{length:x}")
            end = position + length
            if end > len(data):
                raise DwarfError(f"unit at 0x{start:x} runs past the end of its section")
            unit = _Unit(self, data, start, end)
            unit.offset_size = offset_size
            unit.version = _unsigned(data, position, 2, end)
            position += 2
            if unit.version == 5:
                unit.unit_type = _unsigned(data, position, 1, end)
                unit.address_size = _unsigned(data, position + 1, 1, end)
                unit.abbreviation_offset = _unsigned(data, position + 2, offset_size, end)
                position += 2 + offset_size
                if unit.unit_type in (_UT_SKELETON, _UT_SPLIT_COMPILE):
                    position += 8  # the id of the split unit
                elif unit.unit_type in (_UT_TYPE, _UT_SPLIT_TYPE):
                    unit.signature = _unsigned(data, position, 8, end)
                    unit.type_offset = _unsigned(data, position + 8, offset_size, end)
                    position += 8 + offset_size
            elif unit.version in (2, 3, 4):
                unit.unit_type = _UT_TYPE if types else _UT_COMPILE
                unit.abbreviation_offset = _unsigned(data, position, offset_size, end)
                unit.address_size = _unsigned(data, position + offset_size, 1, end)
                position += offset_size + 1
                if types:  # .debug_types (DWARF 4)
                    unit.signature = _unsigned(data, position, 8, end)
                    unit.type_offset = _unsigned(data, position + 8, offset_size, end)
                    position += 8 + offset_size
            else:
                raise DwarfError(f"unit at 0x{start:x} is DWARF version {unit.version}; versions 2 to 5 are supported")
            if unit.address_size not in (4, 8):
                raise DwarfError(f"unit at 0x{start:x} has address size {unit.address_size}")
            if position > end:
                raise DwarfError(f"unit at 0x{start:x} is shorter than its header")
            unit.entries = position
            unit.form_sizes = _form_sizes(offset_size, unit.address_size, unit.version)
            units.append(unit)
            position = end
        return units

    def _type_unit(self, signature: int) -> _Unit:
        if self._type_units is None:
            units = [unit for unit in self.units() if unit.unit_type == _UT_TYPE]
            types = self.elf.section(".debug_types")
            if types:
                units += self._read_units(types, types=True)
            self._type_units = {unit.signature: unit for unit in units}
        unit = self._type_units.get(signature)
        if unit is None:
            raise DwarfError(f"no type unit has signature 0x{signature:016x}")
        return unit

    def _prepare(self, unit: _Unit) -> None:
        """Read the unit's abbreviations, and the bases of string and address indexes that its
        root entry sets (DWARF 5: DW_AT_str_offsets_base, DW_AT_addr_base)."""
        if unit.abbreviations is not None:
            return
        key = (unit.abbreviation_offset, unit.offset_size, unit.address_size, unit.version == 2)
        tables = unit.dwarf._abbreviation_tables  # a supplementary file's unit: that file's tables
        table = tables.get(key)
        if table is None:
            table = tables[key] = self._read_abbreviations(unit)
        unit.abbreviations = table
        root = self._entry(unit, unit.entries)
        if root is not None:
            for attribute in (_AT_STR_OFFSETS_BASE, _AT_ADDR_BASE, _AT_GNU_ADDR_BASE):
                if attribute in root.attributes:
                    base = self._constant(root, attribute)
                    if attribute == _AT_STR_OFFSETS_BASE:
                        unit.string_offsets_base = base
                    else:
                        unit.address_base = base

    def _read_abbreviations(self, unit: _Unit) -> dict[int, _Abbreviation]:
        data, position, sizes = unit.dwarf.abbrev, unit.abbreviation_offset, unit.form_sizes
        end = len(data)
        if position >= end:
            raise DwarfError(f"unit at 0x{unit.offset:x}: abbreviation offset 0x{position:x} out of range")
        table = {}
        while True:
            code, position = _uleb(data, position, end)
            if code == 0:
                return table
            tag, position = _uleb(data, position, end)
            has_children = _unsigned(data, position, 1, end)
            position += 1
            attributes = []
            fixed_size: int | None = 0
            sibling_at = None
            while True:
                if position + 1 < end and data[position] < 0x80 and data[position + 1] < 0x80:  # most pairs
                    attribute, form = data[position], data[position + 1]
                    position += 2
                else:
                    attribute, position = _uleb(data, position, end)
                    form, position = _uleb(data, position, end)
                if attribute == form == 0:
                    break
                constant = 0
                if form == _FORM_IMPLICIT_CONST:
                    constant, position = _sleb(data, position, end)
                size = sizes.get(form)
                if size is None and form not in _VARIABLE_FORMS:
                    raise DwarfError(f"abbreviation {code} uses unknown form 0x{form:x}")
                if attribute == _AT_SIBLING and form == _FORM_REF4 and fixed_size is not None:
                    sibling_at = fixed_size
                fixed_size = None if size is None or fixed_size is None else fixed_size + size
                attributes.append((attribute, form, constant))
            table[code] = _Abbreviation(tag, bool(has_children), tuple(attributes), fixed_size, sibling_at)

    def _entry(self, unit: _Unit, offset: int) -> _Entry | None:
        """The entry at `offset`; None for the null entry that ends a list of children."""
        if not unit.entries <= offset < unit.end:
            raise DwarfError(f"entry offset 0x{offset:x} is outside its unit")
        self._prepare(unit)
        code, position = _uleb(unit.data, offset, unit.end)
        if code == 0:
            return None
        abbreviation = unit.abbreviations.get(code)
        if abbreviation is None:
            raise DwarfError(f"entry at 0x{offset:x} uses undefined abbreviation {code}")
        return self._entry_from(unit, offset, abbreviation, position)

    def _entry_from(self, unit: _Unit, offset: int, abbreviation: _Abbreviation, position: int) -> _Entry:
        data, end, sizes = unit.data, unit.end, unit.form_sizes
        attributes = {}
        for attribute, form, constant in abbreviation.attributes:
            while form == _FORM_INDIRECT:
                form, position = _uleb(data, position, end)
            size = sizes.get(form)
            if size is not None:
                if form == _FORM_IMPLICIT_CONST:
                    value = constant
                elif form in (_FORM_FLAG_PRESENT, _FORM_DATA16):
                    value = 1 if form == _FORM_FLAG_PRESENT else position
                else:
                    value = _unsigned(data, position, size, end)
                position += size
            elif form in _LEB_FORMS:
                value, position = _uleb(data, position, end)
            elif form == _FORM_SDATA:
                value, position = _sleb(data, position, end)
            elif form == _FORM_STRING:
                value, position = position, data.find(b"\0", position, end) + 1
                if position == 0:
                    raise DwarfError(f"entry at 0x{offset:x}: string not terminated within its unit")
            elif form in _BLOCK_FORMS:
                length = _unsigned(data, position, _BLOCK_FORMS[form], end)
                value, position = position, position + _BLOCK_FORMS[form] + length
            elif form in (_FORM_BLOCK, _FORM_EXPRLOC):
                length, value = _uleb(data, position, end)
                position = value + length
            else:
                raise DwarfError(f"entry at 0x{offset:x}: unknown form 0x{form:x}")
            if position > end:
                raise DwarfError(f"entry at 0x{offset:x} runs past the end of its unit")
            attributes[attribute] = (form, value)
        return _Entry(unit, offset, abbreviation.tag, attributes, abbreviation.has_children, position)

    def _skip_attributes(self, unit: _Unit, abbreviation: _Abbreviation, position: int) -> int:
        if abbreviation.fixed_size is not None:
            position += abbreviation.fixed_size
            if position > unit.end:
                raise DwarfError(f"entry before 0x{position:x} runs past the end of its unit")
            return position
        return self._entry_from(unit, position, abbreviation, position).end

    def _skip_subtree(self, unit: _Unit, position: int) -> int:
        """Where the children starting at `position` end (after their null entry)."""
        data, end, abbreviations, depth = unit.data, unit.end, unit.abbreviations, 1
        while depth:
            if position >= end:
                raise DwarfError("a list of children runs past the end of its unit")
            start = position
            code, position = _uleb(data, position, end)
            if code == 0:
                depth -= 1
                continue
            abbreviation = abbreviations.get(code)
            if abbreviation is None:
                raise DwarfError(f"entry at 0x{start:x} uses undefined abbreviation {code}")
            position = self._skip_attributes(unit, abbreviation, position)
            depth += abbreviation.has_children
        return position

    def _after(self, entry: _Entry) -> int:
        """Where the next sibling of `entry` starts."""
        if not entry.has_children:
            return entry.end
        sibling = entry.attributes.get(_AT_SIBLING)
        if sibling is not None and sibling[0] in _LOCAL_REFERENCES:
            target = entry.unit.offset + sibling[1]
            if not entry.offset < target <= entry.unit.end:
                raise DwarfError(f"entry at 0x{entry.offset:x} has a sibling outside its unit")
            return target
        return self._skip_subtree(entry.unit, entry.end)

    def _children(self, entry: _Entry):
        if not entry.has_children:
            return
        position = entry.end
        while True:
            if position >= entry.unit.end:
                raise DwarfError(f"the children of entry 0x{entry.offset:x} run past the end of its unit")
            child = self._entry(entry.unit, position)
            if child is None:
                return
            yield child
            position = self._after(child)

    # Attribute values

    def _referred(self, entry: _Entry, attribute: int) -> _Entry:
        """The entry that reference attribute `attribute` of `entry` points to."""
        form, value = entry.attributes[attribute]
        unit = entry.unit
        if form in _LOCAL_REFERENCES:
            target_unit, offset = unit, unit.offset + value
        elif form == _FORM_REF_ADDR:
            target_unit, offset = unit.dwarf.unit_at(value), value
        elif form == _FORM_REF_SIG8:
            target_unit = unit.dwarf._type_unit(value)
            offset = target_unit.offset + target_unit.type_offset
        elif form in (_FORM_GNU_REF_ALT, _FORM_REF_SUP4, _FORM_REF_SUP8):
            target_unit, offset = unit.dwarf.alternate().unit_at(value), value
        else:
            raise DwarfError(f"entry at 0x{entry.offset:x}: attribute 0x{attribute:x} is not a reference")
        if target_unit is None:
            raise DwarfError(f"entry at 0x{entry.offset:x} refers to 0x{offset:x}, outside every unit")
        found = target_unit.dwarf._entry(target_unit, offset)
        if found is None:
            raise DwarfError(f"entry at 0x{entry.offset:x} refers to a null entry")
        return found

    def alternate(self) -> _Dwarf:
        """The dwz supplementary file's debug information."""
        if self._supplementary:
            raise DwarfError("a supplementary file refers to another")
        if self._alternate is None:
            path = _supplementary_file(self.elf)
            if path is None:
                raise DwarfError("refers to a supplementary file (dwz) but names none")
            self._alternate = _Dwarf(_Elf(path), supplementary=True)
        return self._alternate

    def _constant(self, entry: _Entry, attribute: int, default: int = 0) -> int:
        form, value = entry.attributes.get(attribute, (0, default))
        if form in (_FORM_DATA1, _FORM_DATA2, _FORM_DATA4, _FORM_DATA8, _FORM_UDATA, _FORM_SDATA,
                    _FORM_IMPLICIT_CONST, _FORM_SEC_OFFSET, 0):  # fmt: skip
            return value
        return default  # a block or expression (a variable-length array's bound): not a constant

    def _address(self, entry: _Entry, attribute: int) -> int | None:
        form, value = entry.attributes[attribute]
        if form == _FORM_ADDR:
            return value
        if form in _ADDRX_FORMS:
            unit, addresses = entry.unit, entry.unit.dwarf.addresses
            position = unit.address_base + value * unit.address_size
            if not 0 <= position <= len(addresses) - unit.address_size:
                raise DwarfError(f"entry at 0x{entry.offset:x}: address index {value} out of range")
            return _unsigned(addresses, position, unit.address_size, len(addresses))
        return None

    def _name(self, entry: _Entry) -> str:
        return self._string(entry, _AT_NAME) if _AT_NAME in entry.attributes else ""

    def _string(self, entry: _Entry, attribute: int) -> str:
        return self._string_bytes(entry, attribute).decode("utf-8", "replace")

    def _string_bytes(self, entry: _Entry, attribute: int) -> bytes:
        form, value = entry.attributes[attribute]
        unit = entry.unit
        sections = unit.dwarf  # the file of the entry: this one, or its supplementary file
        if form == _FORM_STRING:
            return unit.data[value : unit.data.find(b"\0", value)]
        if form == _FORM_STRP:
            return _c_string(sections.strings, value)
        if form == _FORM_LINE_STRP:
            return _c_string(sections.line_strings, value)
        if form in _STRX_FORMS:
            base = unit.string_offsets_base
            if base is None:  # the offsets table's own header (DWARF 5, 7.26), when no base is given
                base = 8 if unit.offset_size == 4 else 16
            position = base + value * unit.offset_size
            offsets = sections.string_offsets
            if not 0 <= position <= len(offsets) - unit.offset_size:
                raise DwarfError(f"entry at 0x{entry.offset:x}: string index {value} out of range")
            return _c_string(sections.strings, _unsigned(offsets, position, unit.offset_size, len(offsets)))
        if form in (_FORM_GNU_STRP_ALT, _FORM_STRP_SUP):
            return _c_string(sections.alternate().strings, value)
        raise DwarfError(f"entry at 0x{entry.offset:x}: attribute 0x{attribute:x} is not a string (form 0x{form:x})")


_VOID = CType("void", "void", 0)


def _c_integer_name(name: str) -> str:
    """An integer type's name as C programmers write it: GCC's 'long unsigned int' is 'unsigned long'."""
    words = name.split()
    if not words or any(word not in ("signed", "unsigned", "char", "short", "int", "long") for word in words):
        return name
    if "char" in words:
        core = "char"
        return f"{'unsigned ' if 'unsigned' in words else 'signed ' if 'signed' in words else ''}{core}"
    core = "short" if "short" in words else "long long" if words.count("long") == 2 else "long" if "long" in words else "int"
    if "unsigned" in words:
        return f"unsigned {core}"
    return core
