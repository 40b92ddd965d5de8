"""Step 4: attach every probe of the bundle, all or nothing.

One `Provider` per probe kind holds bpfrun's half of it (bpftc/probes.py holds the compiler's):
what a valid target looks like, how to check that this kernel has it, how to attach it. BEGIN
and END are not attached (run.py runs them).

Consumes a `LoadedObject` and the bundle's probes; returns an `ExitStack` that owns every link
(it is itself registered in the caller's stack, so it is closed with everything else, and run.py
can close it first to detach the probes before END runs). A link or perf event fd is registered
the moment it exists, so when one attach fails, unwinding destroys everything already attached.
`attachable` checks every probe against the kernel first (tracefs, kprobe support), so that a
missing attach point is reported (or, as the bundle's config says, skipped) before BEGIN runs. Errors: `UserError` naming the
attach point.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fnmatch
import os
import re
import sys
import zlib
from collections.abc import Callable, Sequence

from bpfrun import tracefs
from bpfrun.errors import UserError
from bpfrun.libbpf import (
    BTF_KIND_FUNC,
    PERF_COUNT_SW_CPU_CLOCK,
    PERF_TYPE_HARDWARE,
    PERF_TYPE_SOFTWARE,
    SYS_PERF_EVENT_OPEN,
    bpf_kprobe_opts,
    bpf_tracepoint_opts,
    bpf_uprobe_opts,
    lib,
    libc,
    perf_event_attr,
)
from bpfrun.load import LoadedObject
from common import schema
from common.binaries import LIBRARY_DIRECTORIES, find_binary
from common.record import record, replace
from common.schema import (
    BEGIN,
    END,
    FENTRY,
    FEXIT,
    FUNCTION_NAME_KEY,
    HARDWARE,
    HARDWARE_EVENTS,
    INTERVAL,
    KPROBE,
    KRETPROBE,
    PROBE_NAME_SIZE,
    PROFILE,
    RAWTRACEPOINT,
    SIGNAL,
    SOFTWARE,
    SOFTWARE_EVENTS,
    TRACEPOINT,
    UPROBE,
    URETPROBE,
    USDT,
    ProbeSpec,
)

TYPE_CHECKING = False  # as typing.TYPE_CHECKING, which type checkers know, without importing typing
if TYPE_CHECKING:
    from bpfrun import usdt

_PERF_FLAG_FD_CLOEXEC = 8
_PERF_ATTR_DISABLED = 1  # bit 0 of the flags word: libbpf enables the event once the program is set
_PERF_ATTR_FREQUENCY = 1 << 10  # `freq`: sample_period holds a frequency (profile:hz:N)

MAX_PERIOD_NS = (1 << 63) - 1
_TRACEPOINT_NAME = re.compile(schema.TRACEPOINT_NAME)
_TRACEPOINT_PATTERN = re.compile(schema.TRACEPOINT_PATTERN)
_FUNCTION_NAME = re.compile(schema.FUNCTION_NAME)
_PROBE_SYMBOL = re.compile(schema.PROBE_SYMBOL)


@record(frozen=True, slots=True)
class Provider:
    problem: Callable[[ProbeSpec], str | None]  # what is wrong with a probe's target, or None
    check: Callable[[ProbeSpec], None]  # raises UserError when this kernel cannot attach it
    attach: Callable[[int, ProbeSpec, contextlib.ExitStack], None]  # (bpf_program *, probe, links)


def expand_wildcards(probes: Sequence[ProbeSpec]) -> list[ProbeSpec]:
    """The bundle's probes with each wildcard replaced by the tracepoints or functions of this
    host that match it, all running the same program (bpftc cannot know which exist here)."""
    expanded = []
    for probe in probes:
        if not is_wildcard(probe):
            expanded.append(probe)
            continue
        from bpfrun import listing  # listing and usdt: imported by the probe kinds that need them

        if probe.provider == TRACEPOINT:
            expanded.extend(_matching_tracepoints(probe))
        elif probe.provider in (UPROBE, URETPROBE):
            expanded.extend(_matching_functions(probe, listing.elf_functions(binary_path(probe)), probe.target[0]))
        elif probe.provider in (KPROBE, KRETPROBE):
            _check_kprobe(probe)
            expanded.extend(_matching_functions(probe, sorted(set(listing.kernel_functions())), None))
        else:
            expanded.append(probe)
    return expanded


def expand_usdt(probes: Sequence[ProbeSpec]) -> list[ProbeSpec]:
    """Each USDT probe as one probe per site of it in its binary (the site's index last in its
    target); bpftrace counts them so in its "Attached N probes"."""
    expanded = []
    for probe in probes:
        if probe.provider != USDT:
            expanded.append(probe)
            continue
        from bpfrun import usdt

        binary, provider, name = probe.target
        found = usdt.sites(binary_path(probe), provider, name)
        if not found:
            raise UserError(f"cannot attach {probe.attach_point}: no such USDT probe in {binary_path(probe)}")
        expanded.extend(replace(probe, target=(*probe.target, str(index))) for index in range(len(found)))
    return expanded


def record_usdt_specs(loaded: LoadedObject, map_name: str, probes: Sequence[ProbeSpec]) -> None:
    """Write where each USDT site has its arguments into the bundle's spec map, under the
    site's attach cookie."""
    if not map_name:
        return
    from bpfrun import usdt

    for probe in probes:
        if probe.provider != USDT:
            continue
        site = _usdt_site(probe)
        spec = usdt.encode_spec(usdt.parse_arguments(site.arguments))
        key = ctypes.c_uint64(probe_cookie(probe))
        if lib.bpf_map_update_elem(loaded.map_fds[map_name], ctypes.byref(key), spec, 0) != 0:
            raise UserError(f"cannot record the arguments of {probe.attach_point}: {os.strerror(ctypes.get_errno())}")


