"""Fuzzing the loader with truncated, mutated and hand-crafted bundles (hypothesis).

bpfrun runs as root on a file that came from elsewhere; tests/test_fuzz.py fuzzes the compiler,
this file the loader. The property, for every input: bpfrun's checks (common/bundle.py's read,
verify.py, verify_object.py) either accept the bundle or refuse it with `BundleError` or
`UserError`, one line, and raise nothing else; an object that passes them is opened by libbpf in a
child process first (load.py), so that a crash of libbpf's parser is one line too; and bpfrun
itself, run on such bundles, exits with a status (never killed by a signal), prints no traceback
and no `BUG:`, prints exactly its one-line refusal when the checks refuse, and leaves no program
of the bundle loaded.

The inputs, about 2,000 per run, from real bundles bpftc compiles at the start (maps of every
aggregate, printf, strings, a tracepoint, an interval, kernel struct fields through CO-RE):

- truncations at every length, and raw byte mutations anywhere (the digest then fails);
- header fields set to other values, with the digest recomputed or not;
- the metadata's bytes mutated, and its decoded values replaced (names, sizes, kinds, layouts,
  events), re-encoded with a valid digest;
- the ELF's bytes mutated (bits, bytes, 4- and 8-byte integers, at headers, section headers and
  anywhere), with a valid digest: these reach verify_object.py and libbpf;
- metadata and requirements made of arbitrary msgpack values in a valid header;
- a sample of the ELF and metadata mutations run through bpfrun as a process, as root.

Runs are derandomized (the same inputs on every machine) and take well under a minute.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from functools import cache
from pathlib import Path

import msgpack
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from bpfrun.errors import UserError
from bpfrun.verify import verify
from bpfrun.verify_object import verify_object
from common import bundle
from common.bundle import Bundle, BundleError
from tests.bpfrun_run import BPFTC, bpfrun_command, needs_bpf
from tests.bundle_bytes import HEADER_FIELDS, section, with_header, with_section

SCRIPTS = (
    "BEGIN { @c = count(); @s = sum(5); @m = max(3); @a = avg(2); @h = hist(100); @l = lhist(5, 0, 10, 1);"
    ' @k["key", 1] = 7; printf("%d %s %x\\n", 1, "two", 3); exit(); }',
    "tracepoint:syscalls:sys_enter_getpid { @[comm] = count(); }"
    ' interval:ms:20 { @t = curtask->pid; print(@t); time("%H\\n"); exit(); }',
    'BEGIN { @x = (1, "a"); $s = str(curtask->comm); printf("%s\\n", $s); exit(); } END { clear(@x); }',
)

IN_PROCESS_EXAMPLES = 250  # per strategy below; each is a few milliseconds
END_TO_END_EXAMPLES = 60  # each runs bpfrun: a tenth to half a second


class Case(bytes):
    """A bundle's bytes, shown in a failure report by how they were made, not as 10 kB of bytes."""

    how: str = ""

    def __repr__(self) -> str:
        return f"<{len(self)}-byte bundle: {self.how}>"


def case(data: bytes, how: str) -> Case:
    made = Case(data)
    made.how = how
    return made


def fuzz_settings(examples: int):
    return settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        print_blob=True,
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
    )


@cache
def seeds() -> tuple[bytes, ...]:
    """The real bundles the inputs start from (compiled once per test run)."""
    compiled = []
    for script in SCRIPTS:
        result = subprocess.run([BPFTC, "-e", script, "-o", "-"], capture_output=True)
        assert result.returncode == 0, result.stderr.decode()
        compiled.append(result.stdout)
    return tuple(compiled)


needs_bpftc = pytest.mark.skipif(not BPFTC.exists(), reason="needs bpftc in the venv to build the seed bundles")


# The property, in this process


