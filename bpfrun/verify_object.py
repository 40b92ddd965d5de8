"""Step 2b: the BPF object bound to the bundle's metadata, checked in Python before libbpf parses
it: its programs are exactly the probes' programs, its maps only those the metadata declares,
its data only the read-only globals, and its code calls only the BPF helpers bpftc emits.

A crafted bundle could otherwise declare one harmless probe and carry an undeclared program, a
huge map, or a call to bpf_send_signal. Errors: `UserError`, one line.
"""

from __future__ import annotations

from bpfrun.elf import SHF_EXECINSTR, STB_GLOBAL, STT_FUNC, STT_OBJECT, Elf, ElfError
from bpfrun.errors import UserError
from common.schema import BPF_HELPERS, Resources

INTERNAL_MAPS = ("scratch",)  # bpftc's per-CPU scratch memory (bpftc/codegen/memory.py)
DATA_SECTIONS = (".rodata", ".maps", "license")  # loaded sections that are not code
_CALL = 0x85
_LOAD_IMM64 = 0x18  # a 16-byte instruction


def verify_object(resources: Resources, elf_bytes: bytes) -> None:
    try:
        elf = Elf(elf_bytes)
        symbols = [s for s in elf.symbols() if 0 < s.section < len(elf.sections)]
        _verify_sections(elf)
        _verify_programs(elf, symbols, resources)
        _verify_maps(elf, symbols, resources)
        listed = set(resources.requirements.helpers)
        for section in elf.sections:
            if section.flags & SHF_EXECINSTR:
                _verify_helpers(section.name, elf.section_bytes(section), listed)
    except ElfError as error:
        raise UserError(f"bundle's BPF object is damaged: {error}") from None


def _verify_sections(elf: Elf) -> None:
    _SHF_ALLOC = 0x2
    for section in elf.sections:
        if section.flags & _SHF_ALLOC and not section.flags & SHF_EXECINSTR and section.name not in DATA_SECTIONS:
            raise UserError(f"bundle's BPF object has a data section bpftc does not write: {section.name!r}")


def _verify_programs(elf: Elf, symbols: list, resources: Resources) -> None:
    declared = {probe.program for probe in resources.probes}
    found = set()
    for symbol in symbols:
        section = elf.sections[symbol.section]
        if symbol.kind != STT_FUNC or not section.flags & SHF_EXECINSTR:
            continue
        if symbol.binding == STB_GLOBAL:
            found.add(symbol.name)
        elif section.name != ".text":  # a subprogram (a for-map callback) lives in .text
            raise UserError(f"bundle's BPF object has a hidden program {symbol.name!r} in {section.name!r}")
    if found != declared:
        extra, missing = sorted(found - declared), sorted(declared - found)
        raise UserError(f"bundle's BPF object does not match its probes (undeclared: {extra}, missing: {missing})")


def _verify_maps(elf: Elf, symbols: list, resources: Resources) -> None:
    declared = {spec.elf_name for spec in resources.maps} | set(INTERNAL_MAPS)
    declared |= {resources.event_map, resources.lost_map, resources.probe_names_map, resources.stack_map,
                 resources.usdt_spec_map} - {""}  # fmt: skip
    for symbol in symbols:
        if elf.sections[symbol.section].name == ".maps" and symbol.kind == STT_OBJECT and symbol.name not in declared:
            raise UserError(f"bundle's BPF object has an undeclared map {symbol.name!r}")


def _verify_helpers(section: str, code: bytes, listed: set[str]) -> None:
    """Calls only to helpers bpftc emits, and only to those the bundle's requirements list."""
    for source, number in _calls(code):
        if source == 2:
            raise UserError(f"bundle's code in {section!r} calls a kernel function (kfunc), which bpftc never does")
        if source == 0 and number not in BPF_HELPERS:
            raise UserError(f"bundle's code in {section!r} calls BPF helper {number}, which bpftc never emits")
        if source == 0 and BPF_HELPERS[number] not in listed:
            raise UserError(f"bundle's code in {section!r} calls {BPF_HELPERS[number]}, which its requirements do not list")


def helpers_called(elf_bytes: bytes) -> list[str]:
    """The names of the BPF helpers the object's code calls (numbers when bpftc knows none)."""
    elf = Elf(elf_bytes)
    numbers = {
        number
        for section in elf.sections
        if section.flags & SHF_EXECINSTR
        for source, number in _calls(elf.section_bytes(section))
        if source == 0
    }
    return sorted(BPF_HELPERS.get(number, str(number)) for number in numbers)


def _calls(code: bytes) -> list[tuple[int, int]]:
    """(source register, immediate) of each call instruction: source 0 calls a helper, 1 a
    function of the program, 2 a kernel function."""
    calls, position = [], 0
    while position + 8 <= len(code):
        opcode = code[position]
        if opcode == _CALL:
            calls.append((code[position + 1] >> 4, int.from_bytes(code[position + 4 : position + 8], "little", signed=True)))
        position += 16 if opcode == _LOAD_IMM64 else 8
    return calls
