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

from bpfrun.errors import UserError
from bpfrun.libbpf import libc

# Plain strings and os.path, not pathlib: pathlib's imports (urllib, ipaddress...) cost bpfrun's
# start 6 ms.
TRACEFS = "/sys/kernel/tracing"
DEBUGFS_TRACING = "/sys/kernel/debug/tracing"  # libbpf prefers this one when it exists
KPROBE_PMU = "/sys/bus/event_source/devices/kprobe"


def root() -> str:
    """The tracefs directory libbpf will use: the debugfs one when debugfs is mounted."""
    if os.path.isdir(f"{DEBUGFS_TRACING}/events"):
        return DEBUGFS_TRACING
    return TRACEFS


_mounted: str | None = None  # found (or mounted) once per run: attaching asks for each tracepoint


def ensure_mounted() -> str:
    global _mounted
    if _mounted is None:
        if not os.path.isdir(f"{root()}/events"):
            _mount_tracefs()
        _mounted = root()
    return _mounted


def events_directory() -> str:
    return f"{ensure_mounted()}/events"


def tracepoint_exists(category: str, name: str) -> bool:
    return os.path.isdir(f"{events_directory()}/{category}/{name}")


def matching_tracepoints(category_pattern: str, name_pattern: str) -> list[tuple[str, str]]:
    """The (category, name) of every tracepoint matching two shell patterns, sorted."""
    return sorted(
        (category.name, event.name)
        for category in _directories(events_directory())
        if fnmatch.fnmatchcase(category.name, category_pattern)
        for event in _directories(category.path)
        if fnmatch.fnmatchcase(event.name, name_pattern)
    )


def tracepoint_id(category: str, name: str) -> int:
    """The event id a tracepoint's records carry in their first field (common_type)."""
    try:
        with open(f"{events_directory()}/{category}/{name}/id") as file:
            return int(file.read())
    except (OSError, ValueError) as error:
        raise UserError(f"cannot read the id of tracepoint {category}:{name}: {error}") from None


def raw_tracepoint_exists(name: str) -> bool:
    """A raw tracepoint is a tracepoint by its name alone, in whatever category."""
    return any(os.path.isdir(f"{category.path}/{name}") for category in _directories(events_directory()))


def kprobes_available() -> bool:
    """Whether the kernel can create kprobes: the kprobe PMU, or the legacy tracefs interface."""
    return os.path.exists(KPROBE_PMU) or os.path.exists(f"{ensure_mounted()}/kprobe_events")


def _directories(path: str) -> list[os.DirEntry]:
    with os.scandir(path) as entries:
        return [entry for entry in entries if entry.is_dir()]


def _mount_tracefs() -> None:
    if libc.mount(b"nodev", TRACEFS.encode(), b"tracefs", 0, None) != 0:
        error = ctypes.get_errno()
        raise UserError(f"cannot mount tracefs on {TRACEFS}: {os.strerror(error)}")
