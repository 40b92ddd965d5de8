"""The bpftc command line: inputs, outputs, exit statuses, and no traceback on bad input."""

from __future__ import annotations

import subprocess

from common import bundle
from tests.runtime.harness import BIN

PROGRAM = 'BEGIN { printf("hi\\n"); exit(); }'


def bpftc(*args, stdin: bytes = b"", cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([BIN / "bpftc", *args], input=stdin, capture_output=True, cwd=cwd)


def test_program_from_command_line_to_file(tmp_path):
    out = tmp_path / "x.bpfb"
    result = bpftc("-e", PROGRAM, "-o", out)
    assert result.returncode == 0 and result.stderr == b""
    assert bundle.read(out.read_bytes()).resources.source_name == "stdin"


def test_script_from_stdin_to_stdout():
    result = bpftc("-", "-o", "-", stdin=PROGRAM.encode())
    assert result.returncode == 0
    assert bundle.read(result.stdout).resources.probes[0].provider == "begin"


def test_script_file_names_default_output(tmp_path):
    (tmp_path / "hello.bt").write_text(PROGRAM)
    assert bpftc("hello.bt", cwd=tmp_path).returncode == 0
    assert bundle.read((tmp_path / "hello.bpfb").read_bytes()).resources.source_name == "hello.bt"


def test_script_errors_name_the_file_and_exit_1(tmp_path):
    (tmp_path / "bad.bt").write_text("BEGIN\n{\n  @x = nope;\n}\n")
    result = bpftc(tmp_path / "bad.bt", "-o", tmp_path / "bad.bpfb")
    assert result.returncode == 1
    assert result.stderr.decode() == (
        f"{tmp_path}/bad.bt:3:8-12: ERROR: Unknown identifier: 'nope'\n  @x = nope;\n       ~~~~\n"
    )
    assert not (tmp_path / "bad.bpfb").exists()


def test_usage_errors_have_no_traceback(tmp_path):
    for args in [(), ("-e", PROGRAM, "also_a_file.bt"), (tmp_path / "missing.bt",), ("-e", PROGRAM)]:
        result = bpftc(*args)
        assert result.returncode == 1, args
        assert b"Traceback" not in result.stderr
        assert b"Error" in result.stderr or b"ERROR" in result.stderr


def test_binary_input_is_a_diagnostic_not_a_traceback(tmp_path):
    (tmp_path / "binary.bt").write_bytes(b"\x00\xff\xfeBEGIN")
    result = bpftc(tmp_path / "binary.bt", "-o", tmp_path / "x.bpfb")
    assert result.returncode == 1 and b"Traceback" not in result.stderr


def test_dump_stages():
    result = bpftc("-e", "BEGIN { @x = quantize(1); }", "--dump", "parse")
    assert b"Call quantize()" in result.stdout
    result = bpftc("-e", "BEGIN { @x = quantize(1); }", "--dump", "generate")
    assert b'section "raw_tp"' in result.stdout
