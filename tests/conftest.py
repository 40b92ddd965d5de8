"""Shared test set-up."""

import os

from bpftc import OPAQUE_POINTERS

# As bpftc's command line does, before anything imports llvmlite (tests/bpfrun_elf.py does, to
# build objects the compiler would never emit).
os.environ.setdefault(*OPAQUE_POINTERS)
