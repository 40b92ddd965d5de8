"""A reader of 64-bit little-endian ELF files, for what bpfrun needs of them: the sections, the
symbols, where an address is in the file. Used on a bundle's BPF object (checked before libbpf
parses it), on binaries (uprobe:BINARY:*, USDT notes). Malformed input raises ElfError.
"""

from __future__ import annotations

import struct

from bpfrun.errors import UserError
from common.record import record

_HEADER = struct.Struct("<16xHHIQQQIHHHHHH")
_SECTION = struct.Struct("<IIQQQQIIQQ")
_PROGRAM_HEADER = struct.Struct("<IIQQQQQQ")
_SYMBOL = struct.Struct("<IBBHQQ")
SHT_PROGBITS, SHT_SYMTAB, SHT_NOTE, SHT_DYNSYM = 1, 2, 7, 11
SHF_EXECINSTR = 0x4
STT_FUNC, STT_OBJECT = 2, 1
STT_GNU_IFUNC = 10  # a function whose address a resolver picks at load time (glibc string functions)
STB_GLOBAL = 1
PT_LOAD = 1
MAX_FILE_BYTES = 1 << 30


class ElfError(ValueError):
    """Not an ELF file this reader understands."""


@record(frozen=True, slots=True)
class Section:
    name: str
    kind: int
    flags: int
    address: int
    offset: int
    size: int
    link: int
    entry_size: int


@record(frozen=True, slots=True)
class Symbol:
    name: str
    kind: int  # STT_*
    binding: int  # STB_*
    section: int  # index; 0: undefined
    value: int


class Elf:
    def __init__(self, data: bytes) -> None:
        if data[:4] != b"\x7fELF" or len(data) < 64 or data[4] != 2 or data[5] != 1:
            raise ElfError("not a 64-bit little-endian ELF file")
        self.data = data
        try:
            fields = _HEADER.unpack_from(data)
            self._program_headers = fields[4], fields[8], fields[9]
            section_offset, section_size, section_count, names_index = fields[5], fields[10], fields[11], fields[12]
            if section_offset + section_count * section_size > len(data):
                raise ElfError("the section headers run past the end of the file")
            raw = [_SECTION.unpack_from(data, section_offset + i * section_size) for i in range(section_count)]
            names = raw[names_index][4] if names_index < len(raw) else 0
            self.sections = [Section(self._string(names, r[0]), *r[1:4], *r[4:7], r[9]) for r in raw]
        except (struct.error, IndexError, OverflowError) as error:
            raise ElfError(f"damaged ELF headers ({error})") from None

    @classmethod
    def read(cls, path: str) -> Elf:
        """The ELF file at `path`; UserError for an unreadable or malformed one."""
        try:
            with open(path, "rb") as file:
                return cls(file.read(MAX_FILE_BYTES))
        except OSError as error:
            raise UserError(f"cannot read {path}: {error.strerror}") from None
        except ElfError as error:
            raise UserError(f"{path}: {error}") from None

    def _string(self, table_offset: int, offset: int) -> str:
        start = table_offset + offset
        end = self.data.find(b"\0", start)
        if end < 0:
            raise ElfError("a name runs past the end of the file")
        return self.data[start:end].decode("utf-8", "replace")

    def section_bytes(self, section: Section) -> bytes:
        if section.offset + section.size > len(self.data):
            raise ElfError(f"section {section.name!r} runs past the end of the file")
        return self.data[section.offset : section.offset + section.size]

    def symbols(self, kinds: tuple[int, ...] = (SHT_SYMTAB, SHT_DYNSYM)) -> list[Symbol]:
        found = []
        try:
            for section in self.sections:
                if section.kind not in kinds or not section.entry_size:
                    continue
                if section.offset + section.size > len(self.data):
                    raise ElfError(f"symbol table {section.name!r} runs past the end of the file")
                strings = self.sections[section.link].offset
                for position in range(section.offset, section.offset + section.size, section.entry_size):
                    name, info, _, index, value, _ = _SYMBOL.unpack_from(self.data, position)
                    found.append(
                        Symbol(self._string(strings, name) if name else "", info & 0xF, info >> 4, index, value)
                    )
        except (struct.error, IndexError, OverflowError) as error:
            raise ElfError(f"damaged symbol table ({error})") from None
        return found

    def file_offset(self, address: int) -> int | None:
        """Where virtual `address` is in the file; None when no loaded segment holds it."""
        offset, size, count = self._program_headers
        try:
            for index in range(count):
                kind, _, start, virtual, _, file_size, _, _ = _PROGRAM_HEADER.unpack_from(
                    self.data, offset + index * size
                )
                if kind == PT_LOAD and virtual <= address < virtual + file_size:
                    return address - virtual + start
        except (struct.error, OverflowError):
            return None
        return None
