"""Attach points: which providers exist, what their parts mean, and how each becomes a program.

`describe(attach_point)` validates one attach point and returns a `ProbeTarget`, or an error
message. Nothing here needs the kernel: whether a tracepoint or function exists is found out when
bpfrun attaches.
"""

from __future__ import annotations

from dataclasses import dataclass

from common.schema import BEGIN, END, INTERVAL, KPROBE, KRETPROBE, TRACEPOINT

from bpftc.ast import AttachPoint


@dataclass(frozen=True, slots=True)
class Provider:
    name: str
    parts: int  # how many parts after the provider
    section: str  # ELF section of its programs; '{0}', '{1}' stand for the parts


# BEGIN and END programs are run by bpfrun (BPF_PROG_TEST_RUN of a raw tracepoint program), not
# attached to anything, which is why their section names no tracepoint.
PROVIDERS: dict[str, Provider] = {
    BEGIN: Provider(BEGIN, 0, "raw_tp"),
    END: Provider(END, 0, "raw_tp"),
    KPROBE: Provider(KPROBE, 1, "kprobe/{0}"),
    KRETPROBE: Provider(KRETPROBE, 1, "kretprobe/{0}"),
    TRACEPOINT: Provider(TRACEPOINT, 2, "tracepoint/{0}/{1}"),
    INTERVAL: Provider(INTERVAL, 2, "perf_event"),
}
ALIASES = {"k": KPROBE, "kr": KRETPROBE, "t": TRACEPOINT, "i": INTERVAL}

_NANOSECONDS_PER_UNIT = {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000}


@dataclass(frozen=True, slots=True)
class ProbeTarget:
    provider: str
    target: tuple[str, ...]
    section: str
    period_ns: int = 0

    @property
    def attach_point(self) -> str:
        return ":".join((self.provider, *self.target))


def describe(attach_point: AttachPoint) -> ProbeTarget | str:
    """The validated target of `attach_point`, or an error message."""
    name = ALIASES.get(attach_point.provider, attach_point.provider)
    provider = PROVIDERS.get(name)
    if provider is None:
        return f"Invalid probe type: {attach_point.provider}"
    parts = attach_point.parts
    if len(parts) != provider.parts or not all(parts):
        if provider.parts == 0:
            return f"{name} probes take no arguments"
        if name == INTERVAL and len(parts) == 1:
            return f"Invalid rate of interval probe: invalid integer: {parts[0]}"
        return f"{name} probe type requires {provider.parts} arguments, found {len(parts)}"
    period_ns = 0
    if name == INTERVAL:
        period = _interval_period(parts[0], parts[1])
        if isinstance(period, str):
            return period
        period_ns = period
    if name != INTERVAL and any("*" in part for part in parts):
        return f"wildcards are not supported yet: {attach_point.text}"
    return ProbeTarget(name, parts, provider.section.format(*parts), period_ns)


def _interval_period(unit: str, rate: str) -> int | str:
    if not rate.isdigit() or int(rate) == 0:
        return f"Invalid rate of interval probe: invalid integer: {rate}"
    if unit == "hz":
        return 1_000_000_000 // int(rate)
    if unit not in _NANOSECONDS_PER_UNIT:
        return f"{unit} is not an accepted unit of time"
    return _NANOSECONDS_PER_UNIT[unit] * int(rate)
