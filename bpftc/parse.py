"""Parse: source text → `ast.Program`, or syntax diagnostics.

Lark's exceptions never leave this module: an unexpected token or character becomes one
`Diagnostic` with the location of the offending token, worded as bpftrace words it. Literals are
decoded here (integer bases, suffixes and durations; string escapes); a literal that cannot be
decoded is a diagnostic too. No semantics: what a name means is for the passes.
"""

from __future__ import annotations

import functools
import re
import sys
from pathlib import Path

import lark
from lark import Lark, Token, Transformer, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, VisitError

from bpftc import ast, cache
from bpftc.diagnostics import Diagnostics
from bpftc.source import Source, Span

_GRAMMAR = Path(__file__).with_name("grammar.lark")

# Closing tokens the parser may be waiting for, as the message names them.
_CLOSERS = {"RBRACE": "'}'", "RPAR": "')'", "RSQB": "']'", "ENDPRED": "'/' to close predicate"}
# Tokens that start an expression and cannot follow one (unlike "-" or "(").
_EXPRESSION_STARTS = {"INTEGER", "STRING", "IDENTIFIER", "MAP_NAME", "VARIABLE", "POSITIONAL", "TRUE", "FALSE"}
_DURATIONS = {"ns": 1, "us": 1_000, "ms": 1_000_000, "s": 1_000_000_000, "m": 60_000_000_000}
_DURATIONS |= {"h": 3_600_000_000_000, "d": 86_400_000_000_000}
_INTEGER = re.compile(
    r"(?P<digits>0[xX][0-9a-fA-F_]+|0[bB][01_]+|[0-9][0-9_]*)(?:e(?P<exponent>[0-9]+))?(?P<suffix>[A-Za-z]*)"
)
_SIMPLE_ESCAPES = {"n": 10, "t": 9, "r": 13, "\\": 92, '"': 34}  # bpftrace's; it refuses \a, \e...
_C_SUFFIXES = ("", "u", "l", "ul", "ll", "ull")  # accepted and ignored, as bpftrace does
# Deeper nesting than this is refused with a location rather than risking the interpreter's stack.
MAX_NESTING = 1000


@functools.cache
def _parser() -> Lark:
    options = dict(parser="lalr", propagate_positions=True, maybe_placeholders=True, postlex=_POSTLEX)
    cache = _cache_file()
    return Lark(_GRAMMAR.read_text(), **options, **({"cache": cache} if cache else {}))


# Names taken for C types after '(' (bpftrace knows the kernel's typedefs as its lexer runs; bpftc
# tells them by their shape): C's own, the kernel's fixed-width ones, and those ending in _t.
_C_TYPE_NAME = re.compile(r"int|long|short|char|unsigned|signed|_*[us](8|16|32|64)|\w+_t")


class _BlockExpressions:
    """Tells a block used as a value from a block statement, which LALR cannot (`{ 1 } - 1`): a '{'
    after an operator, '(', '[', ',', '=' (not `config =`) or `return` opens a block expression."""

    always_accept = ("LBRACE",)  # lexed in every state, then renamed here
    _BEFORE_EXPRESSION = frozenset(
        "= ( [ , ? : + - * / % & | ^ ! ~ < > == != <= >= && || << >> "
        "+= -= *= /= %= &= |= ^= <<= >>= return".split()
    )

    casts: frozenset[int] = frozenset()  # offsets of macro parameters cast to: parse() sets them

    def process(self, stream):
        before, previous = None, None
        for token in stream:
            if token.type == "LBRACE" and previous in self._BEFORE_EXPRESSION and before != "config":
                token = Token.new_borrow_pos("_LBRACE_EXPR", token.value, token)
            elif token.type == "IDENTIFIER" and previous == "(" and (
                _C_TYPE_NAME.fullmatch(token.value) or token.start_pos in self.casts
            ):
                # `(u32)x`, `(pid_t)x`: a C type name (a BTF typedef, `int`...) where a cast's type
                # goes; `(a)x` in a macro whose parameter `a` is given a type
                token = Token.new_borrow_pos("TYPE_NAME", token.value, token)
            # A predicate's closing '/' is ENDPRED: not an operator.
            before, previous = previous, token.value if token.type != "ENDPRED" else None
            yield token



