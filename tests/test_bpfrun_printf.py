"""bpfrun's printf engine (bpfrun/printf.py): C semantics, checked against bpftrace 0.27 and glibc.

Arguments are given as bpfrun receives them: ints are the 64-bit stored value (sign- or
zero-extended by the argument's type), strings are bytes.
"""

from __future__ import annotations

import ctypes
import itertools

import pytest

from bpfrun import printf, values
from common import layout


def sprintf(fmt: str, *args: int | bytes) -> bytes:
    return printf.format(printf.parse(fmt), args)


# Observed with bpftrace 0.27.1 (bpftrace-oracle), one printf each in this program:
#   BEGIN {
#   printf("1|%d|\n", 5000000000);
#   printf("2|%u|\n", -1);
#   ... (the format and arguments of each case below)
#   }
# and the same as C's printf prints.
AGREED = [
    ("1|%d|\n", [5000000000], "1|705032704|\n"),
    ("2|%u|\n", [-1], "2|4294967295|\n"),
    ("3|%x|\n", [-1], "3|ffffffff|\n"),
    (
        "7|%ld|%lld|%lu|%lx|\n",
        [5000000000, -5000000000, -1, -1],
        "7|5000000000|-5000000000|18446744073709551615|ffffffffffffffff|\n",
    ),
    ("8|%hd|%hu|%hhd|%hhu|\n", [70000, -1, 200, -1], "8|4464|65535|-56|255|\n"),
    ("9|%5d|%-5d|%+d|%+d|\n", [42, 42, 42, -42], "9|   42|42   |+42|-42|\n"),
    ("10|%#x|%#X|%#o|%o|%X|\n", [255, 255, 8, 8, 48879], "10|0xff|0XFF|010|10|BEEF|\n"),
    ("11|%c%c%c|\n", [65, 66, 67], "11|ABC|\n"),
    ("12|%s|%10s|%-10s|\n", [b"abc", b"abc", b"abc"], "12|abc|       abc|abc       |\n"),
    ("13|%%|%d%%|\n", [7], "13|%|7%|\n"),
    (
        "14|%i|%jd|%zd|%td|\n",
        [-3, -5000000000, -5000000000, -5000000000],
        "14|-3|-5000000000|-5000000000|-5000000000|\n",
    ),
    ("15|%08x|%-8x|\n", [3054, 3054], "15|00000bee|bee     |\n"),
    ("17|%d|%u|\n", [True, False], "17|1|0|\n"),  # printf("17|%d|%u|\n", true, false)
    ("18|%lu|%llx|\n", [2**64 - 1, 2**64 - 1], "18|18446744073709551615|ffffffffffffffff|\n"),  # (uint64)-1
    ("19|%x|%lx|\n", [4294967295, -1], "19|ffffffff|ffffffffffffffff|\n"),  # (uint32)4294967295, (int8)-1
    ("20|%5c|%-5c|\n", [65, 66], "20|    A|B    |\n"),
    ("21|%#.3o|%#5x|\n", [8, 255], "21|010| 0xff|\n"),
    ("22|%+5d|%-+5d|\n", [42, 42], "22|  +42|+42  |\n"),
    ("24|%hhx|%hx|\n", [4660, 305419896], "24|34|5678|\n"),
    ("hi %d\n", [42], "hi 42\n"),  # BEGIN { printf("hi %d\n", 42); exit(); }
]


@pytest.mark.parametrize(("fmt", "args", "expected"), AGREED, ids=[case[2].split("|")[0] for case in AGREED])
def test_bpftrace_and_c_agree(fmt: str, args: list, expected: str) -> None:
    assert sprintf(fmt, *args) == expected.encode()


# Where bpftrace 0.27 is wrong by C's printf (it formats with C++ streams), we follow C. The
# bpftrace output is in the comment, from the same oracle program as above.
C_NOT_BPFTRACE = [
    ("%05d", [-42], "-0042"),  # bpftrace: 00-42 (zero padding before the sign)
    ("% d", [5], " 5"),  # bpftrace: 5 (the space flag is ignored)
    ("%.3s", [b"bpftrace"], "bpf"),  # bpftrace: bpftrace (string precision is ignored)
    ("%8.4x", [3054], "    0bee"),  # bpftrace:      bee (integer precision is ignored)
    ("%.5d|%8.3d|%-8.3d", [42, 7, 7], "00042|     007|007     "),  # bpftrace: 42|       7|7
    ("%#05x", [255], "0x0ff"),  # bpftrace: 00xff (zero padding before the 0x)
    ("%.0d|%5.0d", [0, 0], "|     "),  # bpftrace: 0|    0 (C: zero with precision 0 prints nothing)
]


@pytest.mark.parametrize(("fmt", "args", "expected"), C_NOT_BPFTRACE, ids=[case[0] for case in C_NOT_BPFTRACE])
def test_c_where_bpftrace_differs(fmt: str, args: list, expected: str) -> None:
    assert sprintf(fmt, *args) == expected.encode()


