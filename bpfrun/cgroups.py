"""cgroup_path(id): where this host's cgroup hierarchies have the cgroup of an id.

A cgroup's id (what bpf_get_current_cgroup_id returns) is the inode number of its directory in
the cgroup filesystem. As bpftrace prints it: "NAME:PATH" for each mounted hierarchy holding a
directory of that inode, the unified (cgroup2) one first, then the v1 ones by name, joined by
",". Each hierarchy's directories are indexed once, and again when an id is not found (cgroups
come and go while a trace runs), at most once a second.
"""

from __future__ import annotations

import os
import time

MOUNTINFO = "/proc/self/mountinfo"
MAX_DIRECTORIES = 100_000  # per hierarchy: a bound on the walk
_V1_OPTIONS = {"rw", "ro", "relatime", "noatime", "nosuid", "nodev", "noexec", "clone_children", "xattr", "nsdelegate"}


class _Index:
    def __init__(self) -> None:
        self.paths: dict[str, dict[int, str]] = {}  # hierarchy name -> inode -> path
        self.built = 0.0

    def path(self, cgroup_id: int) -> str:
        if not self.built or (not self._found(cgroup_id) and time.monotonic() - self.built > 1):
            self._build()
        found = self._found(cgroup_id)
        return ",".join(f"{name}:{path}" for name, path in found) if found else str(cgroup_id)

    def _found(self, cgroup_id: int) -> list[tuple[str, str]]:
        return [(name, paths[cgroup_id]) for name, paths in self.paths.items() if cgroup_id in paths]

    def _build(self) -> None:
        self.paths = {name: _directories(mount) for name, mount in _hierarchies()}
        self.built = time.monotonic()


def _hierarchies() -> list[tuple[str, str]]:
    """(name, mount point) of each cgroup hierarchy mounted here: "unified" first, then v1 ones by name."""
    unified, legacy = [], []
    try:
        with open(MOUNTINFO) as mounts:
            for line in mounts:
                before, _, after = line.partition(" - ")
                fields, details = before.split(), after.split()
                if len(fields) < 5 or len(details) < 3:
                    continue
                mount_point = fields[4].replace("\\040", " ")
                if details[0] == "cgroup2":
                    unified.append(("unified", mount_point))
                elif details[0] == "cgroup":
                    options = [o.removeprefix("name=") for o in details[2].split(",") if o not in _V1_OPTIONS]
                    legacy.append((",".join(options), mount_point))
    except OSError:
        return []
    return unified[:1] + sorted(legacy)


def _directories(mount_point: str) -> dict[int, str]:
    paths: dict[int, str] = {}
    for directory, _, _ in os.walk(mount_point):
        try:
            inode = os.stat(directory).st_ino
        except OSError:
            continue
        relative = os.path.relpath(directory, mount_point)
        paths.setdefault(inode, "/" if relative == "." else "/" + relative)
        if len(paths) >= MAX_DIRECTORIES:
            break
    return paths


_INDEX = _Index()


def cgroup_path(cgroup_id: int) -> str:
    return _INDEX.path(cgroup_id)
