"""bpftc: the unprivileged bpftrace compiler. The stages are listed in bpftc/pipeline.py."""

import os

# Code generation uses opaque pointers (LLVM 15+'s `ptr`). llvmlite's IR layer reads this once, at
# its first import, which is why it is set here, before any bpftc module imports llvmlite.
os.environ["LLVMLITE_ENABLE_IR_LAYER_TYPED_POINTERS"] = "0"
