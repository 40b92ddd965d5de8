"""Every foreign call bpfrun makes: libbpf (system libbpf.so.1, 1.1) and a few libc functions.

This module holds the ctypes prototypes (argtypes and restype of every function we call), the
structures passed to them, and libbpf's log hook. It has no policy: callers check results and turn
failures into errors (the one exception: a missing libbpf.so.1 is a `UserError` at import time,
so that bpfrun reports it in one line). Error convention of libbpf 1.x: functions returning a pointer return NULL
and set errno; functions returning int return a negative errno.

The libbpf log is captured by `capture_log()`: its warnings are kept (load.py summarises the
verifier's complaint from them); with -v every message is kept and written to the `bpfrun.libbpf` logger.
"""

from __future__ import annotations

import ctypes
from ctypes import (
    CFUNCTYPE,
    POINTER,
    Structure,
    c_bool,
    c_char_p,
    c_int,
    c_long,
    c_size_t,
    c_uint,
    c_uint32,
    c_uint64,
    c_ulong,
    c_void_p,
)

from bpfrun.errors import UserError


try:
    lib = ctypes.CDLL("libbpf.so.1", use_errno=True)
except OSError as error:
    raise UserError(f"cannot load libbpf: {error}") from None
libc = ctypes.CDLL(None, use_errno=True)


class bpf_test_run_opts(Structure):  # noqa: N801 (libbpf's name)
    _fields_ = [
        ("sz", c_size_t),
        ("data_in", c_void_p),
        ("data_out", c_void_p),
        ("data_size_in", c_uint32),
        ("data_size_out", c_uint32),
        ("ctx_in", c_void_p),
        ("ctx_out", c_void_p),
        ("ctx_size_in", c_uint32),
        ("ctx_size_out", c_uint32),
        ("retval", c_uint32),
        ("repeat", c_int),
        ("duration", c_uint32),
        ("flags", c_uint32),
        ("cpu", c_uint32),
        ("batch_size", c_uint32),
    ]


class bpf_uprobe_opts(Structure):  # noqa: N801 (libbpf's name)
    """libbpf 1.1's struct bpf_uprobe_opts (later versions add fields; `sz` tells which)."""

    _fields_ = [
        ("sz", c_size_t),
        ("ref_ctr_offset", c_size_t),
        ("bpf_cookie", c_uint64),
        ("retprobe", c_bool),
        ("func_name", c_char_p),
    ]


class bpf_kprobe_opts(Structure):  # noqa: N801 (libbpf's name)
    """libbpf 1.1's struct bpf_kprobe_opts."""

    _fields_ = [("sz", c_size_t), ("bpf_cookie", c_uint64), ("offset", c_size_t), ("retprobe", c_bool)]


class bpf_tracepoint_opts(Structure):  # noqa: N801 (libbpf's name)
    _fields_ = [("sz", c_size_t), ("bpf_cookie", c_uint64)]


class perf_event_attr(Structure):  # noqa: N801 (the kernel's name)
    """The first PERF_ATTR_SIZE_VER1 (72) bytes of struct perf_event_attr; the kernel accepts
    any published size and treats the fields we leave out as zero."""

    _fields_ = [
        ("type", c_uint32),
        ("size", c_uint32),
        ("config", c_uint64),
        ("sample_period", c_uint64),  # union with sample_freq
        ("sample_type", c_uint64),
        ("read_format", c_uint64),
        ("flags", c_uint64),  # bit field: disabled:1, inherit:1, ... freq is bit 10
        ("wakeup_events", c_uint32),
        ("bp_type", c_uint32),
        ("config1", c_uint64),
        ("config2", c_uint64),
    ]


PERF_TYPE_HARDWARE = 0
PERF_TYPE_SOFTWARE = 1
PERF_COUNT_SW_CPU_CLOCK = 0
SYS_PERF_EVENT_OPEN = 298  # x86_64; verify.py refuses bundles for other architectures

BPF_MAP_TYPE_HASH = 1
BPF_MAP_TYPE_PERCPU_HASH = 5
BPF_MAP_TYPE_PERCPU_ARRAY = 6
BPF_MAP_TYPE_LRU_HASH = 9
BPF_MAP_TYPE_LRU_PERCPU_HASH = 10
BPF_MAP_TYPE_RINGBUF = 27
BPF_MAP_TYPE_STACK_TRACE = 7

# int (*)(enum libbpf_print_level level, const char *format, va_list args)
# va_list is an array type on x86_64, so it arrives as a pointer that vsnprintf accepts as is.
_VA_LIST_SIZE = 24  # sizeof(va_list) on x86_64
PRINT_FN = CFUNCTYPE(c_int, c_int, c_char_p, c_void_p)


def _prototype(library: ctypes.CDLL, name: str, restype: object, *argtypes: object) -> None:
    function = getattr(library, name)
    function.restype = restype
    function.argtypes = list(argtypes)


