"""Record classes: the part of `dataclasses` this project uses, at a fraction of its start-up cost.

`@dataclass` compiles up to seven methods per class with `exec`, and importing `dataclasses` imports
inspect (with ast, dis and tokenize): for bpfrun's 34 classes that was about 30 ms of every start,
for bpftc's 140 about 50 ms of every compile. A record compiles only its `__init__` (one small
`exec`, so that making one stays as fast as a dataclass's); equality, hashing, repr and pickling are
shared functions that read the class's field names, kept on the class.

    @record(frozen=True, slots=True)
    class Point:
        x: int
        y: int = 0
        tags: list = field(default_factory=list, compare=False)

Semantics are those of dataclasses for what is used here: fields in annotation order, a base
record's first; `ClassVar` annotations are not fields; `eq=True` compares and, when frozen, hashes
the fields' tuple (an `eq=True` mutable record is unhashable); a method the class body defines
itself is kept; `slots=True` makes a new class with `__slots__`.
"""

from operator import attrgetter

MISSING = type("MISSING", (), {"__repr__": lambda self: "MISSING"})()


class FrozenInstanceError(AttributeError):
    """Assigning to a field of a frozen record."""


class Field:
    """One field: its name, its default (or the factory making it), and whether it is compared."""

    __slots__ = ("name", "default", "default_factory", "compare")

    def __init__(self, default=MISSING, default_factory=MISSING, compare=True, name=""):
        self.name = name
        self.default = default
        self.default_factory = default_factory
        self.compare = compare

    def __repr__(self) -> str:
        return f"Field({self.name!r})"


def field(*, default=MISSING, default_factory=MISSING, compare: bool = True) -> Field:
    return Field(default, default_factory, compare)


def record(cls=None, /, *, frozen: bool = False, eq: bool = True, slots: bool = False):
    """The decorator, bare or with options."""
    def wrap(cls):
        return _make_record(cls, frozen, eq, slots)
    return wrap if cls is None else wrap(cls)


def fields(class_or_instance) -> tuple[Field, ...]:
    return class_or_instance.__record_fields__


def field_names(class_or_instance) -> tuple[str, ...]:
    return class_or_instance.__record_names__


def is_record(value) -> bool:
    return hasattr(type(value) if not isinstance(value, type) else value, "__record_fields__")


def replace(value, /, **changes):
    """A copy of a record with some fields changed."""
    for name in value.__record_names__:
        if name not in changes:
            changes[name] = getattr(value, name)
    return value.__class__(**changes)


def _make_record(cls, frozen: bool, eq: bool, slots: bool):
    all_fields = _collect_fields(cls)
    own = cls.__dict__
    namespace = dict(own)
    for item in all_fields:  # a class attribute holds a plain default, never a Field (slots: nothing)
        if item.name in own:
            del namespace[item.name]
            if not slots and item.default is not MISSING:
                namespace[item.name] = item.default
    names = tuple(item.name for item in all_fields)
    if slots:
        inherited = {name for base in cls.__mro__[1:] for name in getattr(base, "__slots__", ())}
        namespace["__slots__"] = tuple(name for name in names if name not in inherited)
        namespace.pop("__dict__", None)
        namespace.pop("__weakref__", None)
    namespace["__record_fields__"] = all_fields
    namespace["__record_names__"] = names
    namespace["__match_args__"] = names
    _add_methods(namespace, all_fields, names, frozen, eq, slots)
    return type(cls)(cls.__name__, cls.__bases__, namespace) if slots else _update(cls, namespace, own)


def _update(cls, namespace: dict, own) -> type:
    for name, value in namespace.items():
        if own.get(name, MISSING) is not value:
            setattr(cls, name, value)
    for name in set(own) - set(namespace):
        delattr(cls, name)
    return cls


def _collect_fields(cls) -> tuple[Field, ...]:
    by_name: dict[str, Field] = {}
    for base in reversed(cls.__mro__[1:]):
        for item in base.__dict__.get("__record_fields__", ()):
            by_name[item.name] = item
    for name, annotation in cls.__dict__.get("__annotations__", {}).items():
        if _is_class_var(annotation):
            continue
        value = cls.__dict__.get(name, MISSING)
        item = value if isinstance(value, Field) else Field(default=value)
        item.name = name
        by_name[name] = item
    return tuple(by_name.values())


def _is_class_var(annotation) -> bool:
    text = annotation if isinstance(annotation, str) else repr(annotation)
    return text.startswith(("ClassVar", "typing.ClassVar"))


def _add_methods(namespace: dict, all_fields: tuple[Field, ...], names: tuple[str, ...], frozen: bool, eq: bool,
                 slots: bool) -> None:
    def add(name, value):
        namespace.setdefault(name, value)  # the class body's own method wins, as in dataclasses

    add("__init__", _init_function(all_fields, frozen))
    add("__repr__", _repr)
    if eq:
        compared = tuple(item.name for item in all_fields if item.compare)
        namespace["__record_key__"] = staticmethod(_key_getter(compared))
        add("__eq__", _eq)
        if "__hash__" not in namespace or namespace["__hash__"] is None:
            namespace["__hash__"] = _hash if frozen else None
    if frozen:
        add("__setattr__", _frozen_setattr)
        add("__delattr__", _frozen_delattr)
        if slots:
            add("__getstate__", _getstate)
            add("__setstate__", _setstate)


def _init_function(all_fields: tuple[Field, ...], frozen: bool):
    """__init__ compiled for these fields, assigning each (with object.__setattr__ when frozen)."""
    globals_ = {"MISSING": MISSING, "_setattr": object.__setattr__}
    parameters, body = [], []
    for item in all_fields:
        name = item.name
        if item.default_factory is not MISSING:
            globals_[f"_factory_{name}"] = item.default_factory
            parameters.append(f"{name}=MISSING")
            value = f"_factory_{name}() if {name} is MISSING else {name}"
        elif item.default is not MISSING:
            globals_[f"_default_{name}"] = item.default
            parameters.append(f"{name}=_default_{name}")
            value = name
        else:
            parameters.append(name)
            value = name
        body.append(f"  _setattr(self, {name!r}, {value})" if frozen else f"  self.{name} = {value}")
    source = f"def __init__(self, {', '.join(parameters)}):\n" + ("\n".join(body) or "  pass")
    exec(source, globals_)
    return globals_["__init__"]


def _key_getter(names: tuple[str, ...]):
    if not names:
        return lambda value: ()
    if len(names) == 1:
        only = attrgetter(names[0])
        return lambda value: (only(value),)
    return attrgetter(*names)


def _eq(self, other):
    if other.__class__ is not self.__class__:
        return NotImplemented
    key = self.__record_key__
    return key(self) == key(other)


def _hash(self):
    return hash(self.__record_key__(self))


def _repr(self) -> str:
    values = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__record_names__)
    return f"{type(self).__qualname__}({values})"


def _frozen_setattr(self, name, value):
    raise FrozenInstanceError(f"cannot assign to field {name!r}")


def _frozen_delattr(self, name):
    raise FrozenInstanceError(f"cannot delete field {name!r}")


def _getstate(self):
    return [getattr(self, name) for name in self.__record_names__]


def _setstate(self, state):
    for name, value in zip(self.__record_names__, state, strict=True):
        object.__setattr__(self, name, value)
