"""Step 4: attach every probe of the bundle, all or nothing.

Consumes a `LoadedObject` and the bundle's probes; returns an `ExitStack` that owns every link
(it is itself registered in the caller's stack, so it is closed with everything else, and run.py
can close it first to detach the probes before END runs). A link or perf event fd is registered
the moment it exists, so when one attach fails, unwinding destroys everything already attached.

`check_attach_points` checks every probe against the kernel first (tracefs, kprobe support), so
that a missing attach point is reported before BEGIN runs and anything is attached. One function per provider; BEGIN and END
are not attached (run.py runs them). Errors: `UserError` naming the attach point.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
from collections.abc import Callable, Sequence

from bpfrun import tracefs
from bpfrun.errors import UserError
from bpfrun.libbpf import (
    PERF_COUNT_SW_CPU_CLOCK,
    PERF_TYPE_SOFTWARE,
    SYS_PERF_EVENT_OPEN,
    lib,
    libc,
    perf_event_attr,
)
from bpfrun.load import LoadedObject
from common.schema import BEGIN, END, INTERVAL, KPROBE, KRETPROBE, TRACEPOINT, ProbeSpec

_REVERSED = (KPROBE,)
_PERF_FLAG_FD_CLOEXEC = 8
_PERF_ATTR_DISABLED = 1  # bit 0 of the flags word: libbpf enables the event once the program is set


def check_attach_points(probes: Sequence[ProbeSpec]) -> None:
    """Refuse, before anything runs, attach points this kernel does not have."""
    for probe in probes:
        _CHECKS[probe.provider](probe)


def attach_probes(
    loaded: LoadedObject, probes: Sequence[ProbeSpec], stack: contextlib.ExitStack
) -> contextlib.ExitStack:
    links = stack.enter_context(contextlib.ExitStack())
    for probe in _attach_order(probes):
        _ATTACHERS[probe.provider](loaded.programs[probe.program], probe, links)
    return links


def attached_message(probes: Sequence[ProbeSpec]) -> str:
    """bpftrace's line on stderr; it counts every probe, BEGIN and END included."""
    count = len(probes)
    return f"Attached {count} probe" if count == 1 else f"Attached {count} probes"


def _attach_order(probes: Sequence[ProbeSpec]) -> list[ProbeSpec]:
    # As bpftrace: the kernel runs the kprobes of one function newest first and the other probe
    # kinds oldest first, so kprobes are attached in reverse to fire in the script's order.
    forward = [probe for probe in probes if probe.provider not in _REVERSED]
    return forward + [probe for probe in reversed(probes) if probe.provider in _REVERSED]


def _check_nothing(probe: ProbeSpec) -> None:
    pass


def _check_tracepoint(probe: ProbeSpec) -> None:
    category, name = probe.target
    if not tracefs.tracepoint_exists(category, name):
        raise UserError(f"cannot attach {probe.attach_point}: no such tracepoint")


def _check_kprobe(probe: ProbeSpec) -> None:
    if not tracefs.kprobes_available():
        raise UserError(
            f"cannot attach {probe.attach_point}: kprobes are not available on this kernel (CONFIG_KPROBES is off)"
        )


def _attach_nothing(program: int, probe: ProbeSpec, links: contextlib.ExitStack) -> None:
    pass


def _attach_tracepoint(program: int, probe: ProbeSpec, links: contextlib.ExitStack) -> None:
    category, name = probe.target
    link = lib.bpf_program__attach_tracepoint(program, category.encode(), name.encode())
    _register(link, probe, links)


def _attach_kprobe(program: int, probe: ProbeSpec, links: contextlib.ExitStack) -> None:
    (function,) = probe.target
    link = lib.bpf_program__attach_kprobe(program, probe.provider == KRETPROBE, function.encode())
    _register(link, probe, links)


def _attach_interval(program: int, probe: ProbeSpec, links: contextlib.ExitStack) -> None:
    attr = perf_event_attr(
        type=PERF_TYPE_SOFTWARE,
        size=ctypes.sizeof(perf_event_attr),
        config=PERF_COUNT_SW_CPU_CLOCK,
        sample_period=probe.period_ns,
        flags=_PERF_ATTR_DISABLED,
    )
    # One CPU (cpu 0, any process): bpftrace's interval fires once per period, not once per CPU.
    perf_fd = libc.syscall(SYS_PERF_EVENT_OPEN, ctypes.byref(attr), -1, 0, -1, _PERF_FLAG_FD_CLOEXEC)
    if perf_fd < 0:
        raise UserError(f"cannot attach {probe.attach_point}: perf_event_open: {os.strerror(ctypes.get_errno())}")
    with contextlib.ExitStack() as pending:
        pending.callback(os.close, perf_fd)
        link = lib.bpf_program__attach_perf_event(program, perf_fd)
        _register(link, probe, links)
        pending.pop_all()  # the perf link owns the fd now: bpf_link__destroy closes it


def _register(link: int | None, probe: ProbeSpec, links: contextlib.ExitStack) -> None:
    if not link:
        raise UserError(f"cannot attach {probe.attach_point}: {os.strerror(ctypes.get_errno())}")
    links.callback(lib.bpf_link__destroy, link)


_CHECKS: dict[str, Callable[[ProbeSpec], None]] = {
    BEGIN: _check_nothing,
    END: _check_nothing,
    TRACEPOINT: _check_tracepoint,
    KPROBE: _check_kprobe,
    KRETPROBE: _check_kprobe,
    INTERVAL: _check_nothing,
}
_ATTACHERS: dict[str, Callable[[int, ProbeSpec, contextlib.ExitStack], None]] = {
    BEGIN: _attach_nothing,
    END: _attach_nothing,
    TRACEPOINT: _attach_tracepoint,
    KPROBE: _attach_kprobe,
    KRETPROBE: _attach_kprobe,
    INTERVAL: _attach_interval,
}