def _usdt_site(probe: ProbeSpec) -> usdt.Site:
    from bpfrun import usdt

    binary, provider, name, index = probe.target
    return usdt.sites(binary_path(probe), provider, name)[int(index)]


def _matching_functions(probe: ProbeSpec, functions: Sequence[str], binary: str | None) -> list[ProbeSpec]:
    pattern = probe.target[-1]
    matches = [name for name in functions if fnmatch.fnmatchcase(name, pattern) and _FUNCTION_NAME.fullmatch(name)]
    if not matches:
        raise UserError(f"cannot attach {probe.attach_point}: no function matches it")
    head = probe.target[:-1]
    return [
        replace(probe, target=(*head, name), attach_point=":".join((probe.provider, *head, name)))
        for name in matches
    ]


def probe_cookie(probe: ProbeSpec) -> int:
    """The attach cookie of an expanded probe, the key of its name in the probe-names map: a
    tracepoint's id; for a function, a number from its name, above every tracepoint id."""
    if probe.provider == TRACEPOINT:
        return tracefs.tracepoint_id(*probe.target)
    if probe.provider == USDT:  # one cookie per site
        return 2 << 32 | zlib.crc32(":".join(probe.target).encode())
    return 1 << 32 | zlib.crc32(probe.attach_point.encode())


def is_wildcard(probe: ProbeSpec) -> bool:
    return any("*" in part for part in probe.target)


def _matching_tracepoints(probe: ProbeSpec) -> list[ProbeSpec]:
    matches = tracefs.matching_tracepoints(*probe.target)
    if not matches:
        raise UserError(f"cannot attach {probe.attach_point}: no tracepoint matches it")
    return [
        replace(probe, target=(category, name), attach_point=f"{TRACEPOINT}:{category}:{name}")
        for category, name in matches
    ]


def record_probe_names(loaded: LoadedObject, map_name: str, probes: Sequence[ProbeSpec]) -> None:
    """Fill the bundle's cookie → name map, from which a wildcard probe's program reads the
    `probe` builtin (which of the matching attach points fired: the cookie says) and, for
    functions, `func` (under the cookie with FUNCTION_NAME_KEY set)."""
    if not map_name:
        return
    for probe in probes:
        if probe.provider == TRACEPOINT:
            _record_name(loaded.map_fds[map_name], probe_cookie(probe), probe.attach_point, probe)
        elif probe.provider in (UPROBE, URETPROBE, KPROBE, KRETPROBE):
            _record_name(loaded.map_fds[map_name], probe_cookie(probe), probe.attach_point, probe)
            function = probe.target[-1].partition("+")[0]
            _record_name(loaded.map_fds[map_name], probe_cookie(probe) | FUNCTION_NAME_KEY, function, probe)


