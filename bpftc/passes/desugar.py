"""Desugar: rewrite spellings that mean the same as a core construct, so later passes see one form.

- the original README's 2017 spellings: `quantize(n)` is `hist(n)`; `@m[k] = delete()` is
  `delete(@m, k)`;
- `delete(@m[k])` (deprecated in bpftrace, still accepted) is `delete(@m, k)`;
- compound assignment `x op= e` is `x = x op e`;
- config settings are named in lower case without BPFTRACE_; 0 and 1 are false and true;
  `config.NAME` is the setting's value;
- `assert(condition, "message")` is an if, the error and exit(1);
- `pid()`, `comm()`... with no arguments are the builtins `pid`, `comm`; so are `nsecs(monotonic)`,
  `pid(init)` and `tid(init)`.

Consumes an `ast.Program`; returns a new one (the input is not changed). Reports nothing: the
checker reports what stays wrong.
"""

from __future__ import annotations

import copy

from bpftc import ast
from bpftc.builtins import ASSERT_FAILED, CALLABLE_BUILTINS, CONFIG_DEFAULTS, CONFIG_SETTINGS, DEFAULT_MODES, LEGACY_FUNCTIONS
from bpftc.kernel import syscall_tracepoints


def desugar(program: ast.Program) -> ast.Program:
    settings = {item.name: item.value for item in map(_config_item, program.config)}
    return _Desugar(settings).visit(program)


def _config_item(node: ast.ConfigItem) -> ast.ConfigItem:
    """`BPFTRACE_PRINT_MAPS_ON_EXIT = 0` is `print_maps_on_exit = false`."""
    name = node.name.lower().removeprefix("bpftrace_")
    value = node.value
    if CONFIG_SETTINGS.get(name) is bool and type(value) is int and value in (0, 1):
        value = bool(value)
    return ast.ConfigItem(node.span, name, value)


class _Desugar(ast.Transformer):
    def __init__(self, settings: dict[str, object]) -> None:
        self.settings = settings  # the program's config, as _config_item writes it

    def visit_ConfigItem(self, node: ast.ConfigItem) -> ast.Node:
        return _config_item(node)

    def visit_Builtin(self, node: ast.Builtin) -> ast.Node:
        """`ppid` and `pcomm` are `curtask->real_parent->tgid` and `->comm`, as bpftrace's
        standard library defines them."""
        if node.name not in PARENT_BUILTINS:
            return node
        parent = ast.Field(node.span, ast.Builtin(node.span, "curtask"), "real_parent", arrow=True)
        return ast.Field(node.span, parent, PARENT_BUILTINS[node.name], arrow=True)

    def visit_Probe(self, node: ast.Probe) -> ast.Node:
        """A wildcard of syscall tracepoints in a probe that reads `args`: its tracepoints, listed
        (bpftc/data/syscalls.json), each with a program of its own, since each has its own
        fields (sys_enter_execve's argv is not where sys_enter_execveat's is), as bpftrace does."""
        node = self.generic_visit(node)
        if not any(isinstance(n, ast.Builtin) and n.name == "args" for n in ast.walk(node)):
            return node
        points = [expanded for point in node.attach_points for expanded in _syscall_tracepoints(point)]
        return ast.Probe(node.span, points, node.predicate, node.body)

    def visit_ExprStatement(self, node: ast.ExprStatement) -> ast.Node:
        """`assert(condition, "message")` is `if (!condition) { <error>; exit(1); }`, the error
        being bpftrace's "assert failed: message" at the assert's location."""
        call = node.expr
        if not (isinstance(call, ast.Call) and call.name == "assert" and len(call.args) == 2):
            return self.generic_visit(node)
        condition, message = self.visit(call.args[0]), call.args[1]
        if not isinstance(message, ast.String):
            return self.generic_visit(node)  # check.py reports it
        text = ast.String(message.span, b"assert failed: " + message.value)
        failed = ast.Block(call.span, [
            ast.ExprStatement(call.span, ast.Call(call.span, ASSERT_FAILED, [text])),
            ast.ExprStatement(call.span, ast.Call(call.span, "exit", [ast.Integer(call.span, 1)])),
        ])  # fmt: skip
        return ast.If(node.span, ast.Unop(condition.span, "!", condition), failed, None)

    def visit_Field(self, node: ast.Field) -> ast.Node:
        """`config.max_map_keys` is the setting's value: the program's, else bpftrace's default."""
        operand = node.operand
        if isinstance(operand, ast.Builtin) and operand.name == "config" and node.name in CONFIG_DEFAULTS:
            value = self.settings.get(node.name, CONFIG_DEFAULTS[node.name])
            if type(value) is bool:
                return ast.Bool(node.span, value)
            if type(value) is int:
                return ast.Integer(node.span, value)
        return self.generic_visit(node)

    def visit_Assignment(self, node: ast.Assignment) -> ast.Node:
        value = node.value
        if (
            isinstance(node.target, ast.Map)
            and isinstance(value, ast.Call)
            and value.name == "delete"
            and not value.args
        ):
            return ast.ExprStatement(node.span, _delete(node.span, self.visit(node.target)))
        return self.generic_visit(node)

    def visit_CompoundAssignment(self, node: ast.CompoundAssignment) -> ast.Node:
        target = self.visit(node.target)
        # The read is a node of its own: later passes key types and bindings by node identity.
        value = ast.Binop(node.span, node.op, copy.deepcopy(target), self.visit(node.value))
        return ast.Assignment(node.span, target, value)

    def visit_Call(self, node: ast.Call) -> ast.Node:
        node = self.generic_visit(node)
        if node.name in LEGACY_FUNCTIONS:
            return ast.Call(node.span, LEGACY_FUNCTIONS[node.name], node.args)
        if node.name == "delete" and len(node.args) == 1 and isinstance(node.args[0], ast.Map):
            return _delete(node.span, node.args[0])
        if node.name in CALLABLE_BUILTINS and not node.args:
            return ast.Builtin(node.span, node.name)
        if (
            len(node.args) == 1
            and isinstance(node.args[0], ast.Builtin)
            and (node.name, node.args[0].name) in DEFAULT_MODES
        ):
            return ast.Builtin(node.span, node.name)
        return node


PARENT_BUILTINS = {"ppid": "tgid", "pcomm": "comm"}


def _syscall_tracepoints(point: ast.AttachPoint) -> list[ast.AttachPoint]:
    """`tracepoint:syscalls:sys_enter_exec*` as the syscall tracepoints it matches; any other
    attach point as it is."""
    if point.provider not in ("tracepoint", "t") or len(point.parts) != 2 or point.parts[0] != "syscalls":
        return [point]
    if "*" not in point.parts[1] and "?" not in point.parts[1]:
        return [point]
    events = syscall_tracepoints(point.parts[1])
    return [ast.AttachPoint(point.span, f"tracepoint:syscalls:{event}", "tracepoint", ("syscalls", event))
            for event in events] or [point]  # fmt: skip


def _delete(span, target: ast.Map) -> ast.Call:
    """delete(@m, key) for an access `@m[k1, k2]`; delete(@m) for a map without keys."""
    if not target.keys:
        return ast.Call(span, "delete", [target])
    key = target.keys[0] if len(target.keys) == 1 else ast.Tuple(target.span, list(target.keys))
    return ast.Call(span, "delete", [ast.Map(target.span, target.name, []), key])
