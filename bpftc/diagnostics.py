"""Diagnostics: user errors and warnings with a source span, printed the way bpftrace prints them.

    stdin:1:9-15: ERROR: Unknown function: 'foo'
    BEGIN { foo(1); }
            ~~~~~~
    HINT: ...

Passes add to a `Diagnostics` sink; the pipeline stops after the first pass that added an error.
"""

from __future__ import annotations

from bpftc.source import Source, Span, excerpt, location
from common.record import field, record

ERROR = "ERROR"
WARNING = "WARNING"


@record(frozen=True, slots=True)
class Context:
    span: Span
    message: str


@record(frozen=True, slots=True)
class Diagnostic:
    severity: str
    span: Span
    message: str
    hints: tuple[str, ...] = ()
    context: tuple[Context, ...] = ()


@record
class Diagnostics:
    """Collects a pass's diagnostics in the order they were found."""

    items: list[Diagnostic] = field(default_factory=list)

    def error(self, span: Span, message: str, hints: tuple[str, ...] = (), context: tuple[Context, ...] = ()) -> None:
        self.items.append(Diagnostic(ERROR, span, message, hints, context))

    def warning(self, span: Span, message: str) -> None:
        self.items.append(Diagnostic(WARNING, span, message))

    @property
    def has_errors(self) -> bool:
        return any(item.severity == ERROR for item in self.items)


def render(source: Source, diagnostics: Diagnostics) -> str:
    """All diagnostics as text, errors before warnings."""
    ordered = sorted(diagnostics.items, key=lambda item: item.severity != ERROR)
    return "".join(_render_one(source, item) for item in ordered)


def _render_one(source: Source, item: Diagnostic) -> str:
    lines = [f"{location(source, item.span)}: {item.severity}: {item.message}", *excerpt(source, item.span)]
    for context in item.context:
        lines += [f"{location(source, context.span)}: {item.severity}: {context.message}"]
        lines += excerpt(source, context.span)
    lines += [f"HINT: {hint}" for hint in item.hints]
    return "\n".join(lines) + "\n"
