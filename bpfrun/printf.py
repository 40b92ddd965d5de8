"""C printf semantics for bpftrace's printf(): format argument values the way glibc would.

Consumes a format string (escapes already resolved by the compiler), split into text and
conversions by `common.printf_format` exactly as the compiler split it (a '%' that starts no known
conversion is literal text), and argument values: ints (the 64-bit stored value, sign- or
zero-extended by its type) and bytes (string arguments, already cut at their NUL). Produces
bytes, as glibc's printf prints them when each argument is passed with the C type its conversion
names:

- no length modifier: `int` / `unsigned int` (32 bits), so `%d` of 5000000000 is 705032704;
  `hh` 8 bits, `h` 16 bits, `l`, `ll`, `j`, `z`, `t` 64 bits;
- d, i signed; u, o, x, X unsigned; c one byte; s a string (length modifiers of c and s are
  ignored: bpftrace has no wide characters);
- flags `-+ #0` in any order, a width, a precision; `%%`.

bpftrace 0.27 formats with C++ streams and differs from C in places (`%05d` of -42, `% d`,
precision of integers and strings, `%#05x`); we follow C, see tests/test_bpfrun_printf.py.
Reports nothing: verify.py checks beforehand that conversions and arguments match.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from common import printf_format
from common.printf_format import Conversion

INTEGER_CONVERSIONS = printf_format.INTEGER_CONVERSIONS
STRING_CONVERSIONS = printf_format.STRING_CONVERSIONS
UNSUPPORTED_CONVERSIONS = printf_format.UNSUPPORTED_CONVERSIONS
MAX_WIDTH = printf_format.MAX_WIDTH
_SIGNED = "di"
_LENGTH_BITS = {"": 32, "hh": 8, "h": 16, "l": 64, "ll": 64, "j": 64, "z": 64, "t": 64}
_BASES = {"d": 10, "i": 10, "u": 10, "o": 8, "x": 16, "X": 16, "p": 16}


Piece = bytes | Conversion  # literal text, or one conversion that takes one argument


def parse(fmt: str) -> tuple[Piece, ...]:
    """Split a format the way the compiler does (common.printf_format): unknown '%...' is text."""
    return tuple(_piece(piece) for piece in printf_format.split_format(fmt))


def conversions(pieces: Sequence[Piece]) -> tuple[Conversion, ...]:
    return tuple(piece for piece in pieces if isinstance(piece, Conversion))


def format(pieces: Sequence[Piece], args: Sequence[int | bytes]) -> bytes:  # noqa: A001
    out = bytearray()
    values = iter(args)
    for piece in pieces:
        if isinstance(piece, bytes):
            out += piece
        else:
            out += _format_one(piece, next(values))
    return bytes(out)


_PYTHON_CONVERSIONS = {"d": "d", "i": "d", "u": "d", "x": "x", "X": "X", "o": "o", "c": "c", "s": "s"}


def compile_format(
    pieces: Sequence[Piece], kinds: Sequence[str], exact: Sequence[int] = ()
) -> Callable[[Sequence[int | bytes]], bytes]:
    """A formatter for one format whose arguments are of `kinds`: 'number', 'string' or 'other'.
    Python's own %-formatting, which is C's for these conversions, once each argument is cut to the
    width its length modifier gives (unless its index is in `exact`: the decoder read it as
    `readings` asks); the general `format` where a conversion needs C's special cases (the '#'
    flag, %p, a number or a bool printed with %s)."""
    python_format = []
    converters: list[Callable[[int | bytes], int | bytes] | None] = []
    conversion_number = 0
    for piece in pieces:
        if isinstance(piece, bytes):
            python_format.append(piece.replace(b"%", b"%%"))
            continue
        kind = kinds[conversion_number]
        conversion_number += 1
        is_number = kind == "number"
        simple = "#" not in piece.flags and piece.conversion in _PYTHON_CONVERSIONS and kind != "other"
        if not simple or is_number != (piece.conversion != "s"):
            return lambda args, pieces=tuple(pieces): format(pieces, args)
        precision = "" if piece.precision is None else f".{piece.precision}"
        width = "" if piece.width is None else str(piece.width)
        python_format.append(f"%{piece.flags}{width}{precision}{_PYTHON_CONVERSIONS[piece.conversion]}".encode())
        converters.append(_integer_converter(piece) if is_number and len(converters) not in exact else None)
    template = b"".join(python_format)
    if not any(converters):
        return lambda args: template % tuple(args)
    return lambda args: template % tuple(convert(arg) if convert else arg for convert, arg in zip(converters, args))


def readings(pieces: Sequence[Piece]) -> list[tuple[int, bool] | None]:
    """For each conversion, the (bits, signed) of the C value it prints, which a decoder can read
    as such from the record instead of cutting a wider value afterwards; None where the general
    path formats it."""
    found: list[tuple[int, bool] | None] = []
    for piece in pieces:
        if isinstance(piece, bytes):
            continue
        if "#" in piece.flags or piece.conversion not in _PYTHON_CONVERSIONS or piece.conversion == "s":
            found.append(None)
        elif piece.conversion == "c":
            found.append((8, False))
        else:
            found.append((_LENGTH_BITS[piece.length], piece.conversion in _SIGNED))
    return found


def _integer_converter(spec: Conversion) -> Callable[[int], int]:
    """The C value of an argument for this conversion: cut to its length modifier's bits, read as
    signed for %d and %i, as unsigned otherwise, and as one byte for %c."""
    if spec.conversion == "c":
        return lambda value: value & 0xFF
    bits = _LENGTH_BITS[spec.length]
    mask, sign = (1 << bits) - 1, 1 << (bits - 1)
    if spec.conversion in _SIGNED:
        return lambda value: ((value & mask) ^ sign) - sign
    return lambda value: value & mask


def _piece(piece: str | Conversion) -> Piece:
    return piece.encode("utf-8", "surrogateescape") if isinstance(piece, str) else piece


def _format_one(spec: Conversion, value: int | bytes) -> bytes:
    if spec.conversion in "sr":  # %r: a buffer, already its text
        text = _text(value)
        text = text if spec.precision is None else text[: spec.precision]
        return _pad(spec, text)
    assert isinstance(value, int), f"%{spec.conversion} of {value!r}"
    if spec.conversion == "c":
        return _pad(spec, bytes([value & 0xFF]))
    return _format_integer(spec, value)


def _text(value: int | bool | bytes) -> bytes:
    """What %s prints: a string as it is, a number in decimal, a bool as true/false (as bpftrace)."""
    if isinstance(value, bool):
        return b"true" if value else b"false"
    if isinstance(value, int):
        return str(value).encode()
    return value


def _format_integer(spec: Conversion, value: int) -> bytes:
    bits = 64 if spec.conversion == "p" else _LENGTH_BITS[spec.length]
    value &= (1 << bits) - 1
    if spec.conversion in _SIGNED and value >> (bits - 1):
        value -= 1 << bits
    digits = _digits(abs(value), _BASES[spec.conversion])
    if spec.conversion == "X":
        digits = digits.upper()
    if spec.precision == 0 and value == 0:
        digits = ""  # C: "The result of converting zero with an explicit precision of zero shall be no characters"
    if spec.precision is not None:
        digits = digits.rjust(spec.precision, "0")
    prefix = ""
    alternate = "#" in spec.flags
    if alternate and spec.conversion == "o" and not digits.startswith("0"):
        digits = "0" + digits
    elif spec.conversion == "p" and value != 0:  # a pointer: 64 bits, 0x as %#x writes it (bpftrace: 0 is "0")
        prefix = "0x"
    elif alternate and spec.conversion in "xX" and value != 0:
        prefix = "0X" if spec.conversion == "X" else "0x"
    if spec.conversion in _SIGNED:
        prefix = ("-" if value < 0 else "+" if "+" in spec.flags else " " if " " in spec.flags else "") + prefix
    if spec.width and "0" in spec.flags and "-" not in spec.flags and spec.precision is None:
        digits = digits.rjust(spec.width - len(prefix), "0")
    return _pad(spec, (prefix + digits).encode())


def _digits(magnitude: int, base: int) -> str:
    if base == 8:
        return f"{magnitude:o}"
    if base == 16:
        return f"{magnitude:x}"
    return str(magnitude)


def _pad(spec: Conversion, text: bytes) -> bytes:
    if spec.width is None or len(text) >= spec.width:
        return text
    if "-" in spec.flags:
        return text.ljust(spec.width)
    return text.rjust(spec.width)
