"""A target description: what bpftc needs to know of the kernel a bundle will run on, written on
that host by `bpfrun --describe-target > target.json` and read by `bpftc --target target.json`
on a build box (as any user, for another kernel).

JSON, one object:

    format        TARGET_FORMAT
    release       `uname -r`
    machine       `uname -m`
    btf           the kernel's BTF (/sys/kernel/btf/vmlinux), zlib-compressed, base64
    btf_sha256    the digest of the uncompressed BTF: which kernel build this describes
    tracepoints   {"category:event": [[name, C declaration, offset, size, signed], ...]} from
                  tracefs's format files, the common_* fields left out
    probe_kinds   the probe providers this host can attach ("kprobe" only with kprobes)

Also here: parsing tracefs format files, which bpftc does for tracepoints too.
"""

from __future__ import annotations

import base64
import json
import re
import zlib

from common.record import record
from common.signing import sha256  # CPython's own: hashlib loads OpenSSL (5 ms)

TARGET_FORMAT = 1
MAX_TARGET_BYTES = 64 << 20
MAX_BTF_BYTES = 1 << 28

_FIELD = re.compile(r"field:(?P<declaration>[^;]+);\s*offset:(\d+);\s*size:(\d+);\s*signed:([01]);")

FormatField = tuple[str, str, int, int, int]  # name, C declaration, offset, size, signed (0/1)


class TargetError(Exception):
    """A target description that cannot be read."""


@record(frozen=True)
class Target:
    release: str
    machine: str
    btf: bytes
    tracepoints: dict[str, list[FormatField]]
    probe_kinds: tuple[str, ...]


def parse_format(text: str) -> list[FormatField]:
    """The fields of a tracefs format file, without the common_* ones every record starts with.
    An array's length moves from its name to its declaration: `char comm[16]` is
    ("comm", "char[16]", ...)."""
    fields = []
    for match in _FIELD.finditer(text):
        declaration = match["declaration"].strip()
        c_type, _, name = declaration.rpartition(" ")
        bracket = name.find("[")
        if bracket > 0:
            name, c_type = name[:bracket], c_type + name[bracket:]
        if not name.startswith("common_"):
            fields.append((name, c_type, int(match[2]), int(match[3]), int(match[4])))
    return fields


def to_json(target: Target) -> str:
    return json.dumps(
        {
            "format": TARGET_FORMAT,
            "release": target.release,
            "machine": target.machine,
            "btf": base64.b64encode(zlib.compress(target.btf, 9)).decode("ascii"),
            "btf_sha256": sha256(target.btf).hexdigest(),
            "tracepoints": target.tracepoints,
            "probe_kinds": list(target.probe_kinds),
        },
        sort_keys=True,
    )


def from_json(text: str) -> Target:
    if len(text) > MAX_TARGET_BYTES:
        raise TargetError("larger than a target description can be")
    try:
        data = json.loads(text)
        if data.get("format") != TARGET_FORMAT:
            raise TargetError(f"format {data.get('format')!r}, expected {TARGET_FORMAT}")
        decompressor = zlib.decompressobj()
        btf = decompressor.decompress(base64.b64decode(data["btf"], validate=True), MAX_BTF_BYTES)
        if decompressor.unconsumed_tail or sha256(btf).hexdigest() != data["btf_sha256"]:
            raise TargetError("its BTF does not match its digest")
        tracepoints = {
            str(name): [(str(f[0]), str(f[1]), int(f[2]), int(f[3]), int(f[4])) for f in fields]
            for name, fields in data["tracepoints"].items()
        }
        return Target(str(data["release"]), str(data["machine"]), btf, tracepoints, tuple(map(str, data["probe_kinds"])))
    except TargetError:
        raise
    except (ValueError, KeyError, TypeError, IndexError, AttributeError, zlib.error) as error:
        raise TargetError(f"malformed ({type(error).__name__}: {error})") from None
