"""How a printf format string splits into literal text and conversions.

The compiler uses it to check arguments against conversions; the loader to format events. Both
must read a format the same way, which is why it lives here. A '%' that does not start a known
conversion is literal text, as in bpftrace.
"""

from __future__ import annotations

import re

from common.record import record

INTEGER_CONVERSIONS = "diouxXcp"
STRING_CONVERSIONS = "sr"  # %r: a buf() value, as text
# C conversions bpftrace refuses (it has no floating point; %n writes memory): the compiler
# reports them, and the loader refuses a bundle that has one.
UNSUPPORTED_CONVERSIONS = "aAeEfFgGn"
# The widest width or precision a format may ask for: `%2000000000d` would write 2 GB an event.
MAX_WIDTH = 4096

_CONVERSION = re.compile(
    r"%(?P<flags>[-+ #0]*)(?P<width>\d*)(?:\.(?P<precision>\d*))?(?P<length>hh|h|ll|l|L|j|z|t)?"
    r"(?P<conversion>[diouxXcspr%aAeEfFgGn])"
)


@record(frozen=True, slots=True)
class Conversion:
    flags: str  # any of '-', '+', ' ', '#', '0'
    width: int | None
    precision: int | None  # '%.d' has precision 0, as in C
    length: str  # '', 'hh', 'h', 'l', 'll', 'j', 'z' or 't'
    conversion: str  # one of INTEGER_CONVERSIONS + STRING_CONVERSIONS


def split_format(format_string: str) -> list[str | Conversion]:
    """Literal text (with '%%' already turned into '%') and conversions, in order."""
    pieces: list[str | Conversion] = []
    text = []
    position = 0
    for match in _CONVERSION.finditer(format_string):
        text.append(format_string[position : match.start()])
        position = match.end()
        if match["conversion"] == "%":
            text.append("%")
            continue
        pieces.append("".join(text))
        text = []
        width = int(match["width"]) if match["width"] else None
        precision = None if match["precision"] is None else int(match["precision"] or "0")
        pieces.append(Conversion(match["flags"], width, precision, match["length"] or "", match["conversion"]))
    text.append(format_string[position:])
    pieces.append("".join(text))
    return [piece for piece in pieces if piece != ""]


def conversions(format_string: str) -> list[Conversion]:
    return [piece for piece in split_format(format_string) if isinstance(piece, Conversion)]