def loader_checks(data: bytes) -> Bundle | None:
    """What bpfrun does before it opens anything with libbpf: None when it refuses the bundle,
    which must be with one line; any other exception fails the test (a traceback for the user)."""
    try:
        checked = bundle.read(data)
        verify(checked.resources, allow_unsafe=True)
        verify_object(checked.resources, checked.elf)
    except (BundleError, UserError) as error:
        message = str(error)
        assert message and "\n" not in message, repr(message)
        return None
    return checked


def check_refused(data: bytes) -> None:
    assert loader_checks(data) is None, "accepted"


def check_open_in_child(checked: Bundle | None) -> None:
    """An object that passed the checks goes to libbpf in a child: a crash there is a UserError."""
    if checked is None:
        return
    from bpfrun.load import _open_in_child

    try:
        _open_in_child(checked.elf)
    except UserError as error:
        assert "\n" not in str(error)


# Strategies


seed_index = st.integers(0, len(SCRIPTS) - 1)
INTERESTING_INTS = (
    0,
    1,
    2,
    7,
    8,
    0x7F,
    0x80,
    0xFF,
    0x7FFF,
    0xFFFF,
    0x7FFFFFFF,
    0x80000000,
    0xFFFFFFFF,
    2**63,
    2**64 - 1,
)


@st.composite
def byte_mutations(draw, data: bytes, hot_spots: tuple[tuple[int, int], ...] = ()) -> bytes:
    """`data` with 1 to 8 changes: bit flips, bytes, 4- and 8-byte integers; positions anywhere,
    or (when given) within the (start, end) ranges most likely to matter."""
    result, changes = bytearray(data), []
    for _ in range(draw(st.integers(1, 8))):
        if hot_spots and draw(st.booleans()):
            start, end = draw(st.sampled_from(hot_spots))
            position = draw(st.integers(start, max(start, min(end, len(result)) - 1)))
        else:
            position = draw(st.integers(0, len(result) - 1))
        kind = draw(st.integers(0, 3))
        if kind == 0:
            bit = draw(st.integers(0, 7))
            result[position] ^= 1 << bit
            changes.append(f"bit {bit} of {position} flipped")
        elif kind == 1:
            result[position] = draw(st.sampled_from((0, 1, 0x7F, 0x80, 0xFF)) | st.integers(0, 255))
            changes.append(f"byte {position} = {result[position]:#x}")
        else:
            width = 4 if kind == 2 else 8
            value = draw(st.sampled_from(INTERESTING_INTS) | st.integers(0, 2 ** (8 * width) - 1)) % 2 ** (8 * width)
            result[position : position + width] = value.to_bytes(width, "little")
            changes.append(f"{width} bytes at {position} = {value:#x}")
    return case(bytes(result[: len(data)]), ", ".join(changes))


def elf_hot_spots(elf: bytes) -> tuple[tuple[int, int], ...]:
    """The ELF header, the section header table, and each section's bytes."""
    from bpfrun.elf import Elf

    parsed = Elf(elf)
    table = int.from_bytes(elf[0x28:0x30], "little")
    spots = [(0, 64), (table, table + 64 * len(parsed.sections))]
    spots += [(s.offset, s.offset + s.size) for s in parsed.sections if s.size and s.kind != 8]  # 8: NOBITS
    return tuple(spots)


@st.composite
def mutated_elf_bundles(draw) -> bytes:
    index = draw(seed_index)
    original = bundle.read(seeds()[index])
    elf = draw(byte_mutations(original.elf, elf_hot_spots(original.elf)))
    # bundle.write computes a valid digest: the checks behind it run
    return case(bundle.write(Bundle(original.resources, elf)), f"seed {index}, ELF: {elf.how}")


msgpack_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.text(max_size=20) | st.binary(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=20,
)
ODD_VALUES = st.sampled_from(
    (None, True, 0, -1, 3, 2**32, 2**64 - 1, "", "x", "@a\n@b", "a\0b", "../..", "hash", "percpu_array", "count",
     "string", "tuple", [], [1], {}, {"kind": "printf"}, "%d%d%s", b"\x7fELF")
)  # fmt: skip


