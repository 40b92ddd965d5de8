"""bpftc: compile a bpftrace script into a bundle for bpfrun. Needs no privileges.

    bpftc FILE -o OUT        bpftc -e 'PROGRAM' -o OUT        bpftc - (script on stdin)
    -o - writes the bundle to stdout; --dump STAGE prints what a stage produced and stops.

Exit status: 0 compiled, 1 the script has errors, 2 a bug in bpftc.
"""

from __future__ import annotations

import os
import stat
import sys
import threading

from bpftc import OPAQUE_POINTERS
from bpftc.pipeline import STAGES
from bpftc.source import Source

# The passes recurse over the tree: give them room for deeply nested (but valid) programs. The
# parser refuses nesting beyond bpftc.parse.MAX_NESTING with a diagnostic.
_RECURSION_LIMIT = 20_000
_THREAD_STACK_BYTES = 512 << 20
_DEFAULT_BTF = "/sys/kernel/btf/vmlinux"


def main() -> None:
    """Run the command line; usage errors are user errors (exit 1), like script errors."""
    os.environ.setdefault(*OPAQUE_POINTERS)
    fast = _fast_arguments(sys.argv[1:])
    if fast is not None:
        try:
            _compile(**fast)
        except _UserError as error:
            sys.stderr.write(f"bpftc: ERROR: {error}\n")
            sys.exit(1)
        return
    import click

    try:
        _click_command().main(standalone_mode=False)
    except _UserError as error:
        click.echo(f"bpftc: ERROR: {error}", err=True)
        sys.exit(1)
    except click.ClickException as error:
        error.show()
        sys.exit(1)
    except click.exceptions.Abort:
        sys.exit(1)


def _click_command():
    """The command line as click sees it: --help, --dump, usage errors and the rarer forms. Built
    only when _fast_arguments cannot take the command line (click's import is ~30 ms of CPU)."""
    import click

    @click.command(context_settings={"help_option_names": ["-h", "--help"]})
    @click.argument("script", required=False, type=click.Path(dir_okay=False, allow_dash=True))
    @click.option("-e", "program", metavar="PROGRAM", help="Compile PROGRAM instead of a script file.")
    @click.option("-o", "output", metavar="OUT", help="Write the bundle to OUT ('-' for stdout).")
    @click.option("--dump", type=click.Choice(STAGES), help="Print a stage's result and stop.")
    @click.option("--unsafe", is_flag=True, help="Allow functions that act outside tracing, such as system().")
    @click.option(
        "--btf",
        metavar="FILE",
        default=_DEFAULT_BTF,
        help="Kernel BTF that struct layouts come from (the target kernel's; default: this host's).",
    )
    @click.option(
        "--target",
        "target_file",
        metavar="FILE",
        help="Compile for the kernel described in FILE (written there by `bpfrun --describe-target`).",
    )
    @click.option("--sign", "key_file", metavar="KEY", help="Sign the bundle with this ed25519 private key (PEM).")
    def compile_command(**arguments) -> None:
        """Compile a bpftrace SCRIPT (a file, or - for stdin) into a bundle for bpfrun."""
        _compile(**arguments)

    return compile_command


# What _fast_arguments takes: the flag, and the options with one value.
_VALUED = {"-e": "program", "-o": "output", "--btf": "btf", "--target": "target_file", "--sign": "key_file"}


def _fast_arguments(argv: list[str]) -> dict | None:
    """The command line `bpftc [OPTIONS] SCRIPT|-e PROGRAM` in its plain forms (each option a word
    of its own, its value the next word), as click would parse it, when it compiles; None for
    anything else (--help, --dump, a usage error, an unreadable SCRIPT...), which click then
    parses, so that every message and the help text are click's."""
    found: dict = {"script": None, "program": None, "output": None, "dump": None, "unsafe": False,
                   "btf": _DEFAULT_BTF, "target_file": None, "key_file": None}  # fmt: skip
    i = 0
    while i < len(argv):
        word = argv[i]
        if word == "--unsafe":
            found["unsafe"] = True
            i += 1
        elif word in _VALUED:
            if i + 1 == len(argv) or argv[i + 1][:1] == "-":
                return None
            found[_VALUED[word]] = argv[i + 1]
            i += 2
        elif word[:1] != "-" or word == "-":
            if found["script"] is not None:
                return None
            found["script"] = word
            i += 1
        else:
            return None
    script = found["script"]
    if (script is None) == (found["program"] is None):
        return None
    if found["output"] is None and script in (None, "-"):
        return None
    if script not in (None, "-"):
        try:
            mode = os.stat(script).st_mode
        except OSError:
            return None
        if stat.S_ISDIR(mode) or not os.access(script, os.R_OK):
            return None
    return found


