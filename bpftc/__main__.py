"""bpftc: compile a bpftrace script into a bundle for bpfrun. Needs no privileges.

    bpftc FILE -o OUT        bpftc -e 'PROGRAM' -o OUT        bpftc - (script on stdin)
    -o - writes the bundle to stdout.

Exit status: 0 compiled, 1 the script has errors, 2 a bug in bpftc.
"""

from __future__ import annotations

import sys

import click

from bpftc.diagnostics import render
from bpftc.pipeline import compile_source
from bpftc.source import Source


def main() -> None:
    """Run the command line; usage errors are user errors (exit 1), like script errors."""
    try:
        compile_command.main(standalone_mode=False)
    except _UserError as error:
        click.echo(f"bpftc: ERROR: {error}", err=True)
        sys.exit(1)
    except click.ClickException as error:
        error.show()
        sys.exit(1)
    except click.exceptions.Abort:
        sys.exit(1)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("script", required=False, type=click.Path(dir_okay=False, allow_dash=True))
@click.option("-e", "program", metavar="PROGRAM", help="Compile PROGRAM instead of a script file.")
@click.option("-o", "output", metavar="OUT", help="Write the bundle to OUT ('-' for stdout).")
@click.option("--dump", type=click.Choice(["parse", "resources", "generate"]), help="Print a stage's result and stop.")
def compile_command(script: str | None, program: str | None, output: str | None, dump: str | None) -> None:
    """Compile a bpftrace SCRIPT (a file, or - for stdin) into a bundle for bpfrun."""
    source = _read_source(script, program)
    try:
        result = compile_source(source, dump=dump)
    except RecursionError:  # the passes recurse over the tree: thousands of nested operators
        raise _UserError(f"{source.name}: expressions are nested too deeply") from None
    except Exception as error:  # a bug: say so plainly, without a traceback
        click.echo(f"BUG: bpftc failed on {source.name}: {type(error).__name__}: {error}", err=True)
        sys.exit(2)
    sys.stderr.write(render(source, result.diagnostics))
    if result.diagnostics.has_errors:
        sys.exit(1)
    if result.dump is not None:
        click.echo(result.dump)
        return
    _write_bundle(result.bundle, output or _default_output(script))


class _UserError(Exception):
    """A problem outside the script's text (a file, a limit): one line for the user."""


def _read_source(script: str | None, program: str | None) -> Source:
    if (script is None) == (program is None):
        raise click.UsageError("give either a SCRIPT file or -e PROGRAM")
    if program is not None:
        return Source("stdin", program)  # bpftrace names -e programs 'stdin' in its messages
    if script == "-":
        return Source("stdin", sys.stdin.read())
    try:
        with open(script, encoding="utf-8") as file:
            return Source(script, file.read())
    except OSError as error:
        raise _UserError(f"cannot read {script}: {error.strerror}") from None
    except UnicodeDecodeError:
        raise _UserError(f"cannot read {script}: it is not UTF-8 text") from None


def _default_output(script: str | None) -> str:
    if script in (None, "-"):
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
