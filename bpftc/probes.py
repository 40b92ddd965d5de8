"""Probe providers, one definition each: the attach-point syntax and aliases, the ELF section of its
programs, and which context builtins its programs may read.

`describe(attach_point)` validates one attach point and returns a `ProbeTarget`, or an error
message worded as bpftrace words it. Nothing here needs the kernel: whether a tracepoint or a
function exists is found out when bpfrun attaches. bpfrun/attach.py holds the other half of each
provider (check, attach).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from bpftc.ast import AttachPoint
from common import schema
from common.record import record, replace
from common.schema import (
    BEGIN,
    END,
    EVENT_ALIASES,
    FENTRY,
    FEXIT,
    HARDWARE,
    HARDWARE_EVENTS,
    INTERVAL,
    KPROBE,
    KRETPROBE,
    PROFILE,
    RAWTRACEPOINT,
    SIGNAL,
    SOFTWARE,
    SOFTWARE_EVENTS,
    TRACEPOINT,
    UPROBE,
    URETPROBE,
    USDT,
)

_U64_MAX = (1 << 64) - 1
MAX_PERIOD_NS = (1 << 63) - 1  # perf_event_attr.sample_period is a u64; keep it a positive i64
MAX_RATE_HZ = 1_000_000_000  # one run per nanosecond: the CPU clock's resolution


@record(frozen=True, slots=True)
class ProbeTarget:
    provider: str  # canonical provider name
    target: tuple[str, ...]  # the parts after the provider, as bpfrun needs them
    section: str  # ELF section of the program
    name: str  # bpftrace's canonical name (the `probe` builtin): 'interval:ms:100'
    period: int = 0  # interval, profile: nanoseconds; software, hardware: events
    frequency: int = 0  # profile:hz:N
    wildcard: bool = False  # its parts have wildcards, expanded by bpfrun on the host
    rate_parameter: int = 0  # interval:ms:$1: the count is positional parameter $N (schema.ProbeSpec)
    rate_unit: str = ""


@record(frozen=True, slots=True)
class Provider:
    name: str
    aliases: tuple[str, ...]
    describe: Callable[[str, tuple[str, ...]], ProbeTarget | str]  # (name, parts) → target or message
    context: tuple[str, ...] = ()  # context builtins it offers: 'args' (arg0..N), 'retval'
    arguments: str = "registers"  # where arg0..N are: 'registers' (struct pt_regs) or 'array' (u64[])


def _fixed_parts(count: int, section: str) -> Callable[[str, tuple[str, ...]], ProbeTarget | str]:
    """A provider whose attach point has exactly `count` non-empty parts, none with wildcards:
    kernel function names (kprobes) when it has any."""

    def describe(name: str, parts: tuple[str, ...]) -> ProbeTarget | str:
        if len(parts) != count or not all(parts):
            return f"{name} probe type requires {count} arguments, found {len(parts)}"
        if any("*" in part or "?" in part for part in parts):
            return f"wildcards in {name} probes are not supported yet"
        problem = _bad_name(name, parts, schema.FUNCTION_NAME, "a kernel function")
        return problem or ProbeTarget(name, parts, section.format(*parts), ":".join((name, *parts)))

    return describe


def _bad_name(provider: str, parts: tuple[str, ...], pattern: str, what: str) -> str | None:
    """A message when one of `parts` is not made of the characters `what` is named with."""
    for part in parts:
        if not re.fullmatch(pattern, part):
            return f"'{part}' cannot name {what} in a {provider} probe"
    return None


_UNIT_NS = {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000}
_DURATION_NS = {"ns": 1, "us": 1_000, "ms": 1_000_000, "s": 1_000_000_000, "m": 60_000_000_000, "h": 3_600_000_000_000}


def _describe_interval(name: str, parts: tuple[str, ...]) -> ProbeTarget | str:
    """`interval:UNIT:N` (s, ms, us, hz) or, since 0.24, `interval:DURATION` (`interval:1s`)."""
    if len(parts) == 1:
        period = _duration(parts[0])
        if isinstance(period, str):
            return period
        unit, rate = "us", period // 1000
        if period % 1000:
            return f"interval duration {parts[0]} is not a whole number of microseconds"
    elif len(parts) == 2:
        unit, text = parts
        if _PARAMETER.fullmatch(text):  # given to bpfrun: described here for a count of 1
            described = _describe_interval(name, (unit, "1"))
            return described if isinstance(described, str) else _by_parameter(described, unit, text)
        rate = _rate(text)
        if isinstance(rate, str):
            return rate
        if unit == "hz":
            if rate > MAX_RATE_HZ:
                return f"Invalid rate of interval probe: {rate} Hz is faster than the maximum, {MAX_RATE_HZ} Hz"
            period = 1_000_000_000 // rate
        elif unit in _UNIT_NS:
            period = _UNIT_NS[unit] * rate
        else:
            return f"{unit} is not an accepted unit of time"
    else:
        return f"interval probe type requires 2 arguments, found {len(parts)}"
    if period > MAX_PERIOD_NS:
        return f"Invalid rate of interval probe: the period is longer than {MAX_PERIOD_NS} nanoseconds"
    return ProbeTarget(name, (), "perf_event", f"{name}:{unit}:{rate}", period)


_PARAMETER = re.compile(r"\$[1-9][0-9]{0,2}")


def _by_parameter(target: ProbeTarget, unit: str, text: str) -> ProbeTarget:
    """`interval:ms:$1`: bpfrun multiplies the period by $1 (a period per second divides it, a
    profile's frequency becomes it) when it starts: one bundle for every rate."""
    name = target.name.rsplit(":", 1)[0] + ":" + text
    return replace(target, name=name, rate_parameter=int(text[1:]), rate_unit=unit)


def _rate(text: str) -> int | str:
    if not text.isdigit():
        return f"Invalid rate of interval probe: invalid integer: {text}"
    rate = int(text)
    if rate > _U64_MAX:
        return f"Invalid rate of interval probe: overflow error, maximum value is {_U64_MAX}: {text}"
    if rate == 0:
        return "interval frequency should be a positive integer"
    return rate


def _duration(text: str) -> int | str:
    """`1s`, `100ms`... or a bare number of nanoseconds."""
    digits = text.rstrip("abcdefghijklmnopqrstuvwxyz")
    unit = text[len(digits) :] or "ns"
    rate = _rate(digits)
    if isinstance(rate, str):
        return f"Invalid rate of interval probe: invalid integer: {text}"
    if unit not in _DURATION_NS:
        return f"{unit} is not an accepted unit of time"
    return rate * _DURATION_NS[unit]


def _describe_profile(name: str, parts: tuple[str, ...]) -> ProbeTarget | str:
    """`profile:hz:N`, `profile:s|ms|us:N`: on every CPU, N times a second or every N units."""
    if len(parts) == 1:
        period = _duration(parts[0])
        if isinstance(period, str):
            return period.replace("interval", "profile")
        if period < 1000:
            return f"Invalid rate of profile probe. Minimum is 1000 or 1us. Found: {period} nanoseconds"
        return ProbeTarget(name, (), "perf_event", f"{name}:{parts[0]}", period)
    if len(parts) != 2:
        return f"profile probe type requires 2 arguments, found {len(parts)}"
    unit, text = parts
    if _PARAMETER.fullmatch(text):  # given to bpfrun: described here for a count of 1
        described = _describe_profile(name, (unit, "1"))
        return described if isinstance(described, str) else _by_parameter(described, unit, text)
    rate = _rate(text)
    if isinstance(rate, str):
        return rate.replace("interval", "profile")
    if unit == "hz":
        if rate > MAX_RATE_HZ:
            return f"Invalid rate of profile probe: {rate} Hz is faster than the maximum, {MAX_RATE_HZ} Hz"
        return ProbeTarget(name, (), "perf_event", f"{name}:{unit}:{rate}", frequency=rate)
    if unit not in _UNIT_NS:
        return f"{unit} is not an accepted unit of time"
    period = _UNIT_NS[unit] * rate
    if period > MAX_PERIOD_NS:
        return f"Invalid rate of profile probe: the period is longer than {MAX_PERIOD_NS} nanoseconds"
    return ProbeTarget(name, (), "perf_event", f"{name}:{unit}:{rate}", period)


# How many events between two runs when a software or hardware probe does not say.
_DEFAULT_COUNTS = {
    "cpu-clock": 1_000_000, "task-clock": 1_000_000, "page-faults": 100, "context-switches": 1000,
    "minor-faults": 100,
}  # fmt: skip


def _perf_events(events: dict[str, int], default: int) -> Callable[[str, tuple[str, ...]], ProbeTarget | str]:
    def describe(name: str, parts: tuple[str, ...]) -> ProbeTarget | str:
        if not 1 <= len(parts) <= 2:
            return f"{name} probe type requires 2 arguments, found {len(parts)}"
        event = EVENT_ALIASES.get(parts[0], parts[0])
        if event not in events:
            return f"Unknown {name} event: {parts[0]}"
        count = _DEFAULT_COUNTS.get(event, default) if len(parts) == 1 else _rate(parts[1])
        if isinstance(count, str):
            return count.replace("interval", name)
        if count > MAX_PERIOD_NS:
            return f"{name} event count is too large: {count}"
        written = ":".join((name, event, *parts[1:]))
        return ProbeTarget(name, (event,), "perf_event", written, count)

    return describe


def _module_and_name(name: str, parts: tuple[str, ...]) -> tuple[str, str] | str:
    """(MODULE, NAME) of `PROVIDER:NAME` or `PROVIDER:MODULE:NAME`, the module 'vmlinux' when left
    out (bpftrace's probe name always has it), or a message."""
    if len(parts) not in (1, 2) or not all(parts):
        return f"{name} probe type requires 1 or 2 arguments, found {len(parts)}"
    if any("*" in part for part in parts):
        return f"wildcards in {name} probes are not supported yet"
    module, target = parts if len(parts) == 2 else ("vmlinux", parts[0])
    return _bad_name(name, (module,), schema.TRACEPOINT_NAME, "a kernel module") or (module, target)


def _describe_rawtracepoint(name: str, parts: tuple[str, ...]) -> ProbeTarget | str:
    """`rawtracepoint:[MODULE:]NAME`."""
    named = _module_and_name(name, parts)
    if isinstance(named, str):
        return named
    module, event = named
    problem = _bad_name(name, (event,), schema.TRACEPOINT_NAME, "a raw tracepoint")
    return problem or ProbeTarget(name, (event,), f"raw_tp/{event}", f"{name}:{module}:{event}")


def _describe_uprobe(name: str, parts: tuple[str, ...]) -> ProbeTarget | str:
    """`uprobe:BINARY:FUNCTION`: BINARY a path or a library name (`libc`), found on the host
    bpfrun runs on; FUNCTION a symbol of it (wildcards `*` allowed), `FUNCTION+OFFSET`, or an
    address in the binary (`0x4a3b0`)."""
    if len(parts) != 2 or not all(parts):
        return f"{name} probe type requires 2 arguments, found {len(parts)}"
    if "*" in parts[0]:
        return f"wildcards in the binary of {name} probes are not supported yet"
    if "*" in parts[1] and "+" in parts[1]:
        return f"{name}: an offset cannot go with a wildcard"
    problem = _bad_name(name, parts[1:], schema.PROBE_SYMBOL, "a function, function+offset or address")
    wildcard = "*" in parts[1]
    return problem or ProbeTarget(name, parts, "uprobe", ":".join((name, *parts)), wildcard=wildcard)


def _describe_usdt(name: str, parts: tuple[str, ...]) -> ProbeTarget | str:
    """`usdt:BINARY:[PROVIDER:]NAME`: BINARY a path or a library name, read by bpfrun on the host
    for the probe's sites (its .note.stapsdt); without PROVIDER, any provider's NAME."""
    if len(parts) not in (2, 3) or not all(parts):
        return f"{name} probe type requires 2 or 3 arguments, found {len(parts)}"
    if any("*" in part for part in parts):
        return f"wildcards in {name} probes are not supported yet"
    binary, *rest = parts
    provider, probe = rest if len(rest) == 2 else ("", rest[0])
    problem = _bad_name(name, tuple(rest), schema.FUNCTION_NAME, "a USDT provider or probe")
    return problem or ProbeTarget(name, (binary, provider, probe), "uprobe", ":".join((name, *parts)))


def _describe_kprobe(name: str, parts: tuple[str, ...]) -> ProbeTarget | str:
    """`kprobe:[MODULE:]FUNCTION`, FUNCTION with wildcards or `+OFFSET`."""
    if len(parts) not in (1, 2) or not all(parts):
        return f"{name} probe type requires 1 or 2 arguments, found {len(parts)}"
    if len(parts) == 2:
        problem = _bad_name(name, parts[:1], schema.TRACEPOINT_PATTERN, "a kernel module")
        if problem:
            return problem
    function = parts[-1]
    if function.startswith("0x") or ("*" in function and "+" in function):
        return f"{name}: give a function, with wildcards or with +OFFSET"
    if name == KRETPROBE and "+" in function:
        return "Offset not allowed for kretprobe"
    problem = _bad_name(name, (function,), schema.PROBE_SYMBOL, "a kernel function")
    wildcard = any("*" in part for part in parts)
    section = "kretprobe" if name == KRETPROBE else "kprobe"
    return problem or ProbeTarget(name, parts, section, ":".join((name, *parts)), wildcard=wildcard)


def _describe_fentry(name: str, parts: tuple[str, ...]) -> ProbeTarget | str:
    """`fentry:[MODULE:]FUNCTION`; libbpf finds the function's BTF when bpfrun loads the bundle."""
    named = _module_and_name(name, parts)
    if isinstance(named, str):
        return named
    module, function = named
    problem = _bad_name(name, (function,), schema.FUNCTION_NAME, "a kernel function")
    if problem:
        return problem
    return ProbeTarget(name, (module, function), f"{name}/{function}", f"{name}:{module}:{function}")


def _describe_signal(name: str, parts: tuple[str, ...]) -> ProbeTarget | str:
    """`self:signal:SIGUSR1`: run when bpfrun receives the signal (bpftrace allows SIGUSR1 only)."""
    if parts != ("signal", "SIGUSR1"):
        return "self probes are self:signal:SIGUSR1"
    return ProbeTarget(name, parts, "raw_tp", "self:signal:SIGUSR1")


def _describe_tracepoint(name: str, parts: tuple[str, ...]) -> ProbeTarget | str:
    """`tracepoint:CATEGORY:NAME`; wildcards (`sys_enter_*`) are expanded by bpfrun on the host,
    which attaches the one program to each tracepoint that matches."""
    if len(parts) != 2 or not all(parts):
        return f"{name} probe type requires 2 arguments, found {len(parts)}"
    written = ":".join((name, *parts))
    problem = _bad_name(name, parts, schema.TRACEPOINT_PATTERN, "a tracepoint")
    if problem:
        return problem
    if any("*" in part for part in parts):
        return ProbeTarget(name, parts, "tracepoint", written, wildcard=True)
    return ProbeTarget(name, parts, "tracepoint/{0}/{1}".format(*parts), written)


# BEGIN and END programs are run by bpfrun (BPF_PROG_TEST_RUN of a raw tracepoint program), not
# attached to anything, which is why their section names no tracepoint.
_PROVIDERS = (
    Provider(BEGIN, ("BEGIN",), _fixed_parts(0, "raw_tp")),
    Provider(END, ("END",), _fixed_parts(0, "raw_tp")),
    Provider(KPROBE, ("k",), _describe_kprobe, context=("args",)),
    Provider(KRETPROBE, ("kr",), _describe_kprobe, context=("retval",)),
    Provider(TRACEPOINT, ("t",), _describe_tracepoint),
    Provider(RAWTRACEPOINT, ("rt",), _describe_rawtracepoint, context=("args",), arguments="array"),
    Provider(UPROBE, ("u",), _describe_uprobe, context=("args",)),
    Provider(URETPROBE, ("ur",), _describe_uprobe, context=("retval",)),
    Provider(USDT, ("U",), _describe_usdt, context=("args",), arguments="usdt"),
    # fentry/fexit: the context is the function's arguments as u64s (fexit's return value after them)
    Provider(FENTRY, ("f", "kfunc"), _describe_fentry, context=("args",), arguments="array"),
    Provider(FEXIT, ("fr", "kretfunc"), _describe_fentry, context=("args", "retval"), arguments="array"),
    Provider(PROFILE, ("p",), _describe_profile),
    Provider(INTERVAL, ("i",), _describe_interval),
    Provider(SOFTWARE, ("s",), _perf_events(SOFTWARE_EVENTS, 1)),
    Provider(HARDWARE, ("h",), _perf_events(HARDWARE_EVENTS, 1_000_000)),
    Provider(SIGNAL, (), _describe_signal),
)
PROVIDERS: dict[str, Provider] = {name: p for p in _PROVIDERS for name in (p.name, *p.aliases)}


def provider_of(attach_point: AttachPoint) -> Provider | None:
    """The provider an attach point names; `begin` and `BEGIN` alike (providers are case-insensitive
    in bpftrace 0.24+ for begin and end)."""
    return PROVIDERS.get(attach_point.provider) or PROVIDERS.get(attach_point.provider.lower())


def describe(attach_point: AttachPoint) -> ProbeTarget | str:
    """The validated target of `attach_point`, or an error message."""
    provider = provider_of(attach_point)
    if provider is None:
        return f"Invalid probe type: {attach_point.provider}"
    return provider.describe(provider.name, attach_point.parts)
