"""bpftc/dwarf.py: the parameters of functions in binaries gcc builds here (-O0 and -O2, DWARF 4
and 5, compressed or not, executables and shared libraries, debug info in a separate file), and
damaged files, which end in DwarfError and nothing else.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bpftc import dwarf
from bpftc.dwarf import CType, DwarfError, Parameter, function_parameters

GCC = shutil.which("gcc")
needs_gcc = pytest.mark.skipif(GCC is None, reason="gcc is not installed")
CHAR_SIGNED = platform.machine() not in ("aarch64", "arm64", "armv7l", "ppc64le", "s390x")

PROGRAM = r"""
#include <stdbool.h>
#include <stdio.h>

struct point { int x; int y; };
typedef int count_t;
enum color { RED, GREEN, BLUE };

__attribute__((noinline)) int take_all(int number, unsigned long size, char *buffer, const char *text,
                                       struct point *where, count_t count, enum color color, bool flag,
                                       double ratio)
{
    return number + (int)size + buffer[0] + text[0] + where->x + count + color + flag + (int)ratio;
}

static __attribute__((noinline)) long helper(long value, short small)
{
    return value * small + printf("%ld\n", value);
}

int no_parameters(void) { return 7; }

int real_name(int first) { return first + 1; }
int alias_name(int) __attribute__((alias("real_name")));

