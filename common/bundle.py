"""The bundle file (.bpfb): a compiled program as one self-contained, versioned artifact.

Layout (docs/bundle.md): a fixed binary header, then four sections, then an optional signature.

    header, HEADER.size bytes, little-endian:
      magic              8 bytes   MAGIC
      format             u16       FORMAT_VERSION of the writer; readers refuse versions they do not know
      signature length   u16       0 (unsigned) or SIGNATURE_BYTES
      compiler           32 bytes  "bpftc VERSION", printable ASCII padded with NULs
      section lengths    4 x u32   metadata, elf, source, requirements
      sha256             32 bytes  SHA-256 of the header before this field and of the four sections
    sections, in this order, each exactly as long as the header says:
      metadata           msgpack map: schema.to_dict(Resources) without source, requirements, compiler
      elf                the BPF ELF object
      source             the script, UTF-8
      requirements       msgpack map: schema.to_dict(Requirements), what the bundle needs of a host
    signature            the signer's ID (8 bytes) and its ed25519 signature (64 bytes) of every
                         byte before it (common/signing.py)

`read()` checks the header (magic, format, lengths against the file's size, the digest) and, when
given a trusted key, the signature, before it decodes any section; then it decodes the sections
with bounds. It raises `BundleError` with a one-line reason for anything that is not a valid
bundle. Imports only the standard library, msgpack and common.
"""

from __future__ import annotations

import struct

import msgpack

from common import signing
from common.record import record
from common.schema import MAX_SOURCE_BYTES, Resources, SchemaError, from_dict, to_dict
from common.signing import sha256

MAGIC = b"BPFB\x89\r\n\x1a"  # the \r\n and \x1a catch text-mode mangling, as PNG's magic does
FORMAT_VERSION = 3
HEADER = struct.Struct("<8sHH32s4I32s")
SECTIONS = ("metadata", "elf", "source", "requirements")
SIGNATURE_BYTES = signing.SIGNER_BYTES + signing.ED25519_BYTES
MAX_BUNDLE_BYTES = 64 << 20
MAX_REQUIREMENTS_BYTES = 1 << 20
_COMPILER_BYTES = 32
_DIGEST_OFFSET = HEADER.size - 32
_ELF_MAGIC = b"\x7fELF"
# Format 2 was a msgpack map after the magic: {"format": 2, ...}. Named, so that a bundle from an
# older bpftc is refused with the format it has rather than a number read from msgpack bytes.
_FORMAT_2 = b"\x84\xa6format\x02"
# The Resources fields that have a place of their own in the header or a section.
_OWN_PLACE = ("compiler", "source", "requirements")


class BundleError(ValueError):
    """Not a valid bundle; the message is one line for the user."""


@record(frozen=True, slots=True)
class Bundle:
    resources: Resources
    elf: bytes


@record(frozen=True, slots=True)
class Header:
    format: int
    signature_length: int
    compiler: str
    lengths: tuple[int, int, int, int]  # of SECTIONS
    sha256: bytes

    @property
    def end(self) -> int:
        """Where the sections end (and the signature, if any, starts)."""
        return HEADER.size + sum(self.lengths)


def write(bundle: Bundle, signing_key=None) -> bytes:
    """The bundle's bytes; signed when given an ed25519 private key (common/signing.py). The
    ELF is written as given: checking it is the reader's job."""
    resources = bundle.resources
    metadata = {name: value for name, value in to_dict(resources).items() if name not in _OWN_PLACE}
    sections = (_pack(metadata), bundle.elf, resources.source.encode(), _pack(to_dict(resources.requirements)))
    compiler = resources.compiler.encode("ascii")
    if len(compiler) > _COMPILER_BYTES or not resources.compiler.isprintable():
        raise ValueError(f"compiler name {resources.compiler!r} does not fit a bundle's header")
    signature_length = SIGNATURE_BYTES if signing_key is not None else 0
    head = HEADER.pack(MAGIC, FORMAT_VERSION, signature_length, compiler, *map(len, sections), bytes(32))
    body = b"".join(sections)
    digest = sha256(head[:_DIGEST_OFFSET] + body).digest()
    data = head[:_DIGEST_OFFSET] + digest + body
    if signing_key is None:
        return data
    signature = signing.sign(data, signing_key)
    return data + bytes.fromhex(signature["signer"]) + signature["ed25519"]