def replace_somewhere(draw, value, depth: int = 0):
    """`value` (decoded msgpack) with one element somewhere inside replaced."""
    if isinstance(value, dict) and value and depth < 8 and draw(st.integers(0, 4)):
        key = draw(st.sampled_from(sorted(value, key=str)))
        return {**value, key: replace_somewhere(draw, value[key], depth + 1)}
    if isinstance(value, list) and value and depth < 8 and draw(st.integers(0, 4)):
        index = draw(st.integers(0, len(value) - 1))
        return [*value[:index], replace_somewhere(draw, value[index], depth + 1), *value[index + 1 :]]
    return draw(ODD_VALUES | msgpack_values)


@st.composite
def metadata_value_bundles(draw) -> bytes:
    index = draw(seed_index)
    data = seeds()[index]
    name = draw(st.sampled_from(("metadata", "requirements")))
    decoded = msgpack.unpackb(section(data, name))
    for _ in range(draw(st.integers(1, 3))):
        decoded = replace_somewhere(draw, decoded)
    changed = with_section(data, name, msgpack.packb(decoded, use_bin_type=True))
    return case(changed, f"seed {index}, {name} = {decoded!r:.2000}")


@st.composite
def metadata_byte_bundles(draw) -> bytes:
    index = draw(seed_index)
    data = seeds()[index]
    name = draw(st.sampled_from(bundle.SECTIONS))
    content = section(data, name)
    mutated = draw(byte_mutations(content)) if content else case(b"", "empty")
    return case(with_section(data, name, mutated), f"seed {index}, {name}: {mutated.how}")


# In-process tests


@needs_bpftc
@fuzz_settings(IN_PROCESS_EXAMPLES)
@given(seed_index, st.data())
def test_truncated_bundles(index: int, data) -> None:
    original = seeds()[index]
    check_refused(original[: data.draw(st.integers(0, len(original) - 1))])


@needs_bpftc
@fuzz_settings(IN_PROCESS_EXAMPLES)
@given(seed_index, st.data())
def test_bytes_mutated_anywhere(index: int, data) -> None:
    original = seeds()[index]
    mutated = data.draw(byte_mutations(original))
    if mutated != original:
        check_refused(mutated)


@needs_bpftc
@fuzz_settings(IN_PROCESS_EXAMPLES)
@given(seed_index, st.data())
def test_header_fields(index: int, data) -> None:
    original = seeds()[index]
    field = data.draw(st.sampled_from(HEADER_FIELDS[1:-1]))
    value = data.draw(st.binary(min_size=32, max_size=32) if field == "compiler" else st.integers(0, 0xFFFF))
    if field in bundle.SECTIONS:
        value = data.draw(st.sampled_from(INTERESTING_INTS).map(lambda n: n & 0xFFFFFFFF) | st.integers(0, 4096))
    fix_digest = data.draw(st.booleans())
    mutated = with_header(original, **{field: value}) if fix_digest else with_header(
        original, **{field: value, "sha256": bundle.read_header(original).sha256}
    )  # fmt: skip
    checked = loader_checks(mutated)
    assert checked is None or fix_digest or mutated == original


@needs_bpftc
@fuzz_settings(IN_PROCESS_EXAMPLES)
@given(metadata_value_bundles())
def test_metadata_values_replaced(data: bytes) -> None:
    loader_checks(data)


@needs_bpftc
@fuzz_settings(IN_PROCESS_EXAMPLES)
@given(metadata_byte_bundles())
def test_section_bytes_mutated_with_a_valid_digest(data: bytes) -> None:
    loader_checks(data)


@needs_bpftc
@fuzz_settings(IN_PROCESS_EXAMPLES * 2)
@given(mutated_elf_bundles())
def test_elf_mutated_with_a_valid_digest(data: bytes) -> None:
    check_open_in_child(loader_checks(data))


@needs_bpftc
@fuzz_settings(IN_PROCESS_EXAMPLES)
@given(seed_index, msgpack_values, st.sampled_from(("metadata", "requirements")))
def test_hand_crafted_sections(index: int, value, name: str) -> None:
    check_refused(with_section(seeds()[index], name, msgpack.packb(value, use_bin_type=True)))