int main(int argc, char **argv)
{
    struct point where = { argc, argc };
    return take_all(argc, argc, argv[0], argv[0], &where, argc, GREEN, argc > 1, argc) + helper(argc, 2)
           + no_parameters() + alias_name(argc);
}
"""

LIBRARY = r"""
struct entry;
__attribute__((visibility("default"))) int lookup(const char *key, unsigned int flags, struct entry **found,
                                                  void *context)
{
    *found = 0;
    return key[0] + (int)flags + (context != 0);
}
"""

VARIANTS = [
    pytest.param([optimization, version, *compression], id=f"{optimization}{version}{''.join(compression)}")
    for optimization in ("-O0", "-O2")
    for version in ("-gdwarf-4", "-gdwarf-5")
    for compression in ([], ["-gz"])
]


def integer(name: str, size: int, signed: bool, typedef: str = "") -> CType:
    return CType("int", name, size, signed=signed, typedef=typedef)


CHAR = integer("char", 1, CHAR_SIGNED)
TAKE_ALL = [
    Parameter("number", integer("int", 4, True)),
    Parameter("size", integer("unsigned long", 8, False)),
    Parameter("buffer", CType("pointer", "char *", 8, target=CHAR)),
    Parameter("text", CType("pointer", "char *", 8, target=CHAR)),  # const is dropped
    Parameter("where", CType("pointer", "struct point *", 8, target=CType("struct", "struct point", 8))),
    Parameter("count", integer("int", 4, True, typedef="count_t")),
    Parameter("color", CType("enum", "enum color", 4, signed=False)),
    Parameter("flag", CType("bool", "_Bool", 1)),
    Parameter("ratio", CType("float", "double", 8)),
]


def compile_c(directory: Path, source: str, name: str, *options: str) -> Path:
    (directory / f"{name}.c").write_text(source)
    output = directory / name
    subprocess.run([GCC, "-g", *options, "-o", str(output), str(directory / f"{name}.c")], check=True)
    return output


@pytest.fixture(scope="module")
def build(tmp_path_factory):
    """Compiles PROGRAM with the given options, once per set of options."""
    built: dict[tuple[str, ...], Path] = {}

    def build(*options: str) -> Path:
        if options not in built:
            directory = tmp_path_factory.mktemp("dwarf")
            built[options] = compile_c(directory, PROGRAM, "program", *options)
        return built[options]

    return build


@needs_gcc
@pytest.mark.parametrize("options", VARIANTS)
def test_the_parameters_of_a_function_with_every_kind_of_type(build, options) -> None:
    assert function_parameters(str(build(*options)), "take_all") == TAKE_ALL


@needs_gcc
@pytest.mark.parametrize("options", VARIANTS)
def test_a_static_function_and_one_without_parameters(build, options) -> None:
    program = str(build(*options))
    assert function_parameters(program, "helper") == [
        Parameter("value", integer("long", 8, True)),
        Parameter("small", integer("short", 2, True)),
    ]
    assert function_parameters(program, "no_parameters") == []
    assert function_parameters(program, "main") == [
        Parameter("argc", integer("int", 4, True)),
        Parameter("argv", CType("pointer", "char **", 8, target=CType("pointer", "char *", 8, target=CHAR))),
    ]


@needs_gcc
@pytest.mark.parametrize("options", VARIANTS)
def test_a_function_that_does_not_exist(build, options) -> None:
    assert function_parameters(str(build(*options)), "no_such_function") is None
    assert function_parameters(str(build(*options)), "point") is None  # a struct's name, not a function's


@needs_gcc
def test_a_symbol_that_aliases_a_function_has_its_parameters(build) -> None:
    """An alias has no entry of its own; its address is the function's (as glibc's malloc is __libc_malloc)."""
    assert function_parameters(str(build("-O2")), "alias_name") == [Parameter("first", integer("int", 4, True))]


@needs_gcc
def test_compressed_sections_are_compressed(build) -> None:
    header = dwarf._Elf(str(build("-O2", "-gdwarf-5", "-gz"))).sections[".debug_info"]
    assert header[2] & 0x800  # SHF_COMPRESSED: the test above did read a compressed file


@needs_gcc
@pytest.mark.parametrize("version", ["-gdwarf-4", "-gdwarf-5"])
def test_a_function_in_a_shared_library(tmp_path, version) -> None:
    library = compile_c(tmp_path, LIBRARY, "liblookup.so", "-O2", "-shared", "-fPIC", version)
    assert function_parameters(str(library), "lookup") == [
        Parameter("key", CType("pointer", "char *", 8, target=CHAR)),
        Parameter("flags", integer("unsigned int", 4, False)),
        Parameter("found", CType("pointer", "struct entry **", 8,
                                 target=CType("pointer", "struct entry *", 8, target=CType("struct", "struct entry", 0)))),  # fmt: skip
        Parameter("context", CType("pointer", "void *", 8)),
    ]


@needs_gcc
def test_a_stripped_binary_is_an_error_that_says_so(build, tmp_path) -> None:
    """Stripped of its debug information (and no separate debug file): DwarfError, not None, so
    that the user learns why `args` is unknown."""
    stripped = tmp_path / "stripped"
    subprocess.run(["strip", "-g", "-o", str(stripped), str(build("-O0"))], check=True)
    with pytest.raises(DwarfError) as error:
        function_parameters(str(stripped), "take_all")
    assert str(error.value) == (
        f"{stripped}: no DWARF debug information (no .debug_info section, and no separate debug file found)"
    )


@needs_gcc
@pytest.mark.parametrize("compression", [[], ["--compress-debug-sections=zlib"]])
def test_a_separate_debug_file_found_through_gnu_debuglink(build, tmp_path, compression) -> None:
    program, debug = tmp_path / "program", tmp_path / "program.debug"
    shutil.copy(build("-O2"), program)
    subprocess.run(["objcopy", "--only-keep-debug", *compression, str(program), str(debug)], check=True)
    subprocess.run(["objcopy", "--strip-debug", f"--add-gnu-debuglink={debug}", str(program)], check=True)
    assert not dwarf._Elf(str(program)).has_section(".debug_info")
    assert function_parameters(str(program), "take_all") == TAKE_ALL


@needs_gcc
@pytest.mark.skipif(shutil.which("dwz") is None, reason="dwz is not installed")
@pytest.mark.parametrize("version", ["-gdwarf-4", "-gdwarf-5"])
def test_entries_and_strings_shared_through_a_dwz_file(tmp_path, version) -> None:
    """dwz moves what two binaries share into a supplementary file (DW_FORM_GNU_ref_alt, _strp_alt)."""
    first = compile_c(tmp_path, PROGRAM, "first", "-O2", version)
    second = compile_c(tmp_path, PROGRAM.replace("return 7", "return 8"), "second", "-O2", version)
    subprocess.run(["dwz", "-m", str(tmp_path / "common.debug"), "-M", "common.debug", str(first), str(second)],
                   check=True, cwd=tmp_path)  # fmt: skip
    assert dwarf._Elf(str(first)).has_section(".gnu_debugaltlink")
    assert function_parameters(str(first), "take_all") == TAKE_ALL
    assert function_parameters(str(second), "alias_name") == [Parameter("first", integer("int", 4, True))]
    (tmp_path / "common.debug").unlink()
    dwarf._load.cache_clear()
    with pytest.raises(DwarfError, match="continues in 'common.debug' \\(dwz\\), which is not installed"):
        function_parameters(str(first), "take_all")


@needs_gcc
def test_an_object_file_is_refused(tmp_path) -> None:
    (tmp_path / "object.c").write_text("int f(int a) { return a; }\n")
    subprocess.run([GCC, "-g", "-c", "-o", str(tmp_path / "object.o"), str(tmp_path / "object.c")], check=True)
    with pytest.raises(DwarfError, match="a relocatable object"):
        function_parameters(str(tmp_path / "object.o"), "f")


def test_files_that_are_not_elf(tmp_path) -> None:
    text = tmp_path / "text"
    text.write_text("#!/bin/sh\n")
    with pytest.raises(DwarfError, match="not an ELF file"):
        function_parameters(str(text), "main")
    with pytest.raises(DwarfError, match="cannot read: No such file or directory"):
        function_parameters(str(tmp_path / "missing"), "main")


LIBC = "/lib/x86_64-linux-gnu/libc.so.6"


@pytest.mark.skipif(not os.path.exists(LIBC), reason="no x86-64 glibc")
def test_glibc_with_its_debug_package() -> None:
    """Debian's libc6-dbg: a compressed separate file found by build id; `malloc` is an alias."""
    try:
        found = function_parameters(LIBC, "malloc")
    except DwarfError as error:
        pytest.skip(f"no debug information for glibc ({error})")
    assert found == [Parameter("bytes", integer("unsigned long", 8, False, typedef="size_t"))]
    assert function_parameters(LIBC, "no_such_function_anywhere") is None