def _record_name(map_fd: int, cookie: int, name: str, probe: ProbeSpec) -> None:
    key = ctypes.c_uint64(cookie)
    value = ctypes.create_string_buffer(name.encode()[: PROBE_NAME_SIZE - 1], PROBE_NAME_SIZE)
    if lib.bpf_map_update_elem(map_fd, ctypes.byref(key), value, 0) != 0:
        raise UserError(f"cannot record the name of {probe.attach_point}: {os.strerror(ctypes.get_errno())}")


def attachable(probes: Sequence[ProbeSpec], missing: str = schema.MISSING_PROBES[0]) -> list[ProbeSpec]:
    """The probes this host can attach, wildcards and USDT probes expanded, checked before
    anything runs (libbpf fails to load an fentry without its function). An attach point the
    host lacks is refused, or with config missing_probes = warn or ignore skipped (warn says so
    on stderr); nothing left to attach is refused."""
    found = []
    for probe in probes:
        try:
            expanded = expand_usdt(expand_wildcards([probe]))
            for each in expanded:
                PROVIDERS[each.provider].check(each)
        except UserError as error:
            if missing == "error":
                raise
            if missing == "warn":
                sys.stderr.write(f"WARNING: {error}. Skipping.\n")
            continue
        found.extend(expanded)
    if not found:
        raise UserError("No probes to attach")
    return found


def attach_probes(
    loaded: LoadedObject, probes: Sequence[ProbeSpec], stack: contextlib.ExitStack
) -> contextlib.ExitStack:
    links = stack.enter_context(contextlib.ExitStack())
    for probe in _attach_order(probes):
        PROVIDERS[probe.provider].attach(loaded.programs[probe.program], probe, links)
    return links


def _attach_order(probes: Sequence[ProbeSpec]) -> list[ProbeSpec]:
    # As bpftrace: the kernel runs the kprobes of one function newest first and the other probe
    # kinds oldest first, so kprobes are attached in reverse to fire in the script's order.
    forward = [probe for probe in probes if probe.provider != KPROBE]
    return forward + [probe for probe in reversed(probes) if probe.provider == KPROBE]


# BEGIN and END


def _no_target(probe: ProbeSpec) -> str | None:
    return f"{probe.provider} takes no target" if probe.target or probe.period else None


def _nothing(*args: object) -> None:
    pass


# Tracepoints


def _tracepoint_problem(probe: ProbeSpec) -> str | None:
    # The names become a tracefs path: only the characters tracepoint names are made of.
    if len(probe.target) != 2 or not all(_TRACEPOINT_PATTERN.fullmatch(part) for part in probe.target):
        return f"invalid tracepoint target {':'.join(probe.target)!r}"
    return None


def _check_tracepoint(probe: ProbeSpec) -> None:
    category, name = probe.target
    if not tracefs.tracepoint_exists(category, name):
        raise UserError(f"cannot attach {probe.attach_point}: no such tracepoint")


def _attach_tracepoint(program: int, probe: ProbeSpec, links: contextlib.ExitStack) -> None:
    category, name = probe.target
    # The tracepoint's id as attach cookie: the key of its name in the probe-names map.
    options = bpf_tracepoint_opts(ctypes.sizeof(bpf_tracepoint_opts), probe_cookie(probe))
    link = lib.bpf_program__attach_tracepoint_opts(program, category.encode(), name.encode(), ctypes.byref(options))
    _register(link, probe, links)


# kprobes


def _kprobe_problem(probe: ProbeSpec) -> str | None:
    """`[MODULE:]FUNCTION`, FUNCTION with wildcards or +OFFSET."""
    parts = probe.target
    if not 1 <= len(parts) <= 2 or not _PROBE_SYMBOL.fullmatch(parts[-1]) or parts[-1].startswith("0x"):
        return f"invalid {probe.provider} target {':'.join(parts)!r}"
    if len(parts) == 2 and not _TRACEPOINT_PATTERN.fullmatch(parts[0]):
        return f"invalid {probe.provider} module {parts[0]!r}"
    return None


