"""The C preprocessor lines bpftrace scripts carry (bpftrace runs clang's preprocessor over them):
source text in, source text out, with the same lines, so that every location stays true.

- `#!...` on the first line (a script run as a program) is dropped;
- `#include <...>` is dropped: the types come from BTF (bpftc/kernel.py), as they do for
  bpftrace when the kernel has BTF, which is why the scripts guard their includes with
  `#ifndef BPFTRACE_HAVE_BTF`;
- `#if`/`#ifdef`/`#ifndef`/`#elif`/`#else`/`#endif` keep the lines of the branch taken, where
  `defined(NAME)`, integers, `!`, `&&` and `||` decide (BPFTRACE_HAVE_BTF is defined);
- `#define NAME TEXT` and `#undef NAME`: NAME is replaced by TEXT after it, outside strings and
  comments (macros with parameters are not supported yet).

A directive line, and a line left out by a condition, becomes an empty line.
"""

from __future__ import annotations

import re

from bpftc.diagnostics import Diagnostics
from bpftc.source import Source, Span

PREDEFINED = {"BPFTRACE_HAVE_BTF": "1"}
_DIRECTIVE = re.compile(r"\s*#\s*(\w+)\s*(.*)")
_DEFINE = re.compile(r"([A-Za-z_]\w*)(\(?)\s*(.*)")
# What macro substitution skips: string literals and comments; then the identifiers it looks at.
_TOKENS = re.compile(r'"(?:\\.|[^"\\\n])*"|//[^\n]*|/\*.*?\*/|[A-Za-z_]\w*|.', re.S)
MAX_EXPANSIONS = 64  # nested macro replacements of one line


class _Error(Exception):
    def __init__(self, line: int, message: str) -> None:
        self.line, self.message = line, message


def preprocess(source: Source, diagnostics: Diagnostics) -> Source:
    """`source` with its directives applied; errors are reported at their line."""
    if "#" not in source.text:
        return source
    try:
        return Source(source.name, "\n".join(_Preprocessor().lines(source.text.split("\n"))))
    except _Error as error:
        line = source.text.split("\n")[error.line - 1]
        diagnostics.error(Span(error.line, 1, error.line, len(line) + 1), error.message)
        return source


class _Preprocessor:
    def __init__(self) -> None:
        self.macros = dict(PREDEFINED)
        self.branches: list[tuple[bool, bool, int]] = []  # (taking lines, a branch was taken, line)

    def lines(self, lines: list[str]) -> list[str]:
        out = []
        open_comments = 0  # a '#' line inside a /* comment is text
        for number, line in enumerate(lines, 1):
            directive = _DIRECTIVE.match(line)
            if number == 1 and line.startswith("#!"):
                out.append("")
            elif directive is not None and not open_comments:
                self._directive(number, directive.group(1), _strip_comment(directive.group(2)))
                out.append("")
            elif not self.taking:
                out.append("")
            else:
                out.append(self._substitute(number, line))
            open_comments = max(open_comments + out[-1].count("/*") - out[-1].count("*/"), 0)
        if self.branches:
            raise _Error(self.branches[-1][2], "#if without #endif")
        return out

    @property
    def taking(self) -> bool:
        return all(taking for taking, _, _ in self.branches)

    def _directive(self, number: int, name: str, rest: str) -> None:
        if name in ("if", "ifdef", "ifndef"):
            if not self.taking:  # inside a branch not taken: nothing in it counts
                self.branches.append((False, True, number))
                return
            condition = {"if": lambda: self._evaluate(number, rest), "ifdef": lambda: rest in self.macros,
                         "ifndef": lambda: rest not in self.macros}[name]()  # fmt: skip
            self.branches.append((condition, condition, number))
        elif name in ("elif", "else"):
            if not self.branches:
                raise _Error(number, f"#{name} without #if")
            _, taken, start = self.branches.pop()
            outer = self.taking
            condition = not taken and outer and (name == "else" or self._evaluate(number, rest))
            self.branches.append((condition, taken or condition, start))
        elif name == "endif":
            if not self.branches:
                raise _Error(number, "#endif without #if")
            self.branches.pop()
        elif not self.taking:
            return
        elif name == "include":
            return  # types come from BTF
        elif name == "define":
            self._define(number, rest)
        elif name == "undef":
            self.macros.pop(rest.strip(), None)
        else:
            raise _Error(number, f"The preprocessor directive #{name} is not supported yet")

    def _define(self, number: int, rest: str) -> None:
        found = _DEFINE.fullmatch(rest.strip())
        if found is None:
            raise _Error(number, "#define needs a name")
        name, parameters, text = found.groups()
        if parameters:
            raise _Error(number, f"#define of a macro with parameters ({name}) is not supported yet")
        self.macros[name] = text

    def _substitute(self, number: int, line: str) -> str:
        for _ in range(MAX_EXPANSIONS):
            replaced = "".join(self.macros.get(token, token) for token in _TOKENS.findall(line))
            if replaced == line:
                return line
            line = replaced
        raise _Error(number, "macros expand into each other without end")

    def _evaluate(self, number: int, expression: str) -> bool:
        """An #if condition: defined(NAME), integers and macros naming them, !, &&, ||, ()."""
        text = re.sub(r"defined\s*\(\s*(\w+)\s*\)|defined\s+(\w+)",
                      lambda m: "1" if (m.group(1) or m.group(2)) in self.macros else "0", expression)  # fmt: skip
        text = self._substitute(number, text)
        text = re.sub(r"\b[A-Za-z_]\w*\b", "0", text)  # an unknown name is 0, as in C
        if not re.fullmatch(r"[\s\d()!&|<>=+\-*]*", text) or "**" in text:
            raise _Error(number, f"#if condition bpftc cannot evaluate: {expression}")
        python = text.replace("&&", " and ").replace("||", " or ")
        python = re.sub(r"!(?!=)", " not ", python)
        try:
            return bool(eval(python, {"__builtins__": {}}))  # digits and operators only (checked above)
        except (SyntaxError, ZeroDivisionError, TypeError):
            raise _Error(number, f"#if condition bpftc cannot evaluate: {expression}") from None


def _strip_comment(text: str) -> str:
    return re.sub(r"//.*|/\*.*?\*/", "", text).strip()
