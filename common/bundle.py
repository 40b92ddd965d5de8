"""The bundle file (.bpfb): a compiled program as one self-contained, versioned artifact.

Layout:

    MAGIC (8 bytes)  then one msgpack map, the envelope:
      format     int    FORMAT_VERSION of the writer; readers refuse versions they do not know
      payload    bin    msgpack map {"resources": schema.to_dict(Resources), "elf": bin}
      sha256     bin    SHA-256 of payload: catches truncation and corruption
      signature  nil, or {"signer": ID, "ed25519": bin} over payload (common/signing.py)

`read()` checks all of this and raises `BundleError` with a one-line reason for anything that is not
a valid bundle. Imports only the standard library, msgpack and common.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import msgpack

from common import signing
from common.schema import Resources, SchemaError, from_dict, to_dict

MAGIC = b"BPFB\x89\r\n\x1a"  # the \r\n and \x1a catch text-mode mangling, as PNG's magic does
FORMAT_VERSION = 2
MAX_BUNDLE_BYTES = 64 << 20
_ELF_MAGIC = b"\x7fELF"
_ENVELOPE_FIELDS = {"format", "payload", "sha256", "signature"}
_PAYLOAD_FIELDS = {"resources", "elf"}


class BundleError(ValueError):
    """Not a valid bundle; the message is one line for the user."""


@dataclass(frozen=True, slots=True)
class Bundle:
    resources: Resources
    elf: bytes


def write(bundle: Bundle, signing_key=None) -> bytes:
    """The bundle's bytes; signed when given an ed25519 private key (common/signing.py)."""
    payload = _pack({"resources": to_dict(bundle.resources), "elf": bundle.elf})
    envelope = {
        "format": FORMAT_VERSION,
        "payload": payload,
        "sha256": hashlib.sha256(payload).digest(),
        "signature": signing.sign(payload, signing_key) if signing_key is not None else None,
    }
    return MAGIC + _pack(envelope)


def signer(data: bytes) -> str | None:
    """Who signed a bundle `read` accepted (not checked here: that is `read(..., trusted_key)`)."""
    signature = _unpack(data[len(MAGIC) :], "envelope").get("signature")
    return str(signature.get("signer")) if isinstance(signature, dict) else None


def read(data: bytes, trusted_key=None) -> Bundle:
    """The bundle in `data`; with a `trusted_key`, only when that key signed it (checked before
    the payload is decoded)."""
    if len(data) > MAX_BUNDLE_BYTES:
        raise BundleError(f"bundle is larger than {MAX_BUNDLE_BYTES >> 20} MiB")
    if not data.startswith(MAGIC):
        raise BundleError("not a bpftc bundle (bad magic)")
    envelope = _unpack(data[len(MAGIC) :], "envelope")
    _expect_fields(envelope, _ENVELOPE_FIELDS, "envelope")
    if type(envelope["format"]) is not int or envelope["format"] != FORMAT_VERSION:  # True == 1 in Python
        raise BundleError(
            f"bundle format {envelope['format']!r} is not supported (this bpfrun reads format {FORMAT_VERSION})"
        )
    payload = envelope["payload"]
    if not isinstance(payload, bytes) or hashlib.sha256(payload).digest() != envelope["sha256"]:
        raise BundleError("bundle is corrupt (checksum mismatch)")
    signature = envelope["signature"]
    if signature is not None and not signing.well_formed(signature):
        raise BundleError("bundle's signature is malformed")
    if trusted_key is not None:
        try:
            signing.check(payload, envelope["signature"], trusted_key)
        except signing.SignatureError as error:
            raise BundleError(str(error)) from None
    contents = _unpack(payload, "payload")
    _expect_fields(contents, _PAYLOAD_FIELDS, "payload")
    elf = contents["elf"]
    if not isinstance(elf, bytes) or not elf.startswith(_ELF_MAGIC):
        raise BundleError("bundle holds no ELF object")
    try:
        resources = from_dict(Resources, contents["resources"])
    except SchemaError as error:
        raise BundleError(f"bundle metadata is invalid: {error}") from None
    return Bundle(resources, elf)


def _pack(value: object) -> bytes:
    return msgpack.packb(value, use_bin_type=True)


MAX_ELEMENTS = 1 << 20  # array items and map entries a bundle's metadata may hold in all
MAX_CONTAINER = 1 << 16  # items of one array or map


class _Budget:
    """Counts the elements msgpack decodes and stops it past MAX_ELEMENTS: the size limit alone
    lets 64 MiB of empty containers grow into gigabytes of Python objects. (msgpack itself stops
    nesting deeper than its own stack.)"""

    def __init__(self) -> None:
        self.left = MAX_ELEMENTS

    def spend(self, container):
        self.left -= len(container) + 1
        if self.left < 0:
            raise BundleError("bundle metadata holds too many elements")
        return container


def _unpack(data: bytes, what: str) -> dict:
    budget = _Budget()
    try:
        value = msgpack.unpackb(
            data, raw=False, strict_map_key=True, max_array_len=MAX_CONTAINER, max_map_len=MAX_CONTAINER,
            list_hook=budget.spend, object_hook=budget.spend,
        )  # fmt: skip
    except BundleError:
        raise
    except Exception as error:  # msgpack raises several unrelated exception types
        raise BundleError(f"bundle is truncated or corrupt ({what}: {type(error).__name__})") from None
    if not isinstance(value, dict):
        raise BundleError(f"bundle is corrupt ({what} is not a map)")
    return value


def _expect_fields(value: dict, fields: set[str], what: str) -> None:
    if set(value) != fields:
        raise BundleError(f"bundle is corrupt ({what} fields {sorted(map(str, value))})")
