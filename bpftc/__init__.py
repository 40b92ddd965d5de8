"""bpftc: the unprivileged bpftrace compiler. The stages are listed in bpftc/pipeline.py.

Code generation uses LLVM's opaque pointers (`ptr`), which llvmlite's IR layer offers when the
environment has LLVMLITE_ENABLE_IR_LAYER_TYPED_POINTERS=0 at its first import: the command line
(bpftc/__main__.py) and the tests set it before anything imports llvmlite.
"""

OPAQUE_POINTERS = ("LLVMLITE_ENABLE_IR_LAYER_TYPED_POINTERS", "0")

VERSION = "0.1.0"  # as pyproject.toml says; bundles name it
