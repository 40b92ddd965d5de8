"""The compiler's semantic types: what a value is, as bpftrace's type checker sees it.

These never leave the compiler. What crosses to bpfrun is a `common.layout.Layout` (how a value is
stored and decoded), computed from these types by `storage.py`.

Names (`str(type)`) are bpftrace's, as its messages print them: 'int8', 'uint64', 'string[16]',
'bool', '(int64,string[4])', 'count_t', 'hist_t'...
"""

from __future__ import annotations

from common.record import field, record


class Type:
    """Base of every semantic type; instances are frozen records, compared by value."""

    __slots__ = ()


@record(frozen=True, slots=True)
class Int(Type):
    bits: int  # 8, 16, 32 or 64
    signed: bool

    def __str__(self) -> str:
        return f"{'' if self.signed else 'u'}int{self.bits}"

    @property
    def size(self) -> int:
        return self.bits // 8

    @property
    def min(self) -> int:
        return -(1 << (self.bits - 1)) if self.signed else 0

    @property
    def max(self) -> int:
        return (1 << (self.bits - 1)) - 1 if self.signed else (1 << self.bits) - 1


@record(frozen=True, slots=True)
class Enum(Int):
    """A kernel enum's value (`BPF_PROG_LOAD`, `(enum bpf_cmd)3`): a 64-bit integer, which
    arithmetic makes a plain one, printed as its enumerator's name (a number it has none for, as
    a number)."""

    name: str = ""
    enumerators: tuple[tuple[str, int], ...] = ()

    def __str__(self) -> str:
        return f"enum {self.name}"

    def value_of(self, enumerator: str) -> int | None:
        return next((value for name, value in self.enumerators if name == enumerator), None)


@record(frozen=True, slots=True)
class Bool(Type):
    def __str__(self) -> str:
        return "bool"


@record(frozen=True, slots=True)
class String(Type):
    size: int  # bytes, NUL included

    def __str__(self) -> str:
        return f"string[{self.size}]"


@record(frozen=True, slots=True)
class Tuple(Type):
    elements: tuple[Type, ...]

    def __str__(self) -> str:
        return "(" + ",".join(str(element) for element in self.elements) + ")"


@record(frozen=True, slots=True)
class Record(Type):
    names: tuple[str, ...]
    elements: tuple[Type, ...]

    def __str__(self) -> str:
        return "record { " + ", ".join(f".{n} = {t}" for n, t in zip(self.names, self.elements)) + " }"

    def element(self, name: str) -> Type | None:
        return self.elements[self.names.index(name)] if name in self.names else None


@record(frozen=True, slots=True)
class Array(Type):
    element: Type
    length: int

    def __str__(self) -> str:
        return f"{self.element}[{self.length}]"


@record(frozen=True, slots=True)
class Pointer(Type):
    target: Type
    user: bool = False  # to user memory (a syscall's argument), read with the _user helpers

    def __str__(self) -> str:
        return f"{self.target} *"


@record(frozen=True, slots=True)
class Struct(Type):
    """A C struct or union, known by name; its layout is bpftc/kernel.py's. Fields are read from
    where the struct is (the probe's context, kernel memory); a whole struct stored or printed
    (`@x = *curtask->mm`) is a copy of its bytes, laid out as `held` says."""

    kind: str  # 'struct' or 'union'
    name: str
    # bpftc/kernel.py's StructValue, when the struct can be held as a value; not part of the type's
    # identity (a struct named in a cast is the same type).
    held: object = field(default=None, compare=False)

    def __str__(self) -> str:
        return f"{self.kind} {self.name}"


@record(frozen=True, slots=True)
class Stack(Type):
    kind: str  # 'kstack' or 'ustack'
    mode: str  # 'bpftrace', 'perf' or 'raw'
    depth: int

    def __str__(self) -> str:
        return f"{self.kind}_t"


@record(frozen=True, slots=True)
class Symbol(Type):
    kind: str  # 'ksym' or 'usym'

    def __str__(self) -> str:
        return f"{self.kind}_t"


@record(frozen=True, slots=True)
class Formatted(Type):
    """Bytes bpfrun prints in a format of their own (common/layout.py's `bytes`): buf() as
    "buffer", macaddr(), ntop() as "inet"."""

    kind: str  # 'buffer', 'macaddr' or 'inet'
    length: int = 0  # buffer: its bytes

    def __str__(self) -> str:
        return {"buffer": "buffer", "macaddr": "macaddr_t", "inet": "inet"}[self.kind]


