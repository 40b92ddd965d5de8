"""Bundles changed byte by byte for bpfrun's tests, with the header's lengths and digest made to
match, so that the change reaches the checks behind the digest (common/bundle.py's layout)."""

from __future__ import annotations

import hashlib

from common import bundle

HEADER_FIELDS = ("magic", "format", "signature_length", "compiler", *bundle.SECTIONS, "sha256")
_DIGEST_OFFSET = bundle.HEADER.size - 32


def with_header(data: bytes, **changes: object) -> bytes:
    """`data`, a bundle, with fields of its header changed; the digest recomputed unless given."""
    fields = dict(zip(HEADER_FIELDS, bundle.HEADER.unpack_from(data)))
    fields.update(changes)
    head = bundle.HEADER.pack(*fields.values())[:_DIGEST_OFFSET]
    body = data[bundle.HEADER.size :]
    digest = fields["sha256"]
    if "sha256" not in changes:
        digest = hashlib.sha256(head + body[: sum(fields[name] for name in bundle.SECTIONS)]).digest()
    return head + digest + body


def with_section(data: bytes, name: str, content: bytes) -> bytes:
    """`data`, a bundle, with one section replaced by `content`."""
    header = bundle.read_header(data)
    index = bundle.SECTIONS.index(name)
    start = bundle.HEADER.size + sum(header.lengths[:index])
    changed = data[:start] + content + data[start + header.lengths[index] :]
    return with_header(changed, **{name: len(content)})


def section(data: bytes, name: str) -> bytes:
    header = bundle.read_header(data)
    index = bundle.SECTIONS.index(name)
    start = bundle.HEADER.size + sum(header.lengths[:index])
    return data[start : start + header.lengths[index]]
