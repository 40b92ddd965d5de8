"""Shared test set-up."""

# bpftc puts llvmlite in opaque-pointer mode when first imported, which must happen before anything
# imports llvmlite (tests/bpfrun_elf.py does, to build objects the compiler would never emit).
import bpftc  # noqa: F401