_POSTLEX = _BlockExpressions()  # one per process, as the parser it belongs to

_MACRO_HEAD = re.compile(r"\bmacro\s+[A-Za-z_]\w*\s*\(([^)]*)\)\s*\{")
_NAME = re.compile(r"[A-Za-z_]\w*")


def _casts_to_macro_parameters(text: str) -> frozenset[int]:
    """Where a macro's body casts to one of its plain parameters, `(a)b`: the offsets of those
    names, which the lexer then takes for type names (the call passes `typeof(...)` for `a`).
    LALR cannot tell the cast from a parenthesised `a`, and the postlexer cannot look past the `)`
    (lark lexes each token in the parser state the previous one left), so the text is searched
    first: a `(name)` followed by the start of an operand, not by an operator (`(a) - 1` stays a
    subtraction). A match inside a string or a comment is never an identifier token: no harm."""
    if "macro" not in text:
        return frozenset()
    found = set()
    for head in _MACRO_HEAD.finditer(text):
        names = [name.strip() for name in head.group(1).split(",") if _NAME.fullmatch(name.strip())]
        if not names:
            continue
        body = text[head.end() : _block_end(text, head.end())]
        cast = re.compile(r"\(\s*(" + "|".join(names) + r")\s*\)\s*(?=[A-Za-z0-9_$@\"(!~])")
        found.update(head.end() + match.start(1) for match in cast.finditer(body))
    return frozenset(found)


def _block_end(text: str, start: int) -> int:
    """The offset of the '}' closing the block whose body starts at `start` (braces counted)."""
    depth = 1
    for match in re.finditer(r"[{}]", text[start:]):
        depth += 1 if match.group() == "{" else -1
        if not depth:
            return start + match.start()
    return len(text)

def _cache_file() -> str | None:
    """Where lark keeps the parse tables it built (building them is half of a compile's CPU time)."""
    directory = cache.directory()
    if directory is None:
        return None
    # lark checks the grammar's hash stored in the file; the version keeps lark upgrades apart.
    return str(directory / f"grammar-lark{lark.__version__}-py{sys.version_info[0]}{sys.version_info[1]}.cache")


def parse(source: Source, diagnostics: Diagnostics) -> ast.Program | None:
    parser = _parser()
    _POSTLEX.casts = _casts_to_macro_parameters(source.text)
    try:
        tree = parser.parse(source.text)
    except UnexpectedInput as error:
        diagnostics.error(_error_span(source, error), _syntax_message(source, error))
        return None
    too_deep = _too_deep(tree)
    if too_deep is not None:
        diagnostics.error(too_deep, f"expression is nested too deeply (more than {MAX_NESTING} levels)")
        return None
    try:
        return _ToAst(source.text).transform(tree)
    except VisitError as error:
        if isinstance(error.orig_exc, _BadLiteral):
            diagnostics.error(error.orig_exc.span, error.orig_exc.message)
            return None
        raise


class _BadLiteral(Exception):
    def __init__(self, span: Span, message: str) -> None:
        self.span = span
        self.message = message


def _too_deep(tree) -> Span | None:
    """The span of the first subtree nested deeper than MAX_NESTING, found without recursion."""
    pending = [(tree, 0)]
    while pending:
        node, depth = pending.pop()
        if depth > MAX_NESTING:
            return _span(node.meta)
        pending.extend((child, depth + 1) for child in node.children if hasattr(child, "children"))
    return None


def _span(meta_or_token) -> Span:
    return Span(meta_or_token.line, meta_or_token.column, meta_or_token.end_line, meta_or_token.end_column)


def _tokens(children) -> list:
    """The children that are not punctuation kept by a `!` rule."""
    return [child for child in children if not (isinstance(child, Token) and child.type not in _VALUE_TOKENS)]


_VALUE_TOKENS = {"IDENTIFIER", "INTEGER", "TYPE_NAME", "VARIABLE", "STAR", "STRUCT"}


