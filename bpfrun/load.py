"""Step 3: open the bundle's ELF object with libbpf, check it against the Resources, load it.

Consumes a verified `Bundle`; produces a `LoadedObject` whose kernel objects are owned by the
caller's `ExitStack` (bpf_object__close frees programs and maps). Before anything reaches the
kernel, every probe's program and every map must exist in the ELF with the kernel type and the
key and value sizes common/schema.py gives, the event map must be a ring buffer and the
lost-events map a per-CPU array of one u64.

Errors (`UserError`, one line): an ELF libbpf cannot open (or that crashes libbpf's parser, which
opens it first in a child process without privileges), a program or map that does not match, and
a load the kernel refuses, summarised by the last meaningful line of the verifier's log.
"""

from __future__ import annotations

import contextlib
import ctypes
import faulthandler
import math
import os
import re
import resource
import signal
from collections.abc import Mapping

from bpfrun.errors import UserError
from bpfrun.libbpf import (
    BPF_MAP_TYPE_HASH,
    BPF_MAP_TYPE_LRU_HASH,
    BPF_MAP_TYPE_LRU_PERCPU_HASH,
    BPF_MAP_TYPE_PERCPU_ARRAY,
    BPF_MAP_TYPE_PERCPU_HASH,
    BPF_MAP_TYPE_RINGBUF,
    BPF_MAP_TYPE_STACK_TRACE,
    PRINT_FN,
    LogCapture,
    lib,
)
from common import schema
from common.bundle import Bundle
from common.layout import MAX_STACK_DEPTH
from common.record import record
from common.schema import PROBE_NAME_SIZE, USDT_SPEC_SIZE, MapSpec, Resources

_MAP_TYPES = {
    schema.HASH: BPF_MAP_TYPE_HASH,
    schema.PERCPU_HASH: BPF_MAP_TYPE_PERCPU_HASH,
    schema.PERCPU_ARRAY: BPF_MAP_TYPE_PERCPU_ARRAY,
    schema.LRU_HASH: BPF_MAP_TYPE_LRU_HASH,
    schema.LRU_PERCPU_HASH: BPF_MAP_TYPE_LRU_PERCPU_HASH,
}
# Verifier log lines that come after the complaint and say nothing about it.
_LIBBPF_SUMMARIES = re.compile(r"failed to load object|failed to load: -\d+$")
_LOG_TRAILERS = re.compile(r"^(processed \d+ insns|verification time|stack depth|max_states_per_insn|\s*$)")


@record(frozen=True, slots=True)
class LoadedObject:
    handle: int  # struct bpf_object *
    programs: Mapping[str, int]  # ELF function name → struct bpf_program *
    map_fds: Mapping[str, int]  # ELF map name → map fd (the script's maps and the event map)
    ring_buffer_size: int  # bytes of the event ring buffer (0 without one)
    elf: ctypes.Array  # the ELF bytes libbpf parsed; kept alive as long as the object


def load(
    bundle: Bundle, stack: contextlib.ExitStack, log: LogCapture, globals_data: bytes = b"", used: set[str] | None = None
) -> LoadedObject:
    """Open, check and load the bundle's object; `globals_data` goes into its .rodata first.
    `used`: the programs to load (None: all), without those of probes skipped (missing_probes)."""
    resources = bundle.resources
    _open_in_child(bundle.elf)
    elf = ctypes.create_string_buffer(bundle.elf, len(bundle.elf))
    log.clear()
    handle = lib.bpf_object__open_mem(elf, len(bundle.elf), None)
    if not handle:
        error = ctypes.get_errno()
        raise UserError(f"cannot open the bundle's BPF object: {_last_line(log) or os.strerror(error)}")
    stack.callback(lib.bpf_object__close, handle)
    programs = _find_programs(handle, resources)
    for name, program in programs.items():
        if used is not None and name not in used:
            lib.bpf_program__set_autoload(program, False)
    maps = _find_maps(handle, resources)
    if globals_data:
        _write_globals(handle, globals_data)
    if resources.event_map:
        _size_ring_buffer(maps[resources.event_map], resources.ring_buffer_pages, exit_only(resources))
    log.clear()
    error = lib.bpf_object__load(handle)
    if error:
        raise UserError(_load_failure(resources, log, -error))
    map_fds = {name: lib.bpf_map__fd(pointer) for name, pointer in maps.items()}
    ring_size = lib.bpf_map__max_entries(maps[resources.event_map]) if resources.event_map else 0
    return LoadedObject(handle, programs, map_fds, ring_size, elf)


