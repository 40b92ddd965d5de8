"""USDT probes: where a binary's static probes are (its .note.stapsdt notes) and where each site
has its arguments, as the programs read them (common/schema.py's USDT spec).

A note (owner "stapsdt", type 3) holds the site's address, the link-time address of the
.stapsdt.base section, the address of the probe's semaphore (0: none), then the provider, the
probe's name and its arguments, each NUL-terminated. Arguments are in the assembler's syntax,
on x86_64: `-4@%edi` (a register), `8@-16(%rbp)` (memory at a register plus an offset), `4@$5`
(a constant); the number before @ is the size in bytes, negative when signed.
"""

from __future__ import annotations

import functools
import re
import struct

from bpfrun.elf import SHT_NOTE, Elf, ElfError
from bpfrun.errors import UserError
from common import schema
from common.record import record

_NOTE = struct.Struct("<III")
_NT_STAPSDT = 3

# struct pt_regs on x86_64: the offset of each register, under every name of its parts.
_PT_REGS = {
    "r15": 0, "r14": 8, "r13": 16, "r12": 24, "rbp": 32, "rbx": 40, "r11": 48, "r10": 56, "r9": 64,
    "r8": 72, "rax": 80, "rcx": 88, "rdx": 96, "rsi": 104, "rdi": 112, "rip": 128, "rsp": 152,
}  # fmt: skip
_ALIASES = {
    "eax": "rax", "ax": "rax", "al": "rax", "ebx": "rbx", "bx": "rbx", "bl": "rbx", "ecx": "rcx", "cx": "rcx",
    "cl": "rcx", "edx": "rdx", "dx": "rdx", "dl": "rdx", "esi": "rsi", "si": "rsi", "sil": "rsi", "edi": "rdi",
    "di": "rdi", "dil": "rdi", "ebp": "rbp", "bp": "rbp", "bpl": "rbp", "esp": "rsp", "sp": "rsp", "spl": "rsp",
}  # fmt: skip
_ALIASES |= {f"r{n}{suffix}": f"r{n}" for n in range(8, 16) for suffix in ("d", "w", "b")}
_ARGUMENT = re.compile(r"(-?\d+)@(?:%(\w+)|\$(-?\d+)|(-?\d*)\(%(\w+)\))")


@record(frozen=True, slots=True)
class Site:
    provider: str
    name: str
    offset: int  # in the file: where the uprobe goes
    semaphore_offset: int  # in the file; 0: no semaphore
    arguments: str


@record(frozen=True, slots=True)
class Argument:
    kind: int  # schema.USDT_CONSTANT, USDT_REGISTER or USDT_MEMORY
    size: int  # bytes, negative when signed
    register_offset: int
    value: int  # the constant, or the offset from the register


def sites(binary: str, provider: str, name: str) -> list[Site]:
    """The sites of probe `name` (of `provider`, or of any provider when it is '') in `binary`."""
    return [site for site in all_sites(binary) if site.name == name and provider in ("", site.provider)]


@functools.cache
def all_sites(binary: str) -> tuple[Site, ...]:
    elf = Elf.read(binary)
    try:
        return tuple(_read_sites(elf))
    except (ElfError, struct.error, ValueError, IndexError) as error:
        raise UserError(f"{binary} is a damaged ELF file ({error})") from None


def _read_sites(elf: Elf) -> list[Site]:
    base = next((section.address for section in elf.sections if section.name == ".stapsdt.base"), None)
    found = []
    for section in elf.sections:
        if section.kind != SHT_NOTE or section.name != ".note.stapsdt":
            continue
        notes = elf.section_bytes(section)
        position = 0
        while position + _NOTE.size <= len(notes):
            owner_size, description_size, note_type = _NOTE.unpack_from(notes, position)
            owner_start = position + _NOTE.size
            description_start = owner_start + (owner_size + 3) // 4 * 4
            position = description_start + (description_size + 3) // 4 * 4
            if note_type != _NT_STAPSDT or notes[owner_start : owner_start + owner_size].rstrip(b"\0") != b"stapsdt":
                continue
            found.append(_site(notes[description_start : description_start + description_size], base, elf))
    return found


def _site(description: bytes, base: int | None, elf: Elf) -> Site:
    address, note_base, semaphore = struct.unpack_from("<QQQ", description)
    provider, name, arguments = description[24:].split(b"\0")[:3]
    if base is not None:  # a prelinked binary moved its sites with .stapsdt.base
        address += base - note_base
        semaphore += base - note_base if semaphore else 0
    return Site(
        provider.decode("utf-8", "replace"),
        name.decode("utf-8", "replace"),
        _file_offset(elf, address),
        _file_offset(elf, semaphore) if semaphore else 0,
        arguments.decode("utf-8", "replace"),
    )


def _file_offset(elf: Elf, address: int) -> int:
    offset = elf.file_offset(address)
    if offset is None:
        raise ValueError(f"address {address:#x} is in no loaded segment")
    return offset


def parse_arguments(text: str) -> list[Argument]:
    """The arguments of a site; UserError for a form bpfrun cannot read (rip-relative memory)."""
    arguments = []
    for word in text.split():
        match = _ARGUMENT.fullmatch(word)
        register = match and (match[2] or match[5])
        register = _ALIASES.get(register, register) if register else None
        if not match or (register is not None and register not in _PT_REGS) or register == "rip":
            raise UserError(f"USDT argument {word!r}: a form bpfrun cannot read")
        size = int(match[1])
        if match[3] is not None:
            arguments.append(Argument(schema.USDT_CONSTANT, size, 0, int(match[3])))
        elif match[2] is not None:
            arguments.append(Argument(schema.USDT_REGISTER, size, _PT_REGS[register], 0))
        else:
            arguments.append(Argument(schema.USDT_MEMORY, size, _PT_REGS[register], int(match[4] or 0)))
    if len(arguments) > schema.USDT_MAX_ARGS:
        raise UserError(f"a USDT site with {len(arguments)} arguments (at most {schema.USDT_MAX_ARGS})")
    return arguments


def encode_spec(arguments: list[Argument]) -> bytes:
    """The spec map's value for a site (common/schema.py's USDT_SPEC_SIZE)."""
    entries = b"".join(
        struct.pack("<BbHIq", argument.kind, argument.size, argument.register_offset, 0, argument.value)
        for argument in arguments
    )
    return struct.pack("<Q", len(arguments)) + entries.ljust(16 * schema.USDT_MAX_ARGS, b"\0")
