"""Running the compiler's stages from tests, without a subprocess."""

from __future__ import annotations

from bpftc.diagnostics import render
from bpftc.pipeline import compile_source
from bpftc.source import Source


def diagnostics_text(program: str, name: str = "stdin") -> str:
    """What bpftc prints on stderr for `program`."""
    source = Source(name, program)
    return render(source, compile_source(source).diagnostics)


def dump(program: str, stage: str) -> str:
    result = compile_source(Source("stdin", program), dump=stage)
    assert not result.diagnostics.has_errors, render(Source("stdin", program), result.diagnostics)
    return result.dump
