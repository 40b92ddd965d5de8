"""What a uprobe's or USDT probe's BINARY names: a path, or a library name (`libc`) found where
ld.so looks. bpfrun attaches to that file on its host; bpftc reads its debug information (the
arguments of `uprobe:BINARY:FUNCTION`) on the build host. Standard library only.
"""

from __future__ import annotations

import os

LIBRARY_DIRECTORIES = (
    "/lib/x86_64-linux-gnu",
    "/usr/lib/x86_64-linux-gnu",
    "/lib64",
    "/usr/lib64",
    "/lib",
    "/usr/lib",
)


def find_binary(binary: str) -> str | None:
    """The file `binary` names here, or None: a path that is a file, or the first ELF file of a
    library name in LIBRARY_DIRECTORIES (libc.so is a linker script: the library is libc.so.6)."""
    if "/" in binary:
        return binary if os.path.isfile(binary) else None
    for directory in LIBRARY_DIRECTORIES:
        entries = _entries(directory)
        for name in (f"lib{binary}.so", f"{binary}.so", binary):
            for entry in sorted(entry for entry in entries if entry.startswith(name)):
                if _is_elf(os.path.join(directory, entry)):
                    return os.path.join(directory, entry)
    return None


def _entries(directory: str) -> list[str]:
    """The names in a directory (none when it is missing); os.listdir, not pathlib, whose imports
    cost bpfrun's start 6 ms."""
    try:
        return os.listdir(directory)
    except OSError:
        return []


def _is_elf(path: str) -> bool:
    try:
        with open(path, "rb") as file:
            return file.read(4) == b"\x7fELF"
    except OSError:
        return False