def test_text_outside_conversions_is_kept() -> None:
    # A '%' that starts no known conversion is text, as common.printf_format splits it.
    assert sprintf("100%y of %d\n", 3) == b"100%y of 3\n"
    assert sprintf("tail %") == b"tail %"
    assert sprintf("é %s", "ü".encode()) == "é ü".encode()


def test_bytes_are_passed_through() -> None:
    assert sprintf("%s|%c|", b"\xff\xfe", 0) == b"\xff\xfe|\0|"
    assert sprintf("%c", 256 + 65) == b"A"  # %c prints the low byte, as C converts to unsigned char


_LIBC = ctypes.CDLL(None)


def _glibc(fmt: str, value: int | bytes, length: str, conversion: str) -> bytes:
    """What glibc's snprintf prints for `fmt` when the argument has the C type of its conversion."""
    if conversion == "s":
        argument: object = ctypes.c_char_p(value)
    elif length in ("l", "ll", "j", "z", "t"):
        argument = ctypes.c_longlong((value + 2**63) % 2**64 - 2**63)
    else:  # int, or promoted to int (h, hh, c)
        argument = ctypes.c_int((value + 2**31) % 2**32 - 2**31)
    buffer = ctypes.create_string_buffer(256)
    _LIBC.snprintf(buffer, len(buffer), fmt.encode(), argument)
    return buffer.value


FLAG_SETS = ["", "-", "+", " ", "#", "0", "-0", "+0", " 0", "#0", "-#", "-+#0 "]


@pytest.mark.parametrize("conversion", list("diouxXcs"))
def test_matches_glibc(conversion: str) -> None:
    lengths = [""] if conversion in "cs" else ["", "hh", "h", "l", "ll", "j"]
    if conversion == "s":
        values: list = [b"", b"a", b"bpftrace"]
    else:
        values = [0, 1, -1, 42, -42, 65, 255, 70000, 5000000000, -5000000000, 2**63, 2**64 - 1]
    mismatches = []
    for flags, width, precision, length in itertools.product(
        FLAG_SETS, ["", "1", "5", "12"], ["", ".", ".0", ".3", ".10"], lengths
    ):
        fmt = f"%{flags}{width}{precision}{length}{conversion}"
        for value in values:
            if conversion == "c" and value % 256 == 0:
                continue  # the NUL byte ends snprintf's C string
            if sprintf(fmt, value) != _glibc(fmt, value, length, conversion):
                mismatches.append((fmt, value, sprintf(fmt, value), _glibc(fmt, value, length, conversion)))
    assert mismatches == []


@pytest.mark.parametrize(
    "fmt, kinds, args",
    [
        ("%d %i %u %x %X %o %c|", "number " * 7, [-5, 7, -1, 255, 255, 8, 65]),
        ("%5d|%-5d|%05d|%+d|% d|%.3d|%5.3d", "number " * 7, [42, 42, -42, 42, 42, 5, 5]),
        ("%hhd %hd %ld %lld %lu %hhu", "number " * 6, [300, 70000, -1, 2**40, -1, 300]),
        ("%s|%10s|%-10s|%.2s|", "string " * 4, [b"abc", b"abc", b"abc", b"abc"]),
        ("%s %d %s", "other number string", [True, 3, b"x"]),
        ("%#x %#o %p %s", "number number number number", [255, 8, 65, 12]),
    ],
)
def test_the_compiled_fast_path_prints_what_the_general_one_prints(fmt: str, kinds: str, args: list) -> None:
    pieces = printf.parse(fmt)
    assert printf.compile_format(pieces, kinds.split())(args) == printf.format(pieces, args)


@pytest.mark.parametrize("signed", [True, False], ids=["signed", "unsigned"])
@pytest.mark.parametrize("size", layout.INTEGER_SIZES)
def test_fields_read_as_their_conversion_asks_print_what_cutting_them_prints(size: int, signed: bool) -> None:
    """A field read straight as the C value a conversion prints (its low bytes, or itself when
    extending it is exact) prints what decoding it whole and then cutting it prints."""
    conversions = [f"%{length}{conversion}" for length in ("hh", "h", "", "l") for conversion in "diuxc"]
    fields = tuple(layout.Field("", 8 * index, layout.integer(size, signed)) for index in range(len(conversions)))
    spec = layout.Layout(layout.TUPLE, 8 * len(fields), fields)
    pieces = printf.parse("|".join(conversions))
    kinds = ["number"] * len(fields)
    fused, exact = values.tuple_decoder(spec, printf.readings(pieces))
    plain, none = values.tuple_decoder(spec)
    assert none == [] and len(exact) >= len(fields) - 6  # only %u, %x of a narrower signed field are cut
    bits = 8 * size
    for value in (0, 1, -1, 65, 127, -128, 200, 40000, -40000, 3_000_000_000, -(2**40), 2**63 - 1, -(2**63)):
        stored = (value & ((1 << bits) - 1)).to_bytes(size, "little").ljust(8, b"\0") * len(fields)
        expected = printf.compile_format(pieces, kinds)(plain(stored))
        assert printf.compile_format(pieces, kinds, exact)(fused(stored)) == expected, (value, expected)
