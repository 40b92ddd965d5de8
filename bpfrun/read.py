"""Step 1: read a bundle file and decode it with `common.bundle.read`.

Consumes a path ('-' is stdin); produces a `common.bundle.Bundle`. Reports as `UserError`: an
unreadable file and anything `common.bundle.read` refuses (its `BundleError` message, unchanged).
Host checks are verify.py's job.
"""

from __future__ import annotations

import sys

from bpfrun.errors import UserError
from common import bundle as bundle_format
from common.bundle import Bundle, BundleError


def read_bundle(path: str, trust: str | None = None) -> Bundle:
    """`trust`: a PEM file of the one ed25519 key whose signed bundles bpfrun may run."""
    trusted_key = _trusted_key(trust) if trust else None
    data = _read_bytes(path)
    try:
        return bundle_format.read(data, trusted_key)
    except BundleError as error:
        raise UserError(str(error)) from None
    except Exception as error:  # common.bundle promises BundleError; never show a traceback
        raise UserError(f"bundle is invalid ({type(error).__name__}: {error})") from None


def bundle_signer(path: str) -> str | None:
    """Who signed the bundle at `path` (read_bundle accepted it already), unchecked."""
    return bundle_format.signer(_read_bytes(path))


def _trusted_key(path: str):
    from common import signing

    try:
        return signing.read_key(path, private=False)
    except signing.SignatureError as error:
        raise UserError(f"trusted key {error}") from None


def _read_bytes(path: str) -> bytes:
    # Read one byte more than a bundle may hold, so common.bundle.read reports the size.
    limit = bundle_format.MAX_BUNDLE_BYTES + 1
    try:
        if path == "-":
            return sys.stdin.buffer.read(limit)
        with open(path, "rb") as file:
            return file.read(limit)
    except OSError as error:
        raise UserError(f"cannot read bundle {path!r}: {error.strerror or error}") from None
