"""bpfrun: attach and run a bundle compiled by bpftc (the privileged half of bpftrace).

    bpfrun [-v] [-f text|json] BUNDLE [ARGUMENTS]...
        BUNDLE '-' reads the bundle from stdin; -v shows libbpf's log; ARGUMENTS are the
        program's positional parameters ($1...)

The steps, one module each: read → verify → load → attach → run → print (maps.py reads the maps
into the value model of values.py, output.py renders it). Exit status: the program's exit() code
(0 without one); 1 for a user error, printed as one line `bpfrun: ERROR: ...` on stderr; 2 for a
bug in bpfrun, printed as `BUG: ...`.
"""

from __future__ import annotations

import io
import os
import sys

from bpfrun.errors import UserError
from common.record import record


def _click_command():
    """The command line as click sees it: --help, usage errors and the rarer forms. Built only
    when _fast_arguments cannot take the command line (click's import is ~25 ms of the start)."""
    import click

    # Everything after BUNDLE is the program's (allow_interspersed_args): `bpfrun x.bpfb -5` passes -5.
    @click.command(context_settings={"help_option_names": ["-h", "--help"], "allow_interspersed_args": False})
    @click.option("-v", "--verbose", is_flag=True, help="Show libbpf's log on stderr.")
    @click.option("-f", "output_format", type=click.Choice(["text", "json"]), default="text", help="Output format.")
    @click.option("--unsafe", is_flag=True, help="Allow a bundle that runs commands (system()).")
    @click.option(
        "-p", "pid", type=click.IntRange(min=1), help="Trace only this process (not begin, end, self, interval)."
    )
    @click.option("-c", "command", metavar="CMD", help="Run CMD, trace it, and stop when it exits (cpid is its pid).")
    @click.option("-o", "output_file", metavar="FILE", help="Write the output to FILE instead of stdout.")
    @click.option("-q", "quiet", is_flag=True, help="Do not print the attached-probes line.")
    @click.option(
        "-B",
        "buffering",
        type=click.Choice(["none", "line", "full"]),
        help="Output buffering (default: full, line on a terminal).",
    )
    @click.option(
        "--check",
        "check",
        is_flag=True,
        help="List what this host lacks for BUNDLE (exit 3 if anything); load nothing.",
    )
    @click.option("--json", "check_json", is_flag=True, help="With --check: the result as one JSON object.")
    @click.option("--trust", metavar="PUBKEY", help="Run only bundles signed by this ed25519 public key (PEM).")
    @click.option(
        "-l", "list_probes", is_flag=True, help="List what this host can attach to (BUNDLE is then a PATTERN)."
    )
    @click.option(
        "--describe-target", "describe", is_flag=True, help="Describe this host for `bpftc --target` (JSON on stdout)."
    )
    @click.argument("bundle_path", metavar="BUNDLE", required=False)
    @click.argument("arguments", metavar="[ARGUMENTS]...", nargs=-1, type=click.UNPROCESSED)
    def cli(
        bundle_path: str | None,
        arguments: tuple[str, ...],
        list_probes: bool,
        describe: bool,
        check: bool,
        check_json: bool,
        **options: object,
    ) -> int:
        """Run the bpftrace program compiled into BUNDLE, with its positional parameters ($1...),
        until it exits or is interrupted."""
        if list_probes:
            return _list(bundle_path)
        if describe:
            return _describe()
        if bundle_path == "inspect":  # bpfrun inspect [--json] BUNDLE (a bundle named so: ./inspect)
            return _inspect(arguments)
        if check:
            return _check(bundle_path, (*arguments, "--json") if check_json else arguments, options.get("trust"))
        if check_json:
            raise click.UsageError("--json goes with --check (the trace's own output in JSON is -f json)")
        if bundle_path is None:
            raise click.UsageError("Missing argument 'BUNDLE'.")
        return _main(bundle_path, Options(arguments=arguments, **options))

    return cli


# The run path's options that _fast_arguments takes: flags, and options with one value (its
# accepted values when click checks a choice).
_FLAGS = {"-v": "verbose", "--verbose": "verbose", "--unsafe": "unsafe", "-q": "quiet"}
_VALUED = {
    "-f": "output_format",
    "-p": "pid",
    "-c": "command",
    "-o": "output_file",
    "-B": "buffering",
    "--trust": "trust",
}
_CHOICES = {"output_format": ("text", "json"), "buffering": ("none", "line", "full")}