def read_header(data: bytes) -> Header:
    """The header of the bundle in `data`, checked against the bundle's size and digest; no
    section is decoded."""
    if len(data) > MAX_BUNDLE_BYTES:
        raise BundleError(f"bundle is larger than {MAX_BUNDLE_BYTES >> 20} MiB")
    if not data.startswith(MAGIC):
        raise BundleError("not a bpftc bundle (bad magic)")
    if data.startswith(_FORMAT_2, len(MAGIC)):
        raise BundleError(_unsupported(2))
    if len(data) < HEADER.size:
        raise BundleError(f"bundle is truncated ({len(data)} bytes, shorter than its {HEADER.size}-byte header)")
    _, version, signature_length, compiler, *lengths, digest = HEADER.unpack_from(data)
    if version != FORMAT_VERSION:
        raise BundleError(_unsupported(version))
    header = Header(version, signature_length, _compiler(compiler), tuple(lengths), digest)
    expected = header.end + signature_length
    if len(data) < expected:
        raise BundleError(f"bundle is truncated ({len(data)} bytes, its header says {expected})")
    if len(data) > expected:
        raise BundleError(f"bundle is corrupt ({len(data) - expected} bytes after its end)")
    if sha256(data[:_DIGEST_OFFSET] + data[HEADER.size : header.end]).digest() != digest:
        raise BundleError("bundle is corrupt (checksum mismatch)")
    if signature_length not in (0, SIGNATURE_BYTES):
        raise BundleError("bundle's signature is malformed")
    return header


def signer(data: bytes) -> str | None:
    """Who signed a bundle `read` accepted (not checked here: that is `read(..., trusted_key)`)."""
    header = read_header(data)
    return data[header.end : header.end + signing.SIGNER_BYTES].hex() if header.signature_length else None


def read(data: bytes, trusted_key=None) -> Bundle:
    """The bundle in `data`; with a `trusted_key`, only when that key signed it (checked before
    any section is decoded)."""
    header = read_header(data)
    if trusted_key is not None:
        signature = None
        if header.signature_length:
            block = data[header.end :]
            signature = {"signer": block[: signing.SIGNER_BYTES].hex(), "ed25519": block[signing.SIGNER_BYTES :]}
        try:
            signing.check(data[: header.end], signature, trusted_key)
        except signing.SignatureError as error:
            raise BundleError(str(error)) from None
    metadata, elf, source, requirements = _sections(data, header)
    if not elf.startswith(_ELF_MAGIC):
        raise BundleError("bundle holds no ELF object")
    if len(source) > MAX_SOURCE_BYTES or len(requirements) > MAX_REQUIREMENTS_BYTES:
        raise BundleError("bundle's source or requirements section is too large")
    try:
        text = source.decode("utf-8")
    except UnicodeDecodeError:
        raise BundleError("bundle's source is not UTF-8 text") from None
    fields = _unpack(metadata, "metadata")
    if any(name in fields for name in _OWN_PLACE):
        raise BundleError("bundle is corrupt (its metadata repeats a field the header or a section holds)")
    fields.update(compiler=header.compiler, source=text, requirements=_unpack(requirements, "requirements"))
    try:
        resources = from_dict(Resources, fields)
    except SchemaError as error:
        raise BundleError(f"bundle metadata is invalid: {error}") from None
    return Bundle(resources, elf)


def _unsupported(version: int) -> str:
    return f"bundle format {version} is not supported (this bpfrun reads format {FORMAT_VERSION})"


def _compiler(field: bytes) -> str:
    name = field.rstrip(b"\0")
    if not all(0x20 <= byte < 0x7F for byte in name):
        raise BundleError("bundle is corrupt (its compiler name is not printable ASCII)")
    return name.decode("ascii")


def _sections(data: bytes, header: Header) -> list[bytes]:
    sections, start = [], HEADER.size
    view = memoryview(data)
    for length in header.lengths:
        sections.append(bytes(view[start : start + length]))
        start += length
    return sections


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
        raise BundleError(f"bundle is corrupt ({what}: {type(error).__name__})") from None
    if not isinstance(value, dict):
        raise BundleError(f"bundle is corrupt ({what} is not a map)")
    return value
