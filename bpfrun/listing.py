"""bpfrun -l [PATTERN]: what this host can attach to, as bpftrace -l lists it, one probe a line.

Tracepoints and raw tracepoints from tracefs; software and hardware events from the perf event
tables (and their aliases); kprobes from tracefs's available_filter_functions where the kernel has
them; `uprobe:BINARY:*` the functions a binary defines (read from its ELF symbol tables). PATTERN
has shell wildcards; without one, everything but uprobes (which need a binary) is listed.
"""

from __future__ import annotations

import fnmatch
import struct
from collections.abc import Iterator
from pathlib import Path

from bpfrun import tracefs
from bpfrun.errors import UserError
from common.schema import EVENT_ALIASES, HARDWARE_EVENTS, SOFTWARE_EVENTS

_ELF_HEADER = struct.Struct("<16xHHIQQQIHHHHHH")
_SECTION = struct.Struct("<IIQQQQIIQQ")
_SYMBOL = struct.Struct("<IBBHQQ")
_PROGRAM_HEADER = struct.Struct("<IIQQQQQQ")
_PT_LOAD = 1
_SHT_SYMTAB, _SHT_DYNSYM, _STT_FUNC = 2, 11, 2
_ALIASES_OF = {
    canonical: [alias for alias, name in EVENT_ALIASES.items() if name == canonical]
    for canonical in EVENT_ALIASES.values()
}


def list_probes(pattern: str | None) -> Iterator[str]:
    if pattern and pattern.startswith(("uprobe:", "uretprobe:", "u:", "ur:")):
        provider, _, rest = pattern.partition(":")
        binary, _, functions = rest.rpartition(":")
        provider = "uretprobe" if provider in ("uretprobe", "ur") else "uprobe"
        yield from (
            f"{provider}:{binary}:{name}"
            for name in elf_functions(binary)
            if fnmatch.fnmatchcase(name, functions or "*")
        )
        return
    if pattern and pattern.startswith(("usdt:", "U:")):
        binary = pattern.split(":")[1]
        from bpfrun import usdt  # a binary's static probes

        rest = pattern.split(":", 2)[2] if pattern.count(":") >= 2 else "*"  # [PROVIDER:]NAME
        for site in sorted({(site.provider, site.name) for site in usdt.all_sites(binary)}):
            if fnmatch.fnmatchcase(":".join(site), rest) or fnmatch.fnmatchcase(site[1], rest):
                yield f"usdt:{binary}:{site[0]}:{site[1]}"
        return
    for probe in _all_probes():
        if pattern is None or fnmatch.fnmatchcase(probe, pattern):
            yield probe


def _all_probes() -> Iterator[str]:
    yield from sorted(_perf_events("hardware", HARDWARE_EVENTS))
    yield from sorted(_tracepoints("rawtracepoint"))
    yield from sorted(_perf_events("software", SOFTWARE_EVENTS))
    yield from sorted(_tracepoints("tracepoint"))
    yield from (f"kprobe:{name}" for name in kernel_functions())


def _perf_events(provider: str, events: dict[str, int]) -> Iterator[str]:
    for name in events:
        for spelling in (name, *_ALIASES_OF.get(name, ())):
            yield f"{provider}:{spelling}:"


def _tracepoints(provider: str) -> Iterator[str]:
    events = tracefs.ensure_mounted() / "events"
    for category in events.iterdir():
        if not category.is_dir():
            continue
        for event in category.iterdir():
            if (event / "format").exists():
                yield (
                    f"tracepoint:{category.name}:{event.name}"
                    if provider == "tracepoint"
                    else f"rawtracepoint:vmlinux:{event.name}"
                )


def kernel_functions() -> Iterator[str]:
    """The functions kprobes can attach to (none on a kernel without kprobes)."""
    functions = tracefs.ensure_mounted() / "available_filter_functions"
    if not tracefs.kprobes_available() or not functions.exists():
        return
    with open(functions) as file:
        for line in file:
            yield line.split()[0]


def elf_functions(binary: str) -> list[str]:
    """The names of the functions an ELF64 little-endian file defines, sorted."""
    try:
        data = Path(binary).read_bytes()
    except OSError as error:
        raise UserError(f"cannot read {binary}: {error.strerror}") from None
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        raise UserError(f"{binary} is not a 64-bit little-endian ELF file")
    try:
        return sorted(_functions(data))
    except struct.error:
        raise UserError(f"{binary} is a damaged ELF file") from None


def file_offset(binary: str, address: int) -> int | None:
    """Where virtual `address` of an ELF64 file is in the file (uprobes attach at file offsets);
    None when no loaded segment holds it."""
    try:
        data = Path(binary).read_bytes()
        fields = _ELF_HEADER.unpack_from(data)
        header_offset, header_size, header_count = fields[4], fields[8], fields[9]
        for index in range(header_count):
            kind, _, offset, virtual, _, file_size, _, _ = _PROGRAM_HEADER.unpack_from(data, header_offset + index * header_size)
            if kind == _PT_LOAD and virtual <= address < virtual + file_size:
                return address - virtual + offset
    except (OSError, struct.error):
        return None
    return None


def _functions(data: bytes) -> set[str]:
    fields = _ELF_HEADER.unpack_from(data)
    section_offset, section_size, section_count = fields[5], fields[10], fields[11]
    sections = [_SECTION.unpack_from(data, section_offset + index * section_size) for index in range(section_count)]
    names: set[str] = set()
    for _, kind, _, _, offset, size, link, _, _, entry_size in sections:
        if kind not in (_SHT_SYMTAB, _SHT_DYNSYM) or not entry_size:
            continue
        strings_offset = sections[link][4]
        for position in range(offset, offset + size, entry_size):
            name_offset, info, _, section_index, _, _ = _SYMBOL.unpack_from(data, position)
            if info & 0xF == _STT_FUNC and section_index != 0 and name_offset:
                end = data.index(b"\0", strings_offset + name_offset)
                names.add(data[strings_offset + name_offset : end].decode("utf-8", "replace"))
    return names