@v_args(meta=True)
class _ToAst(Transformer):
    """Builds AST nodes from the parse tree; no semantics here."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text  # the source, for what the tree leaves out (the ';' after a jump)

    # Program and probes

    def start(self, meta, children):
        config = children[0] if children and isinstance(children[0], list) else []
        probes = [child for child in children if isinstance(child, ast.Probe)]
        macros = [child for child in children if isinstance(child, ast.Macro)]
        declarations = [child for child in children if isinstance(child, ast.MapDeclaration)]
        span = _span(meta) if children else Span(1, 1, 1, 1)
        return ast.Program(span, config, probes, macros, declarations)

    def map_declaration(self, meta, children):
        _, name, kind, entries = children
        return ast.MapDeclaration(_span(meta), str(name), str(kind), _integer_value(entries))

    def macro(self, meta, children):
        name, *rest = children
        body = rest[-1]
        parameters = [str(parameter) for parameter in rest[:-1] if parameter is not None]
        return ast.Macro(_span(meta), str(name), parameters, body)

    def macro_parameter(self, meta, children):
        return children[0]

    def config(self, meta, children):
        return [child for child in children if child is not None]

    def config_item(self, meta, children):
        name, value = children
        if value.type == "INTEGER":
            parsed: int | str | bool = _integer_value(value)
        elif value.type == "STRING":
            parsed = _string_value(value).decode("utf-8", "surrogateescape")
        elif value.type in ("TRUE", "FALSE"):
            parsed = value.type == "TRUE"
        else:
            parsed = str(value)
        return ast.ConfigItem(_span(meta), str(name), parsed)

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

    # Statements

    def block(self, meta, children):
        return ast.Block(_span(meta), [child for child in children if child is not None])

    probe_block = block

    def last_statement(self, meta, children):
        return children[0]

    def if_statement(self, meta, children):
        condition, then, *otherwise = children
        return ast.If(_span(meta), condition, then, otherwise[0] if otherwise else None)

    def unroll(self, meta, children):
        return ast.Unroll(_span(meta), children[0], children[1])

    def while_loop(self, meta, children):
        return ast.While(_span(meta), children[0], children[1])

    def for_range(self, meta, children):
        variable, start, end, body = children
        return ast.ForRange(_span(meta), _variable(variable), start, end, body)

    def for_map(self, meta, children):
        variable, map_node, body = children
        return ast.ForMap(_span(meta), _variable(variable), map_node, body)

    def assignment(self, meta, children):
        target, value = children
        return ast.Assignment(_span(meta), target, value)

    def compound_assignment(self, meta, children):
        target, op, value = children
        return ast.CompoundAssignment(_span(meta), target, str(op)[:-1], value)

    def discard(self, meta, children):
        return None

    def named_type(self, meta, children):
        name, *stars = children
        return ast.TypeSpec(_span(meta), str(name), pointer_depth=len(stars))

    def let(self, meta, children):
        variable, *rest = children  # lark leaves out the placeholder of an absent `= value`
        type_spec = next((child for child in rest if isinstance(child, ast.TypeSpec)), None)
        value = next((child for child in rest if isinstance(child, ast.Node) and child is not type_spec), None)
        return ast.Let(_span(meta), _variable(variable), type_spec, value)

    def expr_statement(self, meta, children):
        return ast.ExprStatement(_span(meta), children[0])

    def jump(self, meta, children):
        span = _span(meta)
        if self.text[meta.end_pos : meta.end_pos + 1] == ";":  # bpftrace's location takes it in
            span = Span(span.line, span.col, span.end_line, span.end_col + 1)
        return ast.Jump(span, str(children[0]))

    # Expressions

    def integer(self, meta, children):
        (token,) = children
        return ast.Integer(_span(token), _integer_value(token))

    def string(self, meta, children):
        (token,) = children
        return ast.String(_span(token), _string_value(token))

    def true(self, meta, children):
        return ast.Bool(_span(meta), True)

    def false(self, meta, children):
        return ast.Bool(_span(meta), False)

    def builtin(self, meta, children):
        (token,) = children
        return ast.Builtin(_span(token), str(token))

    def variable(self, meta, children):
        return _variable(children[0])

    def positional(self, meta, children):
        (token,) = children
        return ast.Positional(_span(token), int(str(token)[1:]))

    def positional_count(self, meta, children):
        return ast.PositionalCount(_span(meta))

    def call(self, meta, children):
        name, *args = children
        return ast.Call(_span(meta), str(name), [arg for arg in args if arg is not None])

    def map(self, meta, children):
        name, *keys = children
        return ast.Map(_span(meta), str(name), keys)

    def block_expr(self, meta, children):
        block = self.block(meta, children)
        *statements, last = block.statements or [None]
        if not isinstance(last, ast.ExprStatement):
            raise _BadLiteral(block.span, "a block used as a value must end with an expression without ';'")
        return ast.BlockExpr(_span(meta), statements, last.expr)

    def conditional(self, meta, children):
        condition, then, otherwise = children
        return ast.Conditional(_span(meta), condition, then, otherwise)

    def elvis(self, meta, children):
        condition, otherwise = children
        return ast.Conditional(_span(meta), condition, condition, otherwise)

    def cast(self, meta, children):
        type_spec, operand = _tokens(children)
        return ast.Cast(_span(meta), type_spec, operand)

    def field(self, meta, children):
        operand, name = children
        return ast.Field(_span(meta), operand, str(name))

    def arrow(self, meta, children):
        operand, name = children
        return ast.Field(_span(meta), operand, str(name), arrow=True)

    def index(self, meta, children):
        operand, index = children
        return ast.Index(_span(meta), operand, index)

    def pre_increment(self, meta, children):
        op, target = children
        return ast.Increment(_span(meta), str(op), True, target)

    def post_increment(self, meta, children):
        target, op = children
        return ast.Increment(_span(meta), str(op), False, target)

    def tuple(self, meta, children):
        return ast.Tuple(_span(meta), list(children))

    def record(self, meta, children):
        return ast.Record(_span(meta), [name for name, _ in children], [value for _, value in children])

    def record_field(self, meta, children):
        name, value = children
        return (str(name), value)

    def sizeof(self, meta, children):
        return ast.Sizeof(_span(meta), children[0])

    def offsetof(self, meta, children):
        type_spec, *path = children
        return ast.Offsetof(_span(meta), type_spec, [str(name) for name in path])

    def type(self, meta, children):
        struct_kind = ""
        tokens = list(children)
        if tokens[0].type == "STRUCT":
            struct_kind = str(tokens.pop(0))
        name = str(tokens.pop(0))
        stars = sum(1 for token in tokens if isinstance(token, Token) and token.type == "STAR")
        lengths = [token for token in tokens if isinstance(token, int)]
        return ast.TypeSpec(_span(meta), name, struct_kind, stars, lengths[0] if lengths else None)

    def typeof(self, meta, children):
        return ast.TypeSpec(_span(meta), "typeof", of=children[0])

    def array_suffix(self, meta, children):
        return _integer_value(children[0]) if children else 0

    def _binary_or_unary(self, meta, children):
        if len(children) == 2:
            op, operand = children
            return ast.Unop(_span(meta), str(op), operand)
        left, op, right = children
        return ast.Binop(_span(meta), str(op), left, right)

    logical_or = logical_and = bit_or = bit_xor = bit_and = _binary_or_unary
    equality = relation = shift = additive = multiplicative = unary = _binary_or_unary


def _variable(token: Token) -> ast.Variable:
    return ast.Variable(_span(token), str(token))


def _integer_value(token: Token) -> int:
    """Decimal, 0x hex, 0 octal, 0b binary, `_` separators, `1e3`, C suffixes (ignored, as bpftrace
    ignores them), duration units (the value in nanoseconds)."""
    match = _INTEGER.fullmatch(str(token))
    if match is None:
        raise _BadLiteral(_span(token), f"invalid integer literal: {token}")
    digits = match["digits"].replace("_", "")
    if digits[:2].lower() == "0x":
        value = int(digits[2:], 16)
    elif digits[:2].lower() == "0b":
        value = int(digits[2:], 2)
    elif len(digits) > 1 and digits[0] == "0":
        if not set(digits) <= set("01234567"):
            raise _BadLiteral(_span(token), f"invalid octal literal: {token}")
        value = int(digits, 8)
    else:
        value = int(digits, 10)
    suffix = match["suffix"]
    if suffix not in _DURATIONS and suffix not in _C_SUFFIXES:
        raise _BadLiteral(_span(token), f"syntax: invalid trailing bytes: {token}")
    if match["exponent"] is not None:
        if not 1 <= value <= 9:
            raise _BadLiteral(_span(token), f"syntax: coefficient part of scientific literal must be 1-9: {token}")
        exponent = int(match["exponent"])
        if value and exponent > 20:  # 10**21 > 2**64: fail before computing a huge power
            raise _BadLiteral(_span(token), f"syntax: overflow error, maximum value is {(1 << 64) - 1}: {token}")
        value *= 10 ** min(exponent, 20)
    if suffix in _DURATIONS:
        value *= _DURATIONS[suffix]
    if value >= 1 << 64:
        raise _BadLiteral(_span(token), f"syntax: overflow error, maximum value is {(1 << 64) - 1}: {token}")
    return value


def _string_value(token: Token) -> bytes:
    """The bytes of a string literal, escapes resolved: \\n \\t \\r \\\\ \\" ..., \\NNN octal, \\xNN hex."""
    text = str(token)[1:-1]
    out = bytearray()
    position = 0
    while position < len(text):
        char = text[position]
        if char != "\\":
            out += char.encode("utf-8", "surrogateescape")
            position += 1
            continue
        escape = text[position + 1]
        if escape in _SIMPLE_ESCAPES:
            out.append(_SIMPLE_ESCAPES[escape])
            position += 2
        elif escape in "01234567":
            octal = re.match(r"[0-7]{1,3}", text[position + 1 :])[0]
            out.append(int(octal, 8) & 0xFF)
            position += 1 + len(octal)
        elif escape == "x" and re.match(r"[0-9a-fA-F]", text[position + 2 : position + 3]):
            hexa = re.match(r"[0-9a-fA-F]{1,2}", text[position + 2 :])[0]
            out.append(int(hexa, 16))
            position += 2 + len(hexa)
        else:
            column = token.column + 2 + position  # the character after the backslash
            where = Span(token.line, column, token.line, column + 1)
            raise _BadLiteral(where, f"syntax: invalid escape character '\\{escape}'")
    return bytes(out)


