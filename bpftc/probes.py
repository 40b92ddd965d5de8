"""Probe providers, one definition each: the attach-point syntax and aliases, the ELF section of its
programs, and which context builtins its programs may read.

`describe(attach_point)` validates one attach point and returns a `ProbeTarget`, or an error
message worded as bpftrace words it. Nothing here needs the kernel: whether a tracepoint or a
function exists is found out when bpfrun attaches. bpfrun/attach.py holds the other half of each
provider (check, attach).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from common.schema import BEGIN, END, INTERVAL, KPROBE, KRETPROBE, TRACEPOINT

from bpftc.ast import AttachPoint

_U64_MAX = (1 << 64) - 1
MAX_PERIOD_NS = (1 << 63) - 1  # perf_event_attr.sample_period is a u64; keep it a positive i64
MAX_RATE_HZ = 1_000_000_000  # one run per nanosecond: the CPU clock's resolution


@dataclass(frozen=True, slots=True)
class ProbeTarget:
    provider: str  # canonical provider name
    target: tuple[str, ...]  # the parts after the provider, as bpfrun needs them
    section: str  # ELF section of the program
    name: str  # bpftrace's canonical name (the `probe` builtin): 'interval:ms:100'
    period: int = 0  # interval: nanoseconds


@dataclass(frozen=True, slots=True)
class Provider:
    name: str
    aliases: tuple[str, ...]
    describe: Callable[[str, tuple[str, ...]], ProbeTarget | str]  # (name, parts) → target or message
    context: tuple[str, ...] = ()  # context builtins it offers: 'args' (arg0..N), 'retval'


def _fixed_parts(count: int, section: str) -> Callable[[str, tuple[str, ...]], ProbeTarget | str]:
    """A provider whose attach point has exactly `count` non-empty parts, none with wildcards."""

    def describe(name: str, parts: tuple[str, ...]) -> ProbeTarget | str:
        if len(parts) != count or not all(parts):
            return f"{name} probe type requires {count} arguments, found {len(parts)}"
        if any("*" in part or "?" in part for part in parts):
            return f"wildcards in {name} probes are not supported yet"
        return ProbeTarget(name, parts, section.format(*parts), ":".join((name, *parts)))

    return describe


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


# BEGIN and END programs are run by bpfrun (BPF_PROG_TEST_RUN of a raw tracepoint program), not
# attached to anything, which is why their section names no tracepoint.
_PROVIDERS = (
    Provider(BEGIN, ("BEGIN",), _fixed_parts(0, "raw_tp")),
    Provider(END, ("END",), _fixed_parts(0, "raw_tp")),
    Provider(KPROBE, ("k",), _fixed_parts(1, "kprobe/{0}"), context=("args",)),
    Provider(KRETPROBE, ("kr",), _fixed_parts(1, "kretprobe/{0}"), context=("retval",)),
    Provider(TRACEPOINT, ("t",), _fixed_parts(2, "tracepoint/{0}/{1}")),
    Provider(INTERVAL, ("i",), _describe_interval),
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