def _check_kprobe(probe: ProbeSpec) -> None:
    if not tracefs.kprobes_available():
        raise UserError(
            f"cannot attach {probe.attach_point}: kprobes are not available on this kernel (CONFIG_KPROBES is off)"
        )


def _attach_kprobe(program: int, probe: ProbeSpec, links: contextlib.ExitStack) -> None:
    function, _, offset = probe.target[-1].partition("+")  # a module's function is named alone
    options = bpf_kprobe_opts(sz=ctypes.sizeof(bpf_kprobe_opts), bpf_cookie=probe_cookie(probe))
    options.offset, options.retprobe = int(offset or 0), probe.provider == KRETPROBE
    link = lib.bpf_program__attach_kprobe_opts(program, function.encode(), ctypes.byref(options))
    _register(link, probe, links)


# interval


def _interval_problem(probe: ProbeSpec) -> str | None:
    if probe.target or not 0 < probe.period <= MAX_PERIOD_NS:
        return f"an interval needs a period between 1 and {MAX_PERIOD_NS} ns, not {probe.period}"
    return None


def _attach_interval(program: int, probe: ProbeSpec, links: contextlib.ExitStack) -> None:
    # One CPU (cpu 0, any process): bpftrace's interval fires once per period, not once per CPU.
    _attach_perf_event(program, probe, links, PERF_TYPE_SOFTWARE, PERF_COUNT_SW_CPU_CLOCK, 0)


def _attach_on_every_cpu(event_type: int, config: Callable[[ProbeSpec], int]):
    def attach(program: int, probe: ProbeSpec, links: contextlib.ExitStack) -> None:
        for cpu in online_cpus():
            _attach_perf_event(program, probe, links, event_type, config(probe), cpu)

    return attach


def _attach_perf_event(
    program: int, probe: ProbeSpec, links: contextlib.ExitStack, event_type: int, config: int, cpu: int
) -> None:
    flags = _PERF_ATTR_DISABLED | (_PERF_ATTR_FREQUENCY if probe.frequency else 0)
    attr = perf_event_attr(
        type=event_type,
        size=ctypes.sizeof(perf_event_attr),
        config=config,
        sample_period=probe.frequency or probe.period,  # a union with sample_freq
        flags=flags,
    )
    perf_fd = libc.syscall(SYS_PERF_EVENT_OPEN, ctypes.byref(attr), -1, cpu, -1, _PERF_FLAG_FD_CLOEXEC)
    if perf_fd < 0:
        error = ctypes.get_errno()
        why = os.strerror(error)
        if event_type == PERF_TYPE_HARDWARE and error in (errno.ENOENT, errno.EOPNOTSUPP, errno.ENODEV):
            why = f"this machine has no hardware performance counters for it ({why})"
        raise UserError(f"cannot attach {probe.attach_point}: perf_event_open: {why}")
    with contextlib.ExitStack() as pending:
        pending.callback(os.close, perf_fd)
        link = lib.bpf_program__attach_perf_event(program, perf_fd)
        _register(link, probe, links)
        pending.pop_all()  # the perf link owns the fd now: bpf_link__destroy closes it


def online_cpus() -> list[int]:
    """The CPUs a per-CPU perf event goes on: /sys/devices/system/cpu/online, e.g. '0-3,6'."""
    with open("/sys/devices/system/cpu/online") as file:
        text = file.read().strip()
    cpus: list[int] = []
    for part in text.split(","):
        first, _, last = part.partition("-")
        cpus.extend(range(int(first), int(last or first) + 1))
    return cpus


# rawtracepoint


def _rawtracepoint_problem(probe: ProbeSpec) -> str | None:
    if len(probe.target) != 1 or not _TRACEPOINT_NAME.fullmatch(probe.target[0]):
        return f"invalid rawtracepoint target {':'.join(probe.target)!r}"
    return None


def _check_rawtracepoint(probe: ProbeSpec) -> None:
    if not tracefs.raw_tracepoint_exists(probe.target[0]):
        raise UserError(f"cannot attach {probe.attach_point}: no such tracepoint")


def _attach_rawtracepoint(program: int, probe: ProbeSpec, links: contextlib.ExitStack) -> None:
    _register(lib.bpf_program__attach_raw_tracepoint(program, probe.target[0].encode()), probe, links)


