"""Bundle: the plan's resources and the ELF object → the bytes of a .bpfb file (common/bundle.py)."""

from __future__ import annotations

from common import bundle
from common.schema import Resources


def write_bundle(resources: Resources, elf: bytes, signing_key=None) -> bytes:
    return bundle.write(bundle.Bundle(resources, elf), signing_key)