@record(frozen=True, slots=True)
class Lookup(Type):
    """A number bpfrun prints as the name its host gives it (common/layout.py's LOOKUP tables):
    strerror(), signal_name(), syscall_name(), username."""

    table: str  # one of common/layout.py's LOOKUP_TABLES

    def __str__(self) -> str:
        return {"errno": "strerror_t", "signal": "signal_t", "uid": "username", "syscall": "syscall_t", "cgroup": "cgroup_path_t"}[self.table]


@record(frozen=True, slots=True)
class Timestamp(Type):
    """strftime(format, ns): nanoseconds since boot, formatted in user space."""

    format: str

    def __str__(self) -> str:
        return "timestamp"


@record(frozen=True, slots=True)
class Aggregate(Type):
    """A map value that only an aggregation function writes: count(), sum(), hist()...

    `value` is the type of the values aggregated (None for count); `params` are hist's k
    (2^k buckets per power of 2) and lhist's (min, max, step)."""

    kind: str  # one of AGGREGATES
    value: Int | None = None
    params: tuple[int, ...] = ()

    def __str__(self) -> str:
        return f"{self.kind}_t"

    @property
    def readable(self) -> bool:
        """count/sum/min/max/avg read as an integer in expressions (`if (@c > 10)`)."""
        return self.kind in ("count", "sum", "min", "max", "avg")


AGGREGATES = ("count", "sum", "min", "max", "avg", "stats", "hist", "lhist")


@record(frozen=True, slots=True)
class Void(Type):
    """The type of a call that has no value (printf, delete...)."""

    def __str__(self) -> str:
        return "void"


@record(frozen=True, slots=True)
class Unknown(Type):
    """Not known (yet): a map read before its first assignment, or an expression in error."""

    def __str__(self) -> str:
        return "none"


INT8 = Int(8, True)
INT16 = Int(16, True)
INT32 = Int(32, True)
INT64 = Int(64, True)
UINT8 = Int(8, False)
UINT16 = Int(16, False)
UINT32 = Int(32, False)
UINT64 = Int(64, False)
BOOL = Bool()
VOID = Void()
UNKNOWN = Unknown()

INT_NAMES = {str(t): t for t in (INT8, INT16, INT32, INT64, UINT8, UINT16, UINT32, UINT64)}
# C's own integer type names, as bpftrace's casts take them (`(int)x`), x86_64's sizes.
C_INT_NAMES = {"char": INT8, "short": INT16, "int": INT32, "long": INT64, "unsigned": UINT32, "signed": INT32}


def is_integer(t: Type) -> bool:
    return isinstance(t, (Int, Bool))


def is_scalar(t: Type) -> bool:
    """Held in one register: integers, bools, pointers."""
    return isinstance(t, (Int, Bool, Pointer))


def literal_type(value: int) -> Int:
    """bpftrace's type of an integer literal: the smallest signed type that holds it, else uint64."""
    for bits in (8, 16, 32, 64):
        if -(1 << (bits - 1)) <= value < 1 << (bits - 1):
            return Int(bits, True)
    return UINT64


def fits(value: int, t: Int) -> bool:
    return t.min <= value <= t.max


def common_int(a: Int, b: Int) -> Int:
    """The smallest integer type that holds every value of both, as bpftrace upcasts a variable or
    map that is assigned both; int64 when none does (uint64 with a signed type)."""
    if a.signed == b.signed:
        return Int(max(a.bits, b.bits), a.signed)
    unsigned, signed = (a, b) if b.signed else (b, a)
    if unsigned.bits < signed.bits:
        return signed
    return Int(min(unsigned.bits * 2, 64), True)


def unify(a: Type, b: Type) -> Type | None:
    """The type that holds values of both `a` and `b` (a variable or map assigned both), or None.

    Strings widen to the longer one; tuples and records element by element."""
    if isinstance(a, Unknown):
        return b
    if isinstance(b, Unknown) or a == b:
        return a
    if isinstance(a, Int) and isinstance(b, Int):
        return common_int(a, b)
    if isinstance(a, String) and isinstance(b, String):
        return String(max(a.size, b.size))
    if isinstance(a, Tuple) and isinstance(b, Tuple) and len(a.elements) == len(b.elements):
        elements = [unify(x, y) for x, y in zip(a.elements, b.elements)]
        return None if None in elements else Tuple(tuple(elements))
    if isinstance(a, Record) and isinstance(b, Record) and set(a.names) == set(b.names):
        elements = [unify(x, b.element(name)) for name, x in zip(a.names, a.elements)]
        return None if None in elements else Record(a.names, tuple(elements))
    return a if a == b else None