def _error_span(source: Source, error: UnexpectedInput) -> Span:
    if isinstance(error, UnexpectedCharacters) and error.char == '"':
        end = len(source.text.split("\n")[error.line - 1]) + 1
        return Span(error.line, end, error.line, end)  # where the closing quote is missing
    if _at_open_comment(source, error):
        return Span(error.line, error.column, error.line, error.column + 2)
    token = getattr(error, "token", None)
    if isinstance(token, Token) and token.type != "$END" and token.end_column is not None:
        return _span(token)
    if isinstance(error, UnexpectedEOF) or (isinstance(token, Token) and token.type == "$END"):
        return _end_of_text(source)
    return Span(error.line, error.column, error.line, error.column + 1)


def _at_open_comment(source: Source, error: UnexpectedInput) -> bool:
    """Whether the parser stopped at a `/*` (one with no `*/` after it: the comment would be skipped)."""
    token = getattr(error, "token", None)
    position = token.start_pos if isinstance(token, Token) and token.start_pos is not None else error.pos_in_stream
    return position is not None and source.text.startswith("/*", position)


def _end_of_text(source: Source) -> Span:
    lines = source.text.rstrip("\n").split("\n")
    column = len(lines[-1]) + 1
    return Span(len(lines), column, len(lines), column)


def _syntax_message(source: Source, error: UnexpectedInput) -> str:
    if _at_open_comment(source, error):
        return "syntax: unterminated comment"
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