# libbpf 1.1 (Debian bookworm's) trusts the BTF of an object it opens: of 2,334 mutated objects
# (valid checksums) that passed verify_object.py's checks, 39 crashed bpf_object__open_mem with
# SIGSEGV, every one with a damaged .BTF section. Python cannot check everything libbpf parses, so
# a child process without privileges opens the same bytes first; bpfrun opens them only when that
# child lived. (bpf_object__load, which goes on to parse .BTF.ext and the relocations, crashed on
# none of the 824 of those objects that opened.)
_NOBODY = 65534
_CHILD_CPU_SECONDS = 10


def _open_in_child(elf: bytes) -> None:
    pid = os.fork()
    if pid == 0:  # the child: no privileges, no output, a CPU limit; its exit status says it lived
        status = 1
        try:
            lib.libbpf_set_print(PRINT_FN())  # a NULL callback: libbpf prints nothing
            faulthandler.disable()  # a crash here is expected: no stack dump (PYTHONFAULTHANDLER, pytest)
            quiet = os.open(os.devnull, os.O_WRONLY)  # and no other output
            os.dup2(quiet, 1)
            os.dup2(quiet, 2)
            if os.geteuid() == 0:
                os.setgroups([])
                os.setresgid(_NOBODY, _NOBODY, _NOBODY)
                os.setresuid(_NOBODY, _NOBODY, _NOBODY)  # which drops every capability
            resource.setrlimit(resource.RLIMIT_CPU, (_CHILD_CPU_SECONDS, _CHILD_CPU_SECONDS))
            buffer = ctypes.create_string_buffer(elf, len(elf))
            lib.bpf_object__open_mem(buffer, len(elf), None)  # refused or not: the parent finds out
            status = 0
        finally:
            os._exit(status)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        raise UserError(
            f"bundle's BPF object crashed libbpf's parser in a child process ({_signal_name(status)}); nothing was loaded"
        )
    if os.WEXITSTATUS(status) != 0:
        raise UserError("cannot open the bundle's BPF object in a child process without privileges")


def _signal_name(status: int) -> str:
    try:
        return signal.Signals(os.WTERMSIG(status)).name
    except ValueError:
        return f"signal {os.WTERMSIG(status)}"


def _find_programs(handle: int, resources: Resources) -> dict[str, int]:
    programs = {}
    for probe in resources.probes:
        program = lib.bpf_object__find_program_by_name(handle, probe.program.encode())
        if not program:
            raise UserError(f"bundle's BPF object has no program {probe.program!r} for probe {probe.attach_point}")
        programs[probe.program] = program
    return programs


def _find_maps(handle: int, resources: Resources) -> dict[str, int]:
    maps = {spec.elf_name: _find_map(handle, spec.elf_name, spec.name) for spec in resources.maps}
    for spec in resources.maps:
        _check_map(maps[spec.elf_name], spec)
    for field, purpose, what, expected, shape in _SPECIAL_MAPS:
        name = getattr(resources, field)
        if name:
            maps[name] = _find_special_map(handle, name, purpose, what, expected, shape)
    return maps


MAX_RING_BUFFER_BYTES = 1 << 30


def exit_only(resources: Resources) -> bool:
    """Whether every event the programs can send is exit(). Then only the first exit record of a
    phase is ever read (run.py drops the rest until END, and END's own after its first), and that
    one always finds room: what is lost is surplus exits, so one page of ring buffer loses nothing
    that counts, and run.py does not report such losses."""
    return all(isinstance(event, schema.ExitEvent) for event in resources.events)


def _size_ring_buffer(ring_buffer: int, pages: int, exit_only: bool = False) -> None:
    """As bpftrace sizes it: `perf_rb_pages` pages when the script sets it, else the power of two
    closest to min(available memory, 16544 KiB), at least 256 KiB; but one page when the programs
    send nothing but exit events (see exit_only). The kernel maps every page of the ring buffer into
    bpfrun (twice: the data area is mapped again after itself) the moment bpfrun maps it, so
    bpftrace's 16 MiB is 32 MiB of bpfrun's resident memory, for one 16-byte record here."""
    page = os.sysconf("SC_PAGE_SIZE")
    if not pages and exit_only:
        pages = 1
    if not pages:
        wanted = max(min(_available_kib(), 16544), 256) * 1024
        pages = wanted // page
    pages = 1 << max(round(math.log2(pages)), 0)
    size = pages * page
    if size > MAX_RING_BUFFER_BYTES:
        raise UserError(f"perf_rb_pages asks for {size} bytes of ring buffer, more than {MAX_RING_BUFFER_BYTES}")
    error = lib.bpf_map__set_max_entries(ring_buffer, size)
    if error:
        raise UserError(f"cannot size the event ring buffer to {size} bytes: {os.strerror(-error)}")


def _available_kib() -> int:
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemAvailable:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 16544