# bpfrun itself, as a process


def loaded_programs(names: set[str]) -> set[int]:
    """Ids of loaded programs with one of these names (the kernel keeps 15 characters): other
    tests may be loading programs meanwhile."""
    listing = subprocess.run(["bpftool", "-j", "prog", "show"], capture_output=True, text=True, check=True)
    return {program["id"] for program in json.loads(listing.stdout or "[]") if program.get("name") in names}


@cache
def program_names() -> set[str]:
    return {probe.program[:15] for data in seeds() for probe in bundle.read(data).resources.probes}


def run_bpfrun(path: Path) -> subprocess.CompletedProcess:
    """bpfrun on `path`; SIGINT after two seconds (a mutated program may no longer call exit())."""
    process = subprocess.Popen(bpfrun_command("-q", path), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        stdout, stderr = process.communicate(timeout=2)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=20)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


@needs_bpf
@fuzz_settings(END_TO_END_EXAMPLES)
@given(mutated_elf_bundles() | metadata_value_bundles())
def test_bpfrun_on_mutated_bundles(tmp_path_factory: pytest.TempPathFactory, data: bytes) -> None:
    import time

    path = tmp_path_factory.mktemp("fuzz") / "mutated.bpfb"
    path.write_bytes(data)
    before = loaded_programs(program_names())
    refused = loader_checks(data) is None
    result = run_bpfrun(path)
    assert result.returncode >= 0, f"bpfrun was killed by signal {-result.returncode}: {result.stderr}"
    assert "Traceback" not in result.stderr and "BUG:" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("bpfrun: ERROR: ")]
    assert len(errors) <= 1 and (not errors or result.stderr.endswith(errors[0] + "\n")), result.stderr
    if refused:
        assert result.returncode == 1 and len(errors) == 1 and result.stderr == errors[0] + "\n", result.stderr
    deadline = time.monotonic() + 5  # the kernel frees programs a little after their last fd closes
    while (left := loaded_programs(program_names()) - before) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not left, f"programs {left} still loaded"


# The crash the issue saw, kept as a fixed case: a struct member's type id in .BTF beyond the last
# type makes libbpf 1.1's bpf_object__open_mem read out of bounds (SIGSEGV). bpfrun's checks cannot
# see it; the child process that opens the object first crashes instead of bpfrun.


@needs_bpf
def test_an_object_that_crashes_libbpfs_parser_is_one_line(tmp_path: Path) -> None:
    from bpfrun.elf import Elf
    from common import btf

    original = bundle.read(seeds()[0])
    elf = bytearray(original.elf)
    btf_section = next(s for s in Elf(original.elf).sections if s.name == ".BTF")
    types = btf.Btf(bytes(elf[btf_section.offset : btf_section.offset + btf_section.size]))
    struct_id = next(
        i for i in range(1, len(types.record_starts)) if types.type(i).kind == btf.STRUCT and types.type(i).members
    )
    member_type = btf_section.offset + types.record_offset(struct_id) + 12 + 4  # the first member's type id
    elf[member_type : member_type + 4] = (0x7FFFFFFF).to_bytes(4, "little")
    path = tmp_path / "crash.bpfb"
    path.write_bytes(bundle.write(Bundle(original.resources, bytes(elf))))
    assert loader_checks(path.read_bytes()) is not None  # the Python checks do not see this
    # Even with Python's fault handler on, which would print a stack dump from the crashing child.
    environment = {**os.environ, "PYTHONFAULTHANDLER": "1"}
    result = subprocess.run(bpfrun_command("-q", path), capture_output=True, text=True, env=environment, timeout=20)
    assert (result.returncode, result.stderr) == (
        1,
        "bpfrun: ERROR: bundle's BPF object crashed libbpf's parser in a child process (SIGSEGV); nothing was loaded\n",
    )
