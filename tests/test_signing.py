"""Signed bundles: bpftc --sign KEY, bpfrun --trust PUBKEY, with ed25519 keys as openssl writes
them. With a trusted key, bpfrun runs only bundles that key signed, checked offline before the
bundle's sections are decoded. The signature covers every byte before it: header and sections."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from common import bundle
from tests.bpfrun_run import BPFTC, needs_bpf, run_bpfrun
from tests.bundle_bytes import with_header, with_section

PROGRAM = 'begin { printf("signed\\n"); exit(); }'


def key_pair(directory: Path, name: str) -> tuple[Path, Path]:
    private, public = directory / f"{name}.pem", directory / f"{name}.pub"
    subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519", "-out", private], check=True, capture_output=True)
    subprocess.run(["openssl", "pkey", "-in", private, "-pubout", "-out", public], check=True, capture_output=True)
    return private, public


def compile_signed(path: Path, key: Path | None) -> Path:
    signing = ["--sign", key] if key else []
    result = subprocess.run([BPFTC, *signing, "-e", PROGRAM, "-o", path], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return path


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, tuple[Path, Path]]:
    return {name: key_pair(tmp_path, name) for name in ("ours", "theirs")}


@needs_bpf
def test_a_bundle_signed_by_the_trusted_key_runs(tmp_path: Path, keys) -> None:
    signed = compile_signed(tmp_path / "s.bpfb", keys["ours"][0])
    result = run_bpfrun("--trust", keys["ours"][1], signed)
    assert (result.returncode, result.stdout) == (0, b"signed\n\n\n"), result.stderr


def test_unsigned_foreign_and_tampered_bundles_are_refused(tmp_path: Path, keys) -> None:
    trust = ("--trust", keys["ours"][1])
    unsigned = compile_signed(tmp_path / "u.bpfb", None)
    result = run_bpfrun(*trust, unsigned)
    assert (result.returncode, result.stderr) == (
        1, b"bpfrun: ERROR: bundle is not signed, and bpfrun was told to trust only signed bundles\n"
    )  # fmt: skip
    foreign = compile_signed(tmp_path / "f.bpfb", keys["theirs"][0])
    result = run_bpfrun(*trust, foreign)
    assert result.returncode == 1 and b"not by the trusted key" in result.stderr and result.stderr.count(b"\n") == 1

    # Tampered: a section or the header changed and the digest recomputed, the signature kept.
    signed = compile_signed(tmp_path / "t.bpfb", keys["ours"][0]).read_bytes()
    signature = signed[bundle.read_header(signed).end :]
    tampered = {
        "source": with_section(signed, "source", b"something else"),
        "compiler": with_header(signed, compiler=b"bpftc 9.9.9"),
        "signature stripped": with_header(signed[: -len(signature)], signature_length=0),
    }
    for name, data in tampered.items():
        (tmp_path / "t.bpfb").write_bytes(data)
        assert bundle.read(data).resources.source  # a valid bundle still, only not the signed one
        result = run_bpfrun(*trust, tmp_path / "t.bpfb")
        expected = (
            b"bpfrun: ERROR: bundle is not signed, and bpfrun was told to trust only signed bundles\n"
            if name == "signature stripped"
            else b"bpfrun: ERROR: bundle's signature does not match its contents (tampered)\n"
        )
        assert (result.returncode, result.stderr) == (1, expected), name


def test_the_signature_is_checked_before_any_section_is_decoded(tmp_path: Path, keys) -> None:
    unsigned = compile_signed(tmp_path / "u.bpfb", None).read_bytes()
    (tmp_path / "u.bpfb").write_bytes(with_section(unsigned, "metadata", b"\xc1"))  # not msgpack
    result = run_bpfrun("--trust", keys["ours"][1], tmp_path / "u.bpfb")
    assert result.stderr == b"bpfrun: ERROR: bundle is not signed, and bpfrun was told to trust only signed bundles\n"


def test_keys_that_cannot_be_used_are_one_line(tmp_path: Path, keys) -> None:
    not_a_key = tmp_path / "not.pem"
    not_a_key.write_text("hello\n")
    compiled = subprocess.run([BPFTC, "--sign", not_a_key, "-e", PROGRAM, "-o", "-"], capture_output=True, text=True)
    assert compiled.returncode == 1 and compiled.stderr.startswith(f"bpftc: ERROR: {not_a_key}: not a PEM private key")
    result = run_bpfrun("--trust", keys["ours"][0], compile_signed(tmp_path / "s.bpfb", keys["ours"][0]))
    assert result.returncode == 1 and result.stderr.startswith(b"bpfrun: ERROR: trusted key ")
    assert result.stderr.count(b"\n") == 1