# fentry and fexit


def _fentry_problem(probe: ProbeSpec) -> str | None:
    if len(probe.target) != 2 or not _TRACEPOINT_NAME.fullmatch(probe.target[0]) or not _FUNCTION_NAME.fullmatch(
        probe.target[1]
    ):
        return f"invalid {probe.provider} target {':'.join(probe.target)!r}"
    return None


def _check_fentry(probe: ProbeSpec) -> None:
    """The function must be in the kernel's BTF (libbpf attaches by its BTF id): a function that
    is only a symbol (a syscall wrapper such as __x64_sys_read) or that does not exist is refused
    here, in one line, rather than failing the whole load."""
    module, function = probe.target
    vmlinux = lib.btf__load_vmlinux_btf()
    if not vmlinux or lib.libbpf_get_error(vmlinux):
        raise UserError(f"cannot attach {probe.attach_point}: this kernel has no BTF (/sys/kernel/btf/vmlinux)")
    try:
        btf = vmlinux if module == "vmlinux" else lib.btf__load_module_btf(module.encode(), vmlinux)
        if not btf or lib.libbpf_get_error(btf):
            raise UserError(f"cannot attach {probe.attach_point}: no BTF for kernel module {module}")
        found = lib.btf__find_by_name_kind(btf, function.encode(), BTF_KIND_FUNC) >= 0
        if btf != vmlinux:
            lib.btf__free(btf)
    finally:
        lib.btf__free(vmlinux)
    if not found:
        raise UserError(f"cannot attach {probe.attach_point}: no such kernel function with BTF")


def _attach_fentry(program: int, probe: ProbeSpec, links: contextlib.ExitStack) -> None:
    _register(lib.bpf_program__attach_trace(program), probe, links)


# uprobes


def _uprobe_problem(probe: ProbeSpec) -> str | None:
    if len(probe.target) != 2 or not probe.target[0] or not _PROBE_SYMBOL.fullmatch(probe.target[1]):
        return f"invalid {probe.provider} target {':'.join(probe.target)!r}"
    return None


def _check_uprobe(probe: ProbeSpec) -> None:
    from bpfrun import listing

    binary = binary_path(probe)
    symbol = probe.target[1] if probe.provider != USDT else ""
    function = symbol.partition("+")[0]
    if function and not function.startswith("0x") and "*" not in function:
        if function not in listing.elf_functions(binary):
            raise UserError(f"cannot attach {probe.attach_point}: no function {function!r} in {binary}")


def binary_path(probe: ProbeSpec) -> str:
    """The file a uprobe names: a path, or a library name (`libc`) found where ld.so looks."""
    binary = probe.target[0]
    found = find_binary(binary)
    if found is not None:
        return found
    if "/" in binary:
        raise UserError(f"cannot attach {probe.attach_point}: no such file: {binary}")
    raise UserError(f"cannot attach {probe.attach_point}: no library {binary!r} in {', '.join(LIBRARY_DIRECTORIES)}")


def _attach_uprobe(program: int, probe: ProbeSpec, links: contextlib.ExitStack) -> None:
    """At a function (libbpf finds it), at an offset into it, or at an address of the binary
    (which libbpf wants as an offset in the file)."""
    from bpfrun import listing

    binary = binary_path(probe)
    options = bpf_uprobe_opts(sz=ctypes.sizeof(bpf_uprobe_opts), retprobe=probe.provider == URETPROBE)
    options.bpf_cookie = probe_cookie(probe)
    symbol = probe.target[1]
    if symbol.startswith("0x"):
        offset = listing.file_offset(binary, int(symbol, 16))
        if offset is None:
            raise UserError(f"cannot attach {probe.attach_point}: {symbol} is not in a loaded segment of {binary}")
    else:  # found here, not by libbpf 1.1, which refuses a symbol of several versions (pthread_create)
        function, _, extra = symbol.partition("+")
        address = listing.function_address(binary, function)
        offset = listing.file_offset(binary, address + int(extra or 0)) if address is not None else None
        if offset is None:
            raise UserError(f"cannot attach {probe.attach_point}: no function {function!r} in {binary}")
    link = lib.bpf_program__attach_uprobe_opts(program, -1, binary.encode(), offset, ctypes.byref(options))
    _register(link, probe, links)


