"""What a bundle needs to know when it starts: its positional parameters and named options
(getopt), the CPU count, the start time. Written into the BPF object's .rodata before it is loaded (common/schema.py, GLOBALS), so
one bundle serves every invocation.

Consumes the bundle's `globals` layout and the command line's arguments after BUNDLE; produces
the bytes of .rodata. Arguments are taken as bpftrace takes them: `--` only separates (an
argument that starts with '-' comes after it), an integer parameter may be written in decimal,
hex (0x10), octal (010), with `_` separators or as 1e3. A parameter the program does not get
reads as 0 (and "" as a string), as in bpftrace; one that is not an integer where the program
uses it as one is a `UserError`.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Sequence

from bpfrun.errors import UserError
from common import layout, schema
from common.layout import Layout

_INTEGER = re.compile(r"(?P<sign>-?)(?P<digits>0[xX][0-9a-fA-F_]+|0[0-7_]*|[1-9][0-9_]*)(?:e(?P<exponent>[0-9]+))?")


def split_arguments(arguments: Sequence[str]) -> tuple[list[str], dict[str, str | None]]:
    """The positional parameters and the named options (--NAME=VALUE or --NAME, after `--`):
    bpftrace's `bpftrace x.bt 9 -- --n=3`. The first `--` only separates."""
    values = list(arguments)
    if "--" not in values:
        return values, {}
    separator = values.index("--")
    positional, options = values[:separator], {}
    for value in values[separator + 1 :]:
        if value.startswith("--") and len(value) > 2:
            name, equals, text = value[2:].partition("=")
            options[name] = text if equals else None
        else:
            positional.append(value)
    return positional, options


def check_options(specs: Sequence[schema.OptionSpec], given: dict[str, str | None]) -> dict[str, int | str]:
    """Each option's value, from the command line or its default; a `UserError` for an option the
    program does not have or a value of the wrong kind (bpftrace's messages)."""
    known = {spec.name: spec for spec in specs}
    unknown = [name for name in given if name not in known]
    if unknown:
        expected = ", ".join(f"--{name}" for name in known) or "none"
        raise UserError(
            f"unexpected program command line options: {', '.join('--' + n for n in unknown)} "
            f"(expected program options: {expected})"
        )
    return {spec.name: _option_value(spec, given.get(spec.name, spec.default)) for spec in specs}


def _option_value(spec: schema.OptionSpec, text: str | None) -> int | str:
    shown = "true" if text is None else text  # a bare --NAME means true
    if spec.kind == "bool":
        if shown not in ("true", "false", "1", "0"):
            raise UserError(f"program command line option --{spec.name} expects a boolean (value: {shown})")
        return int(shown in ("true", "1"))
    if spec.kind == "string":
        return shown
    if text is None:
        raise UserError(f"program command line option --{spec.name} expects an integer (value: true)")
    try:
        return integer(text, 0)
    except UserError:
        raise UserError(f"program command line option --{spec.name} invalid integer (value: {text})") from None


def globals_data(
    spec: Layout,
    arguments: Sequence[str],
    ncpus: int,
    target_pid: int = 0,
    child_pid: int = 0,
    options: dict[str, int | str] | None = None,
    probes: Sequence[schema.ProbeSpec] = (),
) -> bytes:
    data = bytearray(spec.size)
    for field in spec.fields:
        if field.name in (schema.TARGET_PID, schema.CHILD_PID):
            value = target_pid if field.name == schema.TARGET_PID else child_pid
        elif field.name.startswith(schema.OPTION):
            value = (options or {})[field.name.removeprefix(schema.OPTION)]
        elif field.name.startswith(schema.USER_ADDRESS):
            value = user_address(field.name, probes)
        elif field.name.startswith(schema.PROBE_NAME_GLOBAL):
            value = probes[int(field.name.removeprefix(schema.PROBE_NAME_GLOBAL))].attach_point
        else:
            value = _value(field.name, arguments, ncpus)
        if field.layout.kind == layout.STRING:
            encoded = value.encode("utf-8", "surrogateescape")[: field.layout.size - 1]
            data[field.offset : field.offset + len(encoded)] = encoded
        else:
            data[field.offset : field.offset + 8] = (value & (1 << 64) - 1).to_bytes(8, "little")
    return bytes(data)


def _value(name: str, arguments: Sequence[str], ncpus: int) -> int | str:
    if name == schema.NCPUS:
        return ncpus
    if name == schema.START_NS:
        return time.clock_gettime_ns(time.CLOCK_MONOTONIC)  # the clock of bpf_ktime_get_ns
    if name == schema.ARGUMENT_COUNT:
        return len(arguments)
    if name.startswith(schema.KERNEL_ADDRESS):
        return kernel_address(name.removeprefix(schema.KERNEL_ADDRESS))
    if name in (schema.PIDNS_DEV, schema.PIDNS_INO):
        namespace = os.stat("/proc/self/ns/pid")
        return namespace.st_dev if name == schema.PIDNS_DEV else namespace.st_ino
    kind, index = _parameter(name)
    text = arguments[index - 1] if index <= len(arguments) else ""
    if kind == schema.STRING_ARGUMENT:
        return text
    return integer(text, index) if text else 0


