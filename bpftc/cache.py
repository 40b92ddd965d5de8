"""bpftc's cache: what one compile builds that the next can reuse, lark's parse tables and where
each record of a BTF file starts. It lives in a directory of the user's own ($XDG_CACHE_HOME/bpftc
or ~/.cache/bpftc, mode 0700; lark unpickles its file): without one, nothing is cached. A cache
file that cannot be read or written is ignored."""

from __future__ import annotations

import os
import sys
import zlib
from array import array
from pathlib import Path


def directory() -> Path | None:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    found = base / "bpftc"
    try:
        found.mkdir(mode=0o700, parents=True, exist_ok=True)
        status = found.stat()
    except (OSError, RuntimeError):  # RuntimeError: no home directory
        return None
    if status.st_uid != os.getuid() or status.st_mode & 0o022:
        return None
    return found


def btf_starts(data: bytes) -> array | None:
    """The record starts saved for these BTF bytes (common/btf.py checks that they fit them)."""
    path = _btf_starts_file(data)
    if path is None:
        return None
    starts = array("I")
    try:
        starts.frombytes(path.read_bytes())
    except (OSError, ValueError):
        return None
    return starts


def save_btf_starts(data: bytes, starts: array) -> None:
    path = _btf_starts_file(data)
    if path is None:
        return
    partial = path.with_name(f"{path.name}.{os.getpid()}")
    try:
        partial.write_bytes(starts.tobytes())
        os.replace(partial, path)  # whole or not at all, whatever compiles run beside this one
    except OSError:
        partial.unlink(missing_ok=True)


def _btf_starts_file(data: bytes) -> Path | None:
    """Named by the bytes' length and CRC-32 (2 ms for vmlinux's 5 MiB; a digest takes 10-30 ms)."""
    found = directory()
    if found is None or sys.byteorder != "little":
        return None
    return found / f"btf-starts-{len(data)}-{zlib.crc32(data):08x}"