def _fast_arguments(argv: list[str]) -> tuple[str, Options] | None:
    """The command line `bpfrun [OPTIONS] BUNDLE [ARGUMENTS]...` in its plain forms (each option a
    word of its own, its value the next word), as click would parse it; None for anything else
    (--help, -l, --check, inspect, an unknown or malformed option...), which click then parses,
    so that every message and the help text are click's."""
    options: dict[str, object] = {}
    i = 0
    while i < len(argv):
        word = argv[i]
        if word[:1] != "-" or word == "-":
            if word == "inspect":
                return None
            return word, Options(arguments=tuple(argv[i + 1 :]), **options)
        if word in _FLAGS:
            options[_FLAGS[word]] = True
            i += 1
            continue
        name = _VALUED.get(word)
        if name is None or i + 1 == len(argv):
            return None
        value = argv[i + 1]
        if value[:1] == "-" or (name in _CHOICES and value not in _CHOICES[name]):
            return None
        if name == "pid":
            if not (value.isascii() and value.isdigit() and int(value) >= 1):
                return None
            value = int(value)
        options[name] = value
        i += 2
    return None


CHECK_FAILED = 3  # bpfrun --check: the host lacks something the bundle needs


def _check(path: str | None, arguments: tuple[str, ...], trust: str | None) -> int:
    import json

    import click

    from bpfrun.preflight import host_problems
    from bpfrun.read import read_bundle
    from bpfrun.verify import verify
    from bpfrun.verify_object import verify_object

    if path is None:
        raise click.UsageError("bpfrun --check [--json] BUNDLE")
    try:
        bundle = read_bundle(path, trust)
        verify(bundle.resources, allow_unsafe=True)
        verify_object(bundle.resources, bundle.elf)
        problems = host_problems(bundle.resources)
    except UserError as error:
        sys.stderr.write(f"bpfrun: ERROR: {error}\n")
        return 1
    if "--json" in arguments:
        sys.stdout.write(json.dumps({"ok": not problems, "missing": problems}) + "\n")
    else:
        sys.stdout.write(
            "".join(f"missing: {problem}\n" for problem in problems) or "ok: this host has what the bundle needs\n"
        )
    return CHECK_FAILED if problems else 0


def _inspect(arguments: tuple[str, ...]) -> int:
    import json

    import click

    from bpfrun import inspect

    as_json = "--json" in arguments
    paths = [argument for argument in arguments if argument != "--json"]
    if len(paths) != 1:
        raise click.UsageError("bpfrun inspect [--json] BUNDLE")
    try:
        description = inspect.describe(paths[0])
    except UserError as error:
        sys.stderr.write(f"bpfrun: ERROR: {error}\n")
        return 1
    sys.stdout.write(json.dumps(description) + "\n" if as_json else inspect.text(description))
    return 0


def _describe() -> int:
    from bpfrun.target import describe_target

    try:
        sys.stdout.write(describe_target())
    except UserError as error:
        sys.stderr.write(f"bpfrun: ERROR: {error}\n")
        return 1
    return 0


