"""Locate tracefs (mounting it when it is missing) and answer what this kernel can trace.

libbpf resolves a tracepoint's id through tracefs, so attach.py calls `ensure_mounted()` before
attaching tracepoints. When `/sys/kernel/tracing/events` does not exist we mount tracefs there
ourselves (mount(2), as `mount -t tracefs nodev /sys/kernel/tracing` would) and leave it mounted,
as bpftrace does. A failing mount is a `UserError`.
"""

from __future__ import annotations

import ctypes
import fnmatch
import os
from pathlib import Path

from bpfrun.errors import UserError
from bpfrun.libbpf import libc

TRACEFS = Path("/sys/kernel/tracing")
DEBUGFS_TRACING = Path("/sys/kernel/debug/tracing")  # libbpf prefers this one when it exists
KPROBE_PMU = Path("/sys/bus/event_source/devices/kprobe")


def root() -> Path:
    """The tracefs directory libbpf will use: the debugfs one when debugfs is mounted."""
    if (DEBUGFS_TRACING / "events").is_dir():
        return DEBUGFS_TRACING
    return TRACEFS


def ensure_mounted() -> Path:
    if not (root() / "events").is_dir():
        _mount_tracefs()
    return root()


def tracepoint_exists(category: str, name: str) -> bool:
    return (ensure_mounted() / "events" / category / name).is_dir()


def matching_tracepoints(category_pattern: str, name_pattern: str) -> list[tuple[str, str]]:
    """The (category, name) of every tracepoint matching two shell patterns, sorted."""
    events = ensure_mounted() / "events"
    return sorted(
        (category.name, event.name)
        for category in events.iterdir()
        if category.is_dir() and fnmatch.fnmatchcase(category.name, category_pattern)
        for event in category.iterdir()
        if event.is_dir() and fnmatch.fnmatchcase(event.name, name_pattern)
    )


def tracepoint_id(category: str, name: str) -> int:
    """The event id a tracepoint's records carry in their first field (common_type)."""
    try:
        return int((ensure_mounted() / "events" / category / name / "id").read_text())
    except (OSError, ValueError) as error:
        raise UserError(f"cannot read the id of tracepoint {category}:{name}: {error}") from None


def raw_tracepoint_exists(name: str) -> bool:
    """A raw tracepoint is a tracepoint by its name alone, in whatever category."""
    return any((category / name).is_dir() for category in (ensure_mounted() / "events").iterdir())


def kprobes_available() -> bool:
    """Whether the kernel can create kprobes: the kprobe PMU, or the legacy tracefs interface."""
    return KPROBE_PMU.exists() or (ensure_mounted() / "kprobe_events").exists()


def _mount_tracefs() -> None:
    if libc.mount(b"nodev", bytes(TRACEFS), b"tracefs", 0, None) != 0:
        error = ctypes.get_errno()
        raise UserError(f"cannot mount tracefs on {TRACEFS}: {os.strerror(error)}")