def kernel_address(symbol: str) -> int:
    """kaddr("NAME"): the symbol's address in this host's /proc/kallsyms (real as root)."""
    from bpfrun.stacks import kernel_symbols

    try:
        for address, _, name in kernel_symbols():
            if name == symbol:
                return address
    except OSError as error:
        raise UserError(f"kaddr(\"{symbol}\"): cannot read /proc/kallsyms: {error.strerror}") from None
    raise UserError(f"kaddr(\"{symbol}\"): no kernel symbol of that name on this host")


def user_address(name: str, probes: Sequence[schema.ProbeSpec]) -> int:
    """uaddr("NAME") in probe N ("uaddr_N_NAME"): where NAME is in the probe's binary on this
    host, relative to the probe's own address (the program adds where the probe fired)."""
    from bpfrun.attach import binary_path
    from bpfrun.elf import Elf, ElfError

    index, _, symbol = name.removeprefix(schema.USER_ADDRESS).partition("_")
    probe = probes[int(index)]
    binary = binary_path(probe)
    try:
        with open(binary, "rb") as file:
            addresses = {found.name: found.value for found in Elf(file.read()).symbols() if found.value}
    except (OSError, ElfError) as error:
        raise UserError(f"uaddr(\"{symbol}\"): cannot read {binary}: {error}") from None
    if symbol not in addresses:
        raise UserError(f"uaddr(\"{symbol}\"): no symbol of that name in {binary}")
    target = probe.target[1]
    if target.startswith("0x"):
        here = int(target, 16)
    else:
        function, _, offset = target.partition("+")
        if function not in addresses:
            raise UserError(f"uaddr(\"{symbol}\"): no symbol {function!r} in {binary}")
        here = addresses[function] + int(offset or 0)
    return addresses[symbol] - here


def with_rates(probes: Sequence[schema.ProbeSpec], arguments: Sequence[str]) -> list[schema.ProbeSpec]:
    """The probes with each rate given as a positional parameter (`interval:ms:$1`) applied: the
    bundle holds the period or frequency of a count of 1."""
    from common.record import replace

    applied = []
    for probe in probes:
        if probe.rate_parameter:
            index = probe.rate_parameter
            text = arguments[index - 1] if index <= len(arguments) else ""
            count = integer(text, index) if text else 0
            if count <= 0:
                raise UserError(f"{probe.attach_point}: positional parameter ${index} must be a positive integer: {text!r}")
            if probe.rate_unit != "hz":
                changes = {"period": probe.period * count}
            elif probe.frequency:  # profile:hz:$N
                changes = {"frequency": count}
            else:  # interval:hz:$N
                changes = {"period": max(probe.period // count, 1)}
            name = probe.attach_point.rsplit(":", 1)[0] + f":{count}"
            probe = replace(probe, **changes, attach_point=name, rate_parameter=0, rate_unit="")
        applied.append(probe)
    return applied


def _parameter(name: str) -> tuple[str, int]:
    for kind in (schema.STRING_ARGUMENT, schema.INTEGER_ARGUMENT):
        if name.startswith(kind) and name[len(kind) :].isdigit():
            return kind, int(name[len(kind) :])
    raise AssertionError(f"verify.py let through the global {name!r}")


def integer(text: str, index: int) -> int:
    match = _INTEGER.fullmatch(text.strip())
    if match is None:
        raise UserError(f"positional parameter ${index} is not an integer: {text!r}")
    digits = match["digits"].replace("_", "")
    base = 16 if digits[:2].lower() == "0x" else 8 if len(digits) > 1 and digits[0] == "0" else 10
    value = int(digits[2:] if base == 16 else digits, base) * 10 ** int(match["exponent"] or 0)
    value = -value if match["sign"] else value
    if not -(1 << 63) <= value < 1 << 64:
        raise UserError(f"positional parameter ${index} does not fit in 64 bits: {text!r}")
    return value


def known_global(name: str, options: Sequence[schema.OptionSpec] = (), probe_count: int = 0) -> bool:
    """Whether bpfrun knows what to write into a global of this name (for verify.py)."""
    if name in (schema.NCPUS, schema.START_NS, schema.ARGUMENT_COUNT, schema.TARGET_PID, schema.CHILD_PID,
                schema.PIDNS_DEV, schema.PIDNS_INO):  # fmt: skip
        return True
    if name.startswith(schema.OPTION):
        return any(name == schema.OPTION + option.name for option in options)
    if name.startswith(schema.KERNEL_ADDRESS):
        return re.fullmatch(schema.FUNCTION_NAME, name.removeprefix(schema.KERNEL_ADDRESS)) is not None
    if name.startswith(schema.PROBE_NAME_GLOBAL):
        index = name.removeprefix(schema.PROBE_NAME_GLOBAL)
        return index.isdigit() and int(index) < probe_count
    if name.startswith(schema.USER_ADDRESS):
        index, _, symbol = name.removeprefix(schema.USER_ADDRESS).partition("_")
        return index.isdigit() and int(index) < probe_count and re.fullmatch(schema.FUNCTION_NAME, symbol) is not None
    return any(
        name.startswith(kind) and name[len(kind) :].isdigit()
        for kind in (schema.STRING_ARGUMENT, schema.INTEGER_ARGUMENT)
    )
