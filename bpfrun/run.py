"""Step 5: run a loaded program: BEGIN, the events until it stops, END. __main__ calls, in
bpftrace 0.27's order: `run_begin` (bpf_prog_test_run_opts, in bpfrun's own process context),
attach (attach.py), `run_until_stopped`, detach, `run_end`, then prints the maps.

Events that arrive after an exit event are dropped until END runs, as bpftrace drops them. Records the programs could not reserve are counted by the BPF side (`Resources.lost_map`);
after each batch the new losses are reported, as bpftrace reports them. Every kernel object is
owned by the caller's `ExitStack`; signal handlers only set `StopFlag.requested`.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import time
from collections.abc import Callable

from bpfrun.errors import UserError
from bpfrun.events import EventHandler
from bpfrun.libbpf import bpf_test_run_opts, lib
from bpfrun.load import LoadedObject, exit_only
from bpfrun.maps import possible_cpus
from bpfrun.output import Output
from bpfrun.ringbuf import MappedRingBuffer
from common.schema import BEGIN, END, SIGNAL, ProbeSpec, Resources

POLL_TIMEOUT_MS = 100


class StopFlag:
    """Whether to stop polling; set by SIGINT/SIGTERM (install()) and by exit events. Also counts
    the SIGUSR1s a self:signal:SIGUSR1 probe waits for (install_user_signal())."""

    def __init__(self) -> None:
        self.requested = False
        self.user_signals = 0

    def install(self) -> None:
        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGTERM, self._on_signal)

    def install_user_signal(self) -> None:
        signal.signal(signal.SIGUSR1, self._on_user_signal)

    def _on_signal(self, signum: int, frame: object) -> None:
        self.requested = True

    def _on_user_signal(self, signum: int, frame: object) -> None:
        self.user_signals += 1


class Events:
    """The ring buffer, what handles its records and the lost-record counter, for the whole run."""

    def __init__(
        self,
        loaded: LoadedObject,
        resources: Resources,
        handler: EventHandler,
        output: Output,
        stack: contextlib.ExitStack,
        stop: StopFlag,
    ) -> None:
        self.dispatcher = _Dispatcher(handler, stop)
        self.output = output
        self.loaded = loaded
        self.ring = None
        # Records lost by programs that send only exit events are surplus exits (load.exit_only).
        counted = resources.lost_map and not exit_only(resources)
        self.lost = _LostCounter(loaded.map_fds[resources.lost_map]) if counted else None
        if resources.event_map:
            map_fd = loaded.map_fds[resources.event_map]
            self.ring = MappedRingBuffer(map_fd, loaded.ring_buffer_size)
            stack.callback(self.ring.close)

    @property
    def exit_code(self) -> int:
        """The exit event's code modulo 256, else 0: bpfrun's exit status."""
        return self.dispatcher.exit_code & 0xFF

    def poll(self) -> None:
        if self.ring:
            self.ring.wait(POLL_TIMEOUT_MS)
        else:
            time.sleep(POLL_TIMEOUT_MS / 1000)
        self.drain()

    def drain_all(self, patience_s: float = 1.0) -> None:
        """drain() until the ring buffer is empty. After the probes are detached a program may
        still be writing a record it reserved: such a record ends a batch (the records after it
        wait for it), so wait for it, up to `patience_s`, rather than lose what follows."""
        deadline = time.monotonic() + patience_s
        self.drain()
        while self.ring and self.ring.pending() and time.monotonic() < deadline:
            time.sleep(0.001)
            self.drain()

    def drain(self) -> None:
        """Handle every record the ring buffer holds, then report losses and flush the output:
        once per batch, however many records it has."""
        if self.ring:
            self.dispatcher.handle(self.ring.records())
        self._after_batch()

    def _after_batch(self) -> None:
        if self.lost is not None:
            lost = self.lost.new_losses()
            if lost:
                self.output.lost(lost)
        self.output.flush()


def run_begin(loaded: LoadedObject, resources: Resources) -> None:
    """Run the BEGIN programs, before the other probes are attached (bpftrace's order)."""
    _run_programs(loaded, resources.probes, BEGIN)


def run_until_stopped(
    events: Events, resources: Resources, stop: StopFlag, finished: Callable[[], bool] | None = None
) -> None:
    """Handle events until SIGINT, SIGTERM, exit() or, with -c, the command's end; with only BEGIN
    and END probes there is nothing to wait for, so stop once the ring buffer is empty, as
    bpftrace does."""
    if not any(probe.provider not in (BEGIN, END) for probe in resources.probes) and finished is None:
        events.drain()
        return
    while not stop.requested:
        events.poll()
        if finished is not None and finished():
            break
        while stop.user_signals and not stop.requested:  # self:signal:SIGUSR1, once per signal
            stop.user_signals -= 1
            _run_programs(events.loaded, resources.probes, SIGNAL)
            events.drain()


def run_end(loaded: LoadedObject, resources: Resources, events: Events) -> None:
    """Run the END programs (after the probes are detached) and handle their events."""
    events.dispatcher.start_end_phase()
    _run_programs(loaded, resources.probes, END)
    events.drain_all()


class _Dispatcher:
    """Hands ring buffer records to events.py; drops them after an exit event, until END runs.

    As bpftrace: after an exit event the rest of the main phase's records are dropped; END's
    records are handled up to END's own exit event, if any. After SIGINT or SIGTERM, what the
    programs sent before they were detached is still printed: nothing is lost silently."""

    def __init__(self, handler: EventHandler, stop: StopFlag) -> None:
        self._handler = handler
        self._stop = stop
        self._in_end = False
        self._dropping = False
        self.exit_code = 0

    def start_end_phase(self) -> None:
        self._in_end = True
        self._dropping = False

    def handle(self, records: list[bytes]) -> None:
        if self._dropping or not records:
            return
        code = self._handler.handle_batch(records)
        if code is not None:
            self.exit_code = code
            self._dropping = True
            self._stop.requested = True


class _LostCounter:
    """Sums the per-CPU count of records the programs could not reserve; reports what is new."""

    def __init__(self, map_fd: int) -> None:
        self._fd = map_fd
        self._key = ctypes.c_uint32(0)
        self._values = (ctypes.c_uint64 * possible_cpus())()
        self._reported = 0

    def new_losses(self) -> int:
        error = lib.bpf_map_lookup_elem(self._fd, ctypes.byref(self._key), self._values)
        if error < 0:
            raise UserError(f"cannot read the lost-events counter: {os.strerror(-error)}")
        total = sum(self._values)
        new, self._reported = total - self._reported, total
        return new


def _run_programs(loaded: LoadedObject, probes: tuple[ProbeSpec, ...], provider: str) -> None:
    for probe in probes:
        if probe.provider != provider:
            continue
        options = bpf_test_run_opts(sz=ctypes.sizeof(bpf_test_run_opts))
        result = lib.bpf_prog_test_run_opts(lib.bpf_program__fd(loaded.programs[probe.program]), ctypes.byref(options))
        if result < 0:
            raise UserError(f"cannot run {probe.attach_point}: {os.strerror(-result)}")