def _usdt_problem(probe: ProbeSpec) -> str | None:
    binary, *names = probe.target if len(probe.target) in (3, 4) else ("", "")
    if not binary or not names[1] or any(name and not _FUNCTION_NAME.fullmatch(name) for name in names[:2]):
        return f"invalid {probe.provider} target {':'.join(probe.target)!r}"
    return None


def _attach_usdt(program: int, probe: ProbeSpec, links: contextlib.ExitStack) -> None:
    """A uprobe at the site, with the kernel counting the probe's semaphore up while attached
    (the binary checks it before it fires the probe)."""
    site = _usdt_site(probe)
    options = bpf_uprobe_opts(sz=ctypes.sizeof(bpf_uprobe_opts), bpf_cookie=probe_cookie(probe))
    options.ref_ctr_offset = site.semaphore_offset
    link = lib.bpf_program__attach_uprobe_opts(program, -1, binary_path(probe).encode(), site.offset, ctypes.byref(options))
    _register(link, probe, links)


def _profile_problem(probe: ProbeSpec) -> str | None:
    if probe.target or not (0 < probe.period <= MAX_PERIOD_NS or 0 < probe.frequency <= 1_000_000_000):
        return "a profile probe needs a period or a frequency"
    return None


def _perf_problem(events: dict[str, int]) -> Callable[[ProbeSpec], str | None]:
    def problem(probe: ProbeSpec) -> str | None:
        if len(probe.target) != 1 or probe.target[0] not in events or not 0 < probe.period <= MAX_PERIOD_NS:
            return f"invalid {probe.provider} event {':'.join(probe.target)!r} every {probe.period}"
        return None

    return problem


def _signal_problem(probe: ProbeSpec) -> str | None:
    return None if probe.target == ("signal", "SIGUSR1") else "self probes are self:signal:SIGUSR1"


def _register(link: int | None, probe: ProbeSpec, links: contextlib.ExitStack) -> None:
    if not link:
        raise UserError(f"cannot attach {probe.attach_point}: {os.strerror(ctypes.get_errno())}")
    links.callback(lib.bpf_link__destroy, link)


PROVIDERS: dict[str, Provider] = {
    BEGIN: Provider(_no_target, _nothing, _nothing),
    END: Provider(_no_target, _nothing, _nothing),
    TRACEPOINT: Provider(_tracepoint_problem, _check_tracepoint, _attach_tracepoint),
    KPROBE: Provider(_kprobe_problem, _check_kprobe, _attach_kprobe),
    KRETPROBE: Provider(_kprobe_problem, _check_kprobe, _attach_kprobe),
    INTERVAL: Provider(_interval_problem, _nothing, _attach_interval),
    PROFILE: Provider(
        _profile_problem, _nothing, _attach_on_every_cpu(PERF_TYPE_SOFTWARE, lambda p: PERF_COUNT_SW_CPU_CLOCK)
    ),
    SOFTWARE: Provider(
        _perf_problem(SOFTWARE_EVENTS),
        _nothing,
        _attach_on_every_cpu(PERF_TYPE_SOFTWARE, lambda p: SOFTWARE_EVENTS[p.target[0]]),
    ),
    HARDWARE: Provider(
        _perf_problem(HARDWARE_EVENTS),
        _nothing,
        _attach_on_every_cpu(PERF_TYPE_HARDWARE, lambda p: HARDWARE_EVENTS[p.target[0]]),
    ),
    RAWTRACEPOINT: Provider(_rawtracepoint_problem, _check_rawtracepoint, _attach_rawtracepoint),
    UPROBE: Provider(_uprobe_problem, _check_uprobe, _attach_uprobe),
    URETPROBE: Provider(_uprobe_problem, _check_uprobe, _attach_uprobe),
    USDT: Provider(_usdt_problem, _check_uprobe, _attach_usdt),
    SIGNAL: Provider(_signal_problem, _nothing, _nothing),
    FENTRY: Provider(_fentry_problem, _check_fentry, _attach_fentry),
    FEXIT: Provider(_fentry_problem, _check_fentry, _attach_fentry),
}
