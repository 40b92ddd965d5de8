"""The kernel's verifier accepts the code bpftc generates for every construct (load only: kprobe
programs load on this kernel even though they cannot attach)."""

from __future__ import annotations

import contextlib
import os

import pytest

from tests.codegen.test_generate import CONSTRUCTS, compiled

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="loads BPF programs: needs root")


@pytest.mark.parametrize("program", CONSTRUCTS)
def test_verifier_accepts(program):
    from bpfrun import libbpf
    from bpfrun.load import load

    bundle = compiled(program)
    with contextlib.ExitStack() as stack:
        loaded = load(bundle, stack, libbpf.capture_log(False))
        assert set(loaded.programs) == {probe.program for probe in bundle.resources.probes}
