"""common/btf.py against this kernel's BTF and a synthetic one: names found without an index of
all of them, record starts given back from bpftc's cache (and refused when they do not fit), and
bpftc writing that cache and reading it back."""

from __future__ import annotations

import os
import subprocess
import sys
import zlib
from array import array
from pathlib import Path

import pytest

from bpftc import cache
from common import btf as btf_format
from tests.synthetic_btf import build_btf

VMLINUX = "/sys/kernel/btf/vmlinux"
needs_vmlinux = pytest.mark.skipif(not os.path.exists(VMLINUX), reason="no kernel BTF")


def synthetic() -> bytes:
    return build_btf({
        "alpha": (16, [("first", 0, "int"), ("second", 8, "long")]),
        "beta": (24, [("name", 0, "char[16]"), ("next", 16, "pointer to alpha")]),
    })  # fmt: skip


def test_structs_are_found_by_name_and_kind() -> None:
    btf = btf_format.Btf(synthetic())
    alpha = btf.find(btf_format.STRUCT, "alpha")
    assert alpha is not None and alpha.size == 16
    assert [(m.name, m.bit_offset) for m in alpha.members] == [("first", 0), ("second", 64)]
    assert [m.name for m in btf.find(btf_format.STRUCT, "beta").members] == ["name", "next"]
    assert btf.find(btf_format.UNION, "alpha") is None  # the name, but not a union
    assert btf.find(btf_format.STRUCT, "first") is None  # a member's name is not a struct's
    assert btf.find(btf_format.STRUCT, "alp") is None  # nor is a prefix of a name
    assert btf.find(btf_format.STRUCT, "") is None


def test_given_starts_are_used_when_they_fit_and_walked_again_when_not() -> None:
    data = synthetic()
    walked = btf_format.Btf(data).record_starts
    assert btf_format.Btf(data, walked).record_starts is walked
    stale = array("I", walked[:-1])  # another file's: its last record does not end the types
    again = btf_format.Btf(data, stale)
    assert again.record_starts is not stale and again.record_starts == walked
    assert again.find(btf_format.STRUCT, "alpha").size == 16


def test_truncated_types_are_a_btf_error() -> None:
    data = bytearray(synthetic())
    data[12:16] = (int.from_bytes(data[12:16], "little") - 4).to_bytes(4, "little")  # types 4 bytes short
    with pytest.raises(btf_format.BtfError):
        btf_format.Btf(bytes(data))


@needs_vmlinux
def test_vmlinux_names_are_found_as_an_index_of_all_of_them_finds_them() -> None:
    btf = btf_format.Btf.from_file(VMLINUX)
    task = btf.find(btf_format.STRUCT, "task_struct")
    assert task.name == "task_struct" and any(m.name == "pid" for m in task.members)
    assert btf.strip(btf.find(btf_format.TYPEDEF, "pid_t").id).kind == btf_format.INT
    assert btf.find(btf_format.FUNC, "do_sys_openat2") is not None
    assert btf.find(btf_format.STRUCT, "no_such_struct_here") is None
    # The first record of each kind and name, as a walk over every record would pick.
    first = {}
    for type_id in range(1, len(btf.record_starts)):
        found = btf.type(type_id)
        if found.kind in (btf_format.STRUCT, btf_format.TYPEDEF) and found.name in ("sock", "u32", "file"):
            first.setdefault((found.kind, found.name), type_id)
    for (kind, name), type_id in first.items():
        assert btf.find(kind, name).id == type_id


@needs_vmlinux
def test_bpftc_caches_where_vmlinux_records_start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    environment = {**os.environ, "XDG_CACHE_HOME": str(tmp_path)}
    program = "tracepoint:syscalls:sys_enter_getpid { printf(\"%d\\n\", curtask->real_parent->tgid); }"
    bundles = []
    for attempt in range(2):
        output = tmp_path / f"out{attempt}.bpfb"
        command = [sys.executable, "-m", "bpftc", "-e", program, "-o", str(output)]
        subprocess.run(command, env=environment, check=True, capture_output=True)
        bundles.append(output.read_bytes())
    with open(VMLINUX, "rb") as file:
        data = file.read()
    saved = [path.name for path in (tmp_path / "bpftc").glob("btf-starts-*")]
    assert saved == [f"btf-starts-{len(data)}-{zlib.crc32(data):08x}"]
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cache.btf_starts(data) == btf_format.Btf(data).record_starts
    assert bundles[0] == bundles[1]  # the same bundle with the cache as without it