# Damaged files: DwarfError, never another exception, and never a hang


def section_span(path: Path, name: str) -> tuple[int, int]:
    header = dwarf._Elf(str(path)).sections[name]
    return header[4], header[5]  # sh_offset, sh_size


def parameters_or_error(path: Path, function: str) -> list[Parameter] | None | DwarfError:
    dwarf._load.cache_clear()  # a rewritten file may keep its inode, size and modification time
    try:
        return function_parameters(str(path), function)
    except DwarfError as error:
        return error


@needs_gcc
@pytest.mark.parametrize("options", [["-O0", "-gdwarf-4"], ["-O2", "-gdwarf-5"]])
@pytest.mark.parametrize("section", [".debug_info", ".debug_abbrev", ".debug_str"])
def test_every_byte_of_the_start_of_a_section_mutated(build, tmp_path, options, section) -> None:
    original = build(*options).read_bytes()
    start, size = section_span(build(*options), section)
    damaged = tmp_path / "damaged"
    for offset in range(start, start + min(size, 160)):
        for value in (0x00, 0xFF, original[offset] ^ 0x80):
            damaged.write_bytes(original[:offset] + bytes([value]) + original[offset + 1 :])
            parameters_or_error(damaged, "take_all")  # anything but an exception other than DwarfError


@needs_gcc
@pytest.mark.parametrize("section", [".debug_info", ".debug_abbrev"])
def test_sections_cut_short(build, tmp_path, section) -> None:
    """The section header claims fewer bytes: units and abbreviations end early."""
    path = build("-O0", "-gdwarf-5")
    original = bytearray(path.read_bytes())
    elf = dwarf._Elf(str(path))
    index = list(elf.sections).index(section)  # sections keeps the file's order (no duplicate names here)
    size_field = int.from_bytes(original[0x28:0x30], "little") + index * 64 + 32  # e_shoff + sh_size
    damaged = tmp_path / "damaged"
    for size in range(0, elf.sections[section][5], 7):
        original[size_field : size_field + 8] = size.to_bytes(8, "little")
        damaged.write_bytes(original)
        result = parameters_or_error(damaged, "take_all")
        assert result is None or isinstance(result, (list, DwarfError))


@needs_gcc
def test_a_damaged_compressed_section(build, tmp_path) -> None:
    path = build("-O0", "-gdwarf-5", "-gz")
    original = path.read_bytes()
    start, size = section_span(path, ".debug_info")
    damaged = tmp_path / "damaged"
    damaged.write_bytes(original[: start + 30] + bytes(20) + original[start + 50 :])
    result = parameters_or_error(damaged, "take_all")
    assert isinstance(result, DwarfError) and "compressed section .debug_info" in str(result)
    damaged.write_bytes(original[:start] + bytes(4) + original[start + 4 :])  # Elf64_Chdr.ch_type 0
    assert str(parameters_or_error(damaged, "take_all")).endswith("compressed with unknown method 0")


@needs_gcc
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_random_mutations_of_the_debug_sections(build, tmp_path, data) -> None:
    path = build("-O2", "-gdwarf-5")
    original = bytearray(path.read_bytes())
    for _ in range(data.draw(st.integers(1, 8))):
        section = data.draw(st.sampled_from([".debug_info", ".debug_abbrev", ".debug_str", ".debug_line_str"]))
        start, size = section_span(path, section)
        offset = data.draw(st.integers(start, start + size - 1))
        original[offset] = data.draw(st.integers(0, 255))
    damaged = tmp_path / "damaged"
    damaged.write_bytes(original)
    for function in ("take_all", "helper", "alias_name", "no_such_function"):
        result = parameters_or_error(damaged, function)
        assert result is None or isinstance(result, (list, DwarfError))