_prototype(lib, "libbpf_get_error", c_long, c_void_p)
_prototype(lib, "libbpf_set_print", c_void_p, PRINT_FN)
_prototype(lib, "libbpf_num_possible_cpus", c_int)
_prototype(lib, "libbpf_probe_bpf_helper", c_int, c_int, c_int, c_void_p)  # 1: the kernel has it
_prototype(lib, "bpf_program__set_autoload", c_int, c_void_p, ctypes.c_bool)
_prototype(lib, "bpf_object__open_mem", c_void_p, c_void_p, c_size_t, c_void_p)
_prototype(lib, "bpf_object__load", c_int, c_void_p)
_prototype(lib, "bpf_object__close", None, c_void_p)
_prototype(lib, "bpf_object__find_program_by_name", c_void_p, c_void_p, c_char_p)
_prototype(lib, "bpf_object__find_map_by_name", c_void_p, c_void_p, c_char_p)
_prototype(lib, "bpf_program__fd", c_int, c_void_p)
_prototype(lib, "bpf_program__attach_tracepoint_opts", c_void_p, c_void_p, c_char_p, c_char_p, c_void_p)
_prototype(lib, "bpf_program__attach_kprobe_opts", c_void_p, c_void_p, c_char_p, POINTER(bpf_kprobe_opts))
_prototype(lib, "bpf_program__attach_perf_event", c_void_p, c_void_p, c_int)
_prototype(lib, "bpf_program__attach_raw_tracepoint", c_void_p, c_void_p, c_char_p)
_prototype(lib, "bpf_program__attach_trace", c_void_p, c_void_p)
_prototype(lib, "btf__load_vmlinux_btf", c_void_p)
_prototype(lib, "btf__load_module_btf", c_void_p, c_char_p, c_void_p)
_prototype(lib, "btf__find_by_name_kind", c_int, c_void_p, c_char_p, c_uint32)
_prototype(lib, "btf__free", None, c_void_p)
BTF_KIND_FUNC = 12
_prototype(
    lib, "bpf_program__attach_uprobe_opts", c_void_p, c_void_p, c_int, c_char_p, c_size_t, POINTER(bpf_uprobe_opts)
)
_prototype(lib, "bpf_link__destroy", c_int, c_void_p)
_prototype(lib, "bpf_map__fd", c_int, c_void_p)
_prototype(lib, "bpf_map__initial_value", c_void_p, c_void_p, POINTER(c_size_t))
_prototype(lib, "bpf_map__type", c_int, c_void_p)
_prototype(lib, "bpf_map__key_size", c_uint32, c_void_p)
_prototype(lib, "bpf_map__value_size", c_uint32, c_void_p)
_prototype(lib, "bpf_map__max_entries", c_uint32, c_void_p)
_prototype(lib, "bpf_map__set_max_entries", c_int, c_void_p, c_uint32)
_prototype(lib, "bpf_map_get_next_key", c_int, c_int, c_void_p, c_void_p)
_prototype(lib, "bpf_map_lookup_elem", c_int, c_int, c_void_p, c_void_p)
# int (int fd, void *in_batch, void *out_batch, void *keys, void *values, __u32 *count, opts)
_prototype(lib, "bpf_map_lookup_batch", c_int, c_int, c_void_p, c_void_p, c_void_p, c_void_p, POINTER(c_uint32), c_void_p)
_prototype(lib, "bpf_map_update_elem", c_int, c_int, c_void_p, c_void_p, c_uint64)
_prototype(lib, "bpf_map_delete_elem", c_int, c_int, c_void_p)
_prototype(lib, "bpf_prog_test_run_opts", c_int, c_int, POINTER(bpf_test_run_opts))

_prototype(libc, "vsnprintf", c_int, c_char_p, c_size_t, c_char_p, c_void_p)
_prototype(libc, "mount", c_int, c_char_p, c_char_p, c_char_p, c_ulong, c_void_p)
# long syscall(SYS_perf_event_open, struct perf_event_attr *, pid_t, int cpu, int group_fd, ulong)
_prototype(libc, "syscall", c_long, c_long, POINTER(perf_event_attr), c_int, c_int, c_int, c_uint)


LIBBPF_DEBUG = 2  # enum libbpf_print_level: WARN 0, INFO 1, DEBUG 2


class LogCapture:
    """Owns the libbpf print callback: keeps its warnings (all its messages with -v), echoes them with -v.

    The ctypes callback object must outlive every libbpf call, so this object holds it and is
    kept alive by the caller for the whole run.
    """

    def __init__(self, verbose: bool) -> None:
        self.lines: list[str] = []
        self._verbose = verbose
        self._callback = PRINT_FN(self._print)
        lib.libbpf_set_print(self._callback)

    def clear(self) -> None:
        self.lines.clear()

    def _print(self, level: int, fmt: bytes, args: int) -> int:
        if level == LIBBPF_DEBUG and not self._verbose:
            return 0  # a load's ~10 debug lines per program (9 ms for 20); failures come as warnings
        # The first vsnprintf only measures; it consumes its va_list, so it gets a copy. On x86_64
        # va_list is one 24-byte struct and va_copy is a plain copy of it.
        args_copy = ctypes.create_string_buffer(_VA_LIST_SIZE)
        ctypes.memmove(args_copy, args, _VA_LIST_SIZE)
        size = libc.vsnprintf(None, 0, fmt, ctypes.addressof(args_copy))
        buffer = ctypes.create_string_buffer(max(size, 0) + 1)
        libc.vsnprintf(buffer, len(buffer), fmt, args)
        text = buffer.value.decode("utf-8", "replace")
        self.lines.extend(text.splitlines())
        if self._verbose:
            import logging  # only with -v: the import is a few ms of every start

            logging.getLogger("bpfrun.libbpf").info("%s", text.rstrip("\n"))
        return 0


_capture: LogCapture | None = None  # libbpf keeps calling the newest callback: keep it alive


def capture_log(verbose: bool) -> LogCapture:
    global _capture
    _capture = LogCapture(verbose)
    return _capture
