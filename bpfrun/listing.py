"""bpfrun -l [PATTERN]: what this host can attach to, as bpftrace -l lists it, one probe a line.

Tracepoints and raw tracepoints from tracefs; software and hardware events from the perf event
tables (and their aliases); kprobes from tracefs's available_filter_functions where the kernel has
them; `uprobe:BINARY:*` the functions a binary defines (read from its ELF symbol tables). PATTERN
has shell wildcards; without one, everything but uprobes (which need a binary) is listed.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterator
from pathlib import Path

from bpfrun import tracefs
from bpfrun.elf import STT_FUNC, STT_GNU_IFUNC, Elf, ElfError
from bpfrun.errors import UserError
from common.schema import EVENT_ALIASES, HARDWARE_EVENTS, SOFTWARE_EVENTS

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
    events = Path(tracefs.events_directory())
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
    functions = Path(tracefs.ensure_mounted(), "available_filter_functions")
    if not tracefs.kprobes_available() or not functions.exists():
        return
    with open(functions) as file:
        for line in file:
            yield line.split()[0]


def elf_functions(binary: str) -> list[str]:
    """The names of the functions an ELF64 little-endian file defines, sorted."""
    try:
        symbols = Elf.read(binary).symbols()
    except ElfError as error:
        raise UserError(f"{binary} is a damaged ELF file ({error})") from None
    return sorted({s.name for s in symbols if s.kind == STT_FUNC and s.section != 0 and s.name})


def function_address(binary: str, name: str) -> int | None:
    """The address of function `name` in an ELF file, whatever versions its symbol has
    (pthread_create@GLIBC_2.2.5 and @@GLIBC_2.34 are one function); None when it has none, or
    several different ones."""
    try:
        symbols = Elf.read(binary).symbols()
    except ElfError as error:
        raise UserError(f"{binary} is a damaged ELF file ({error})") from None
    addresses = {s.value for s in symbols if s.name == name and s.kind in (STT_FUNC, STT_GNU_IFUNC) and s.section}
    return addresses.pop() if len(addresses) == 1 else None


def file_offset(binary: str, address: int) -> int | None:
    """Where virtual `address` of an ELF64 file is in the file (uprobes attach at file offsets)."""
    return Elf.read(binary).file_offset(address)