def _compile(
    script: str | None,
    program: str | None,
    output: str | None,
    dump: str | None,
    unsafe: bool,
    btf: str,
    target_file: str | None,
    key_file: str | None,
) -> None:
    source = _read_source(script, program)
    target = _read_target(target_file) if target_file else None
    key = _read_signing_key(key_file) if key_file else None
    result = _compile_with_room(source, dump, unsafe, btf, target, key)
    if isinstance(result, BaseException):  # a bug: say so plainly, without a traceback
        import click

        click.echo(f"BUG: bpftc failed on {source.name}: {type(result).__name__}: {result}", err=True)
        sys.exit(2)
    from bpftc.diagnostics import render

    sys.stderr.write(render(source, result.diagnostics))
    if result.diagnostics.has_errors:
        sys.exit(1)
    if result.dump is not None:
        import click

        click.echo(result.dump, nl=False)
        return
    _write_bundle(result.bundle, output or _default_output(script))


def _read_target(path: str):
    from common.target import TargetError, from_json

    try:
        with open(path, encoding="utf-8") as file:
            return from_json(file.read((64 << 20) + 1))
    except OSError as error:
        raise _UserError(f"cannot read {path}: {error.strerror}") from None
    except (TargetError, UnicodeDecodeError) as error:
        raise _UserError(f"{path} is not a target description bpftc can use: {error}") from None


def _read_signing_key(path: str):
    from common import signing

    try:
        return signing.read_key(path, private=True)
    except signing.SignatureError as error:
        raise _UserError(str(error)) from None


def _compile_with_room(source: Source, dump: str | None, unsafe: bool, btf: str, target, key):
    """compile_source in a thread with a large stack; returns its Result or the exception."""
    from bpftc.pipeline import compile_source

    outcome: list = []

    def run() -> None:
        try:
            outcome.append(compile_source(source, dump=dump, unsafe=unsafe, btf=btf, target=target, signing_key=key))
        except BaseException as error:  # noqa: BLE001 (handed back to the caller)
            outcome.append(error)

    sys.setrecursionlimit(_RECURSION_LIMIT)
    threading.stack_size(_THREAD_STACK_BYTES)
    worker = threading.Thread(target=run)
    worker.start()
    worker.join()
    return outcome[0]


class _UserError(Exception):
    """A problem outside the script's text (a file, a limit): one line for the user."""


def _read_source(script: str | None, program: str | None) -> Source:
    if (script is None) == (program is None):
        import click

        raise click.UsageError("give either a SCRIPT file or -e PROGRAM")
    if program is not None:
        # bpftrace names -e programs 'stdin' in its messages. Bytes that are not UTF-8 reach us as
        # surrogate escapes: refuse them here rather than echo them back.
        try:
            program.encode("utf-8")
        except UnicodeEncodeError:
            raise _UserError("the program given with -e is not UTF-8 text") from None
        return Source("stdin", program)
    try:
        if script == "-":
            return Source("stdin", sys.stdin.buffer.read().decode("utf-8"))
        with open(script, encoding="utf-8") as file:
            return Source(script, file.read())
    except OSError as error:
        raise _UserError(f"cannot read {script}: {error.strerror}") from None
    except UnicodeDecodeError:
        raise _UserError(f"cannot read {script}: it is not UTF-8 text") from None


def _default_output(script: str | None) -> str:
    if script in (None, "-"):
        import click

        raise click.UsageError("give -o OUT when the script comes from -e or stdin")
    stem = script.rsplit("/", 1)[-1].removesuffix(".bt")
    return f"{stem}.bpfb"


def _write_bundle(data: bytes, output: str) -> None:
    if output == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    try:
        with open(output, "wb") as file:
            file.write(data)
    except OSError as error:
        raise _UserError(f"cannot write {output}: {error.strerror}") from None


if __name__ == "__main__":
    main()
