"""Stacks and symbols, printed as bpftrace prints them.

A stack value (common/layout.py's `stack`) is an id in the bundle's stack-trace map and, for a
user stack, the process it was taken in; the addresses are read from the map when the value is
printed. Kernel addresses are named from /proc/kallsyms; user addresses through bcc's symbol
cache (bcc is imported only when a bundle prints user stacks or symbols: it costs 0.4 s).

    bpftrace  "\\n" then one line per frame: 8 spaces, `symbol+offset` (decimal)
    perf      "\\n" then per frame: a tab, the address in hex, the symbol, ` (module)`
    raw       "\\n" then per frame: the address in hex

An address without a symbol prints as 0x... (its module as [unknown]).
"""

from __future__ import annotations

import bisect
import ctypes
import functools
from collections.abc import Iterator

from bpfrun.libbpf import lib
from common import layout

_map_fd = -1  # the loaded bundle's stack-trace map (bpfrun/load.py)


def use_stack_map(fd: int) -> None:
    global _map_fd
    _map_fd = fd


def format_stack(text: str, data: bytes) -> str:
    kind, mode, depth = layout.stack_parts(text)
    stack_id = int.from_bytes(data[:8], "little", signed=True)
    pid = int.from_bytes(data[8:16], "little")
    addresses = _addresses(stack_id)[:depth]
    user = kind == "ustack"
    if mode == "raw":
        return "\n" + "".join(f"{address:x}\n" for address in addresses)
    if mode == "perf":
        lines = []
        for address in addresses:
            name, module = _user_symbol(pid, address) if user else (_kernel_symbol(address), None)
            module_text = f" ({module})" if user else ""
            lines.append(f"\t{address:x} {name}{module_text}\n")
        return "\n" + "".join(lines)
    names = [(_user_symbol(pid, address)[0] if user else _kernel_symbol(address)) for address in addresses]
    return "\n" + "".join(f"        {name}\n" for name in names)


def format_symbol(kind: str, data: bytes) -> str:
    """ksym()/usym(): the name of the symbol holding the address, without the offset."""
    address = int.from_bytes(data[:8], "little")
    if kind == "usym":
        name, _ = _user_symbol(int.from_bytes(data[8:16], "little"), address)
    else:
        name = _kernel_symbol(address)
    return name.split("+", 1)[0] if not name.startswith("0x") else name


def _addresses(stack_id: int) -> list[int]:
    """The frames of a stack the kernel recorded; none for an id that is an error (bpf_get_stackid
    returns -errno), or that is not a u32 (another stack would be read under it)."""
    if not 0 <= stack_id <= 0xFFFFFFFF or _map_fd < 0:
        return []
    key = ctypes.c_uint32(stack_id)
    frames = (ctypes.c_uint64 * layout.MAX_STACK_DEPTH)()
    if lib.bpf_map_lookup_elem(_map_fd, ctypes.byref(key), frames) != 0:
        return []
    addresses = list(frames)
    return addresses[: addresses.index(0)] if 0 in addresses else addresses


# Kernel symbols


def kernel_symbols() -> Iterator[tuple[int, str, str]]:
    """(address, type letter, name) of each line of /proc/kallsyms (addresses are real as root)."""
    with open("/proc/kallsyms", encoding="utf-8", errors="replace") as file:
        for line in file:
            parts = line.split()
            if len(parts) >= 3:
                yield int(parts[0], 16), parts[1], parts[2]


@functools.cache
def _kallsyms() -> tuple[list[int], list[str]]:
    """Code symbols, sorted by address; data symbols are in /proc/kallsyms only on kernels built
    with CONFIG_KALLSYMS_ALL."""
    try:
        symbols = sorted((address, name) for address, kind, name in kernel_symbols() if kind in "tTwW")
    except OSError:
        symbols = []
    return [address for address, _ in symbols], [name for _, name in symbols]


def _kernel_symbol(address: int) -> str:
    addresses, names = _kallsyms()
    index = bisect.bisect_right(addresses, address) - 1
    if index < 0 or addresses[index] == 0:
        return f"0x{address:x}"
    return f"{names[index]}+{address - addresses[index]}"


# User symbols


@functools.cache
def _symbol_cache(pid: int):
    try:
        from bcc import SymbolCache  # heavy: only for bundles that print user stacks or symbols
    except ImportError:
        return None
    return SymbolCache(pid)


def _user_symbol(pid: int, address: int) -> tuple[str, str]:
    """(`symbol+offset`, module) for an address in process `pid`; (0x..., [unknown]) when unknown."""
    cache = _symbol_cache(pid)
    if cache is not None:
        name, offset, module = cache.resolve(address, True)
        module_text = module.decode("utf-8", "replace") if module else "[unknown]"
        if name is not None:
            return f"{name.decode('utf-8', 'replace')}+{offset}", module_text
        return f"0x{address:x}", module_text
    return f"0x{address:x}", "[unknown]"
