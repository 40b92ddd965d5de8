"""Parse: source text → `ast.Program`, or syntax diagnostics.

Lark's exceptions never leave this module: an unexpected token or character becomes one
`Diagnostic` with the location of the offending token.
"""

from __future__ import annotations

import ast as python_ast
import functools
from pathlib import Path

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, VisitError

from bpftc import ast
from bpftc.diagnostics import Diagnostics
from bpftc.source import Source, Span

_GRAMMAR = Path(__file__).with_name("grammar.lark")

# Closing tokens the parser may be waiting for, as the message names them.
_CLOSERS = {"RBRACE": "'}'", "RPAR": "')'", "RSQB": "']'", "ENDPRED": "'/' to close predicate"}
# Tokens that start an expression and cannot follow one (unlike "-" or "(").
_EXPRESSION_STARTS = {"INTEGER", "STRING", "IDENTIFIER", "MAP_NAME"}


@functools.cache
def _parser() -> Lark:
    return Lark(_GRAMMAR.read_text(), parser="lalr", propagate_positions=True, maybe_placeholders=True)


def parse(source: Source, diagnostics: Diagnostics) -> ast.Program | None:
    try:
        tree = _parser().parse(source.text)
    except UnexpectedInput as error:
        diagnostics.error(_error_span(source, error), _syntax_message(error))
        return None
    try:
        return _ToAst().transform(tree)
    except VisitError as error:
        if isinstance(error.orig_exc, _BadLiteral):
            diagnostics.error(error.orig_exc.span, error.orig_exc.message)
            return None
        raise


class _BadLiteral(Exception):
    def __init__(self, span: Span, message: str) -> None:
        self.span = span
        self.message = message


def _span(meta_or_token) -> Span:
    return Span(meta_or_token.line, meta_or_token.column, meta_or_token.end_line, meta_or_token.end_column)


@v_args(meta=True)
class _ToAst(Transformer):
    """Builds AST nodes from the parse tree; no semantics here."""

    def start(self, meta, probes):
        return ast.Program(_span(meta) if probes else Span(1, 1, 1, 1), probes)

    def probe(self, meta, children):
        attach_points, *rest = children
        predicate = rest[0] if len(rest) == 2 else None
        return ast.Probe(_span(meta), attach_points, predicate, rest[-1])

    def attach_points(self, meta, children):
        return children

    def attach_point(self, meta, children):
        (token,) = children
        provider, *parts = str(token).split(":")
        return ast.AttachPoint(_span(token), str(token), provider, tuple(parts))

    def predicate(self, meta, children):
        return children[0]

    def block(self, meta, children):
        return [child for child in children if child is not None]

    def assign_map(self, meta, children):
        return ast.AssignMap(_span(meta), children[0], children[1])

    def expr_statement(self, meta, children):
        return ast.ExprStatement(_span(meta), children[0])

    def integer(self, meta, children):
        (token,) = children
        return ast.Integer(_span(token), _integer_value(str(token)))

    def string(self, meta, children):
        (token,) = children
        try:
            value = python_ast.literal_eval(str(token))
        except (ValueError, SyntaxError):
            raise _BadLiteral(_span(token), f"invalid string literal: {token}") from None
        return ast.String(_span(token), value)

    def builtin(self, meta, children):
        (token,) = children
        return ast.Builtin(_span(token), str(token))

    def call(self, meta, children):
        name, *args = children
        return ast.Call(_span(meta), str(name), [arg for arg in args if arg is not None])

    def map(self, meta, children):
        name, *keys = children
        return ast.Map(_span(meta), str(name), keys)

    def _binary_or_unary(self, meta, children):
        if len(children) == 2:
            op, operand = children
            return ast.Unop(_span(meta), str(op), operand)
        left, op, right = children
        return ast.Binop(_span(meta), str(op), left, right)

    logical_or = logical_and = bit_or = bit_xor = bit_and = _binary_or_unary
    equality = relation = shift = additive = multiplicative = unary = _binary_or_unary


def _integer_value(text: str) -> int:
    digits = text.replace("_", "")
    return int(digits, 16) if digits[:2].lower() == "0x" else int(digits, 10)


def _error_span(source: Source, error: UnexpectedInput) -> Span:
    if isinstance(error, UnexpectedCharacters) and error.char == '"':
        end = len(source.text.split("\n")[error.line - 1]) + 1
        return Span(error.line, end, error.line, end)  # where the closing quote is missing
    token = getattr(error, "token", None)
    if isinstance(token, Token) and token.type != "$END" and token.end_column is not None:
        return _span(token)
    if isinstance(error, UnexpectedEOF) or (isinstance(token, Token) and token.type == "$END"):
        return _end_of_text(source)
    return Span(error.line, error.column, error.line, error.column + 1)


def _end_of_text(source: Source) -> Span:
    lines = source.text.rstrip("\n").split("\n")
    column = len(lines[-1]) + 1
    return Span(len(lines), column, len(lines), column)


def _syntax_message(error: UnexpectedInput) -> str:
    if isinstance(error, UnexpectedCharacters):
        if error.char == '"':
            return "syntax: unterminated string"
        return f"syntax: unexpected character {error.char!r}"
    expected = set(getattr(error, "accepts", None) or getattr(error, "expected", None) or ())
    if expected & _EXPRESSION_STARTS and "RBRACE" in expected:
        return "syntax: expected '}'"  # between statements
    if expected & _EXPRESSION_STARTS:
        return "syntax: expected expression"
    if "SEMICOLON" in expected:
        return "syntax: expected ';'"  # after a statement
    closers = sorted(_CLOSERS[name] for name in expected if name in _CLOSERS)
    if closers:
        return f"syntax: expected {' or '.join(closers)}"
    if "LBRACE" in expected:
        return "syntax: expected '{'"
    token = getattr(error, "token", None)
    if isinstance(token, Token) and token.type != "$END":
        return f"syntax: unexpected {str(token)!r}"
    return "syntax: unexpected end of input"