def _list(pattern: str | None) -> int:
    try:
        from bpfrun.listing import list_probes

        for probe in list_probes(pattern):
            sys.stdout.write(probe + "\n")
    except UserError as error:
        print(f"bpfrun: ERROR: {error}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


@record(frozen=True)
class Options:
    verbose: bool = False
    output_format: str = "text"
    unsafe: bool = False
    pid: int | None = None
    command: str | None = None
    output_file: str | None = None
    quiet: bool = False
    buffering: str | None = None
    trust: str | None = None
    arguments: tuple[str, ...] = ()


def main() -> None:
    """The console script; usage errors are user errors too: one line, exit 1."""
    fast = _fast_arguments(sys.argv[1:])
    if fast is not None:
        sys.exit(_main(*fast))
    import click

    try:
        status = _click_command().main(standalone_mode=False)
    except click.ClickException as error:
        print(f"bpfrun: ERROR: {error.format_message()}", file=sys.stderr)
        sys.exit(1)
    except click.exceptions.Abort:
        sys.exit(1)
    sys.exit(status)


def _main(path: str, options: Options) -> int:
    try:
        return _run(path, options)
    except UserError as error:
        print(f"bpfrun: ERROR: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # only before the stop flag's handlers are installed
        return 130
    except BrokenPipeError:
        # The reader of our output went away (`bpfrun x | head`): stop quietly, and keep Python's
        # final flush of stdout from failing again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except Exception as error:  # noqa: BLE001 (a bug: one line, never a traceback)
        print(f"BUG: {type(error).__name__}: {error}", file=sys.stderr)
        return 2


def _run(path: str, options: Options) -> int:
    import contextlib

    # Imported here so that even a missing libbpf.so.1 is reported as one line. What only some
    # bundles or options need (-c, kernel fields, stacks) is imported where it is used: every
    # module costs start-up time.
    from bpfrun import libbpf
    from bpfrun.attach import (
        attach_probes,
        attachable,
        record_probe_names,
        record_usdt_specs,
    )
    from bpfrun.events import Context, EventHandler
    from bpfrun.load import load
    from bpfrun.maps import possible_cpus
    from bpfrun.output import Output
    from bpfrun.parameters import check_options, globals_data, split_arguments, with_rates
    from bpfrun.read import read_bundle
    from bpfrun.run import Events, StopFlag, run_begin, run_end, run_until_stopped
    from bpfrun.verify import verify
    from bpfrun.verify_object import verify_object
    from common.schema import SIGNAL

    stop = StopFlag()
    stop.install()
    if options.verbose:
        import logging

        logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    log = libbpf.capture_log(options.verbose)
    bundle = read_bundle(path, options.trust)
    resources = bundle.resources
    verify(resources, options.unsafe)
    verify_object(resources, bundle.elf)
    if any(probe.provider == SIGNAL for probe in resources.probes):
        stop.install_user_signal()
    if options.pid is not None and not os.path.exists(f"/proc/{options.pid}"):
        raise UserError(f"no process with pid {options.pid}")
    ncpus = possible_cpus()
    with contextlib.ExitStack() as stack:
        output = Output(
            options.output_format, _output_stream(options, stack), sys.stderr.buffer, _line_buffered(options)
        )
        command = None
        if options.command:
            from bpfrun.command import Command

            command = Command(options.command)
            stack.callback(command.stop)
        target = options.pid or 0
        child = command.pid if command else 0
        data = b""
        arguments, named = split_arguments(options.arguments)
        values = check_options(resources.options, named)
        rated = with_rates(resources.probes, arguments)
        if resources.globals is not None:
            data = globals_data(resources.globals, arguments, ncpus, target, child, values, rated)
        probes = attachable(rated, resources.missing_probes)
        requirements = resources.requirements
        if requirements.kernel_fields or requirements.kernel_layouts:
            from bpfrun.preflight import check_kernel_fields

            check_kernel_fields(requirements.kernel_fields, requirements.kernel_layouts)
        loaded = load(bundle, stack, log, data, {probe.program for probe in probes})
        record_probe_names(loaded, resources.probe_names_map, probes)
        record_usdt_specs(loaded, resources.usdt_spec_map, probes)
        if resources.stack_map:
            from bpfrun.stacks import use_stack_map

            use_stack_map(loaded.map_fds[resources.stack_map])
        context = Context(resources.maps, loaded.map_fds, ncpus)
        handler = EventHandler(resources.events, context, output)
        events = Events(loaded, resources, handler, output, stack, stop)
        run_begin(loaded, resources)
        links = attach_probes(loaded, probes, stack)
        if not options.quiet:
            output.attached(len(probes))
        if command is not None:
            command.release()
        run_until_stopped(events, resources, stop, command.finished if command else None)
        links.close()  # bpftrace detaches before END: END and the printout see final maps
        events.drain_all()  # what the probes sent before they were detached
        run_end(loaded, resources, events)
        # Without print_maps_on_exit bpftrace still ends its text output with the two newlines.
        output.maps_at_exit(context.read_all() if resources.print_maps_on_exit else [])
        output.flush()
        return events.exit_code


def _output_stream(options: Options, stack) -> io.BufferedIOBase:
    if options.output_file is None:
        return sys.stdout.buffer
    try:
        return stack.enter_context(open(options.output_file, "wb"))
    except OSError as error:
        raise UserError(f"cannot write {options.output_file}: {error.strerror}") from None


def _line_buffered(options: Options) -> bool:
    """-B line and none flush after every event; full (the default off a terminal) per batch."""
    if options.buffering is not None:
        return options.buffering != "full"
    return options.output_file is None and sys.stdout.isatty()


if __name__ == "__main__":
    main()