def _write_globals(handle: int, data: bytes) -> None:
    """Write the values the program reads from .rodata, before the kernel sees (and freezes) it."""
    rodata = _find_map(handle, ".rodata", "parameters")
    size = ctypes.c_size_t(0)
    initial = lib.bpf_map__initial_value(rodata, ctypes.byref(size))
    if not initial or size.value < len(data):
        raise UserError(f"bundle's .rodata holds {size.value} bytes, its metadata describes {len(data)}")
    ctypes.memmove(initial, data, len(data))


# The maps bpftc adds to a script's own: (Resources field, purpose, what the messages call it,
# (type, key size, value size) with None for any, what it must be).
_SPECIAL_MAPS = (
    ("event_map", "events", "event", (BPF_MAP_TYPE_RINGBUF, None, None), "a ring buffer"),
    ("lost_map", "lost events", "lost-events", (BPF_MAP_TYPE_PERCPU_ARRAY, 4, 8), "a per-CPU array of one u64"),
    ("probe_names_map", "probe names", "probe-names", (BPF_MAP_TYPE_HASH, 8, PROBE_NAME_SIZE), "a hash of u64 to names"),
    ("usdt_spec_map", "USDT arguments", "USDT", (BPF_MAP_TYPE_HASH, 8, USDT_SPEC_SIZE), "a hash of u64 to argument specs"),
    ("stack_map", "stacks", "stack", (BPF_MAP_TYPE_STACK_TRACE, 4, 8 * MAX_STACK_DEPTH),
     f"a stack-trace map of {MAX_STACK_DEPTH} frames"),
)  # fmt: skip


def _find_special_map(handle: int, name: str, purpose: str, what: str, expected: tuple, shape: str) -> int:
    pointer = _find_map(handle, name, purpose)
    found = (lib.bpf_map__type(pointer), lib.bpf_map__key_size(pointer), lib.bpf_map__value_size(pointer))
    if any(wanted is not None and value != wanted for value, wanted in zip(found, expected)):
        raise UserError(f"bundle's {what} map {name!r} is not {shape}")
    return pointer


def _find_map(handle: int, elf_name: str, purpose: str) -> int:
    pointer = lib.bpf_object__find_map_by_name(handle, elf_name.encode())
    if not pointer:
        raise UserError(f"bundle's BPF object has no map {elf_name!r} (for {purpose})")
    return pointer


def _check_map(pointer: int, spec: MapSpec) -> None:
    expected = (_MAP_TYPES[spec.kernel_type], schema.key_size(spec), schema.element_size(spec), spec.max_entries)
    found = (
        lib.bpf_map__type(pointer),
        lib.bpf_map__key_size(pointer),
        lib.bpf_map__value_size(pointer),
        lib.bpf_map__max_entries(pointer),
    )
    if found != expected:
        raise UserError(
            f"map {spec.name} ({spec.elf_name!r}) has type/key/value sizes/entries {found} in the BPF object, "
            f"but {expected} in the bundle's metadata"
        )


def _load_failure(resources: Resources, log: LogCapture, error: int) -> str:
    """One line: which probe the kernel refused and the verifier's last word about it."""
    program, complaint = _verifier_complaint(log.lines)
    if program is None:  # refused before the verifier ran (no log): libbpf names the program
        refused = [re.search(r"prog '([^']*)': BPF program load failed: (.*)", line) for line in log.lines]
        program, complaint = next(((match[1], match[2].strip()) for match in refused if match), (None, None))
    probes = {probe.program: probe.attach_point for probe in resources.probes}
    what = probes.get(program or "", "the BPF programs")
    reason = complaint or _last_line(log) or os.strerror(error)
    return f"cannot load {what}: {reason}"


def _verifier_complaint(lines: list[str]) -> tuple[str | None, str | None]:
    """The program named by libbpf's last PROG LOAD LOG and that log's last meaningful line."""
    program = complaint = None
    inside = False
    for line in lines:
        begin = re.search(r"prog '([^']*)': -- BEGIN PROG LOAD LOG --", line)
        if begin:
            program, complaint, inside = begin.group(1), None, True
        elif "-- END PROG LOAD LOG --" in line:
            before = line.partition("-- END PROG LOAD LOG --")[0]
            if inside and not _LOG_TRAILERS.match(before):
                complaint = before.strip()
            inside = False
        elif inside and not _LOG_TRAILERS.match(line):
            complaint = line.strip()
    return program, complaint


def _last_line(log: LogCapture) -> str | None:
    """libbpf's last message, skipping its closing 'failed to load object' summaries."""
    for line in reversed(log.lines):
        text = line.removeprefix("libbpf: ").strip()
        if text and not _LIBBPF_SUMMARIES.search(text):
            return text
    return None
