"""Source text and spans: where a diagnostic points and how its line and caret are drawn.

A `Span` is 1-based: `col` is the first column, `end_col` the column just past the last one, as in
bpftrace's `stdin:1:9-15` for a 6-character token starting at column 9.
"""

from __future__ import annotations

from common.record import record


@record(frozen=True, slots=True)
class Source:
    name: str  # file name, or 'stdin' for -e and standard input (bpftrace's spelling)
    text: str


@record(frozen=True, slots=True)
class Span:
    line: int
    col: int
    end_line: int
    end_col: int


def span_between(first: Span, last: Span) -> Span:
    return Span(first.line, first.col, last.end_line, last.end_col)


def location(source: Source, span: Span) -> str:
    """'file.bt:LINE:COL-COL' for a span on one line; 'file.bt:LINE-LINE' for several."""
    if span.line == span.end_line:
        return f"{source.name}:{span.line}:{span.col}-{span.end_col}"
    return f"{source.name}:{span.line}-{span.end_line}"


def excerpt(source: Source, span: Span) -> list[str]:
    """The source line(s) of `span` followed by a '~' marker under it (lines of a one-line span)."""
    lines = source.text.split("\n")
    if span.line != span.end_line:
        return lines[span.line - 1 : span.end_line]
    line = lines[span.line - 1] if span.line <= len(lines) else ""
    indent = "".join("\t" if char == "\t" else " " for char in line[: span.col - 1])
    return [line, indent + "~" * (span.end_col - span.col)]
