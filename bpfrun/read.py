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


def read_bundle(path: str) -> Bundle:
    data = _read_bytes(path)
    try:
        return bundle_format.read(data)
    except BundleError as error:
        raise UserError(str(error)) from None
    except Exception as error:  # common.bundle promises BundleError; never show a traceback
        raise UserError(f"bundle is invalid ({type(error).__name__}: {error})") from None


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
