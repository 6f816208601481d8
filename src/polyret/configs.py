"""The config layer's base: what ``TrainConfig``, ``EvalConfig`` and ``ExperimentConfig`` share.

Every config is a frozen dataclass that is valid once it exists: ``__post_init__`` puts each field in its
Python shape (lists -> tuples, mappings -> read-only :class:`FrozenDict`, whole floats -> ints, a comma
string -> a tuple) and refuses a wrong type with a :class:`~polyret.errors.ConfigError` naming the key;
each config's own ``validate`` then checks the ranges. :class:`ConfigBase` gives the four ways to make one:

- ``replace(**changes)``: a new config, validated (strings are parsed as for ``--set key=value``);
- ``from_dict(mapping)`` / ``from_file(path)``: YAML or JSON (a key named twice is refused), an unknown
  key refused with a did-you-mean, ``-`` and ``_`` alike, other libraries' names (``ALIASES``) accepted;
- ``to_dict()``: JSON-ready (tuples as lists), the inverse of ``from_dict``.

Each field is described once, in its class docstring's ``Args:`` section (what ``help(EvalConfig)`` shows):
:meth:`ConfigBase.field_help` reads that entry, and the command line's options that mirror a field take
their help text from it (and their default from the field), so neither is typed twice.

It sits at the bottom of the import graph (with :mod:`polyret.errors`): stdlib and PyYAML only.
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import json
import os
import re
import types
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar

from .errors import ConfigError

__all__ = [
    "ConfigBase",
    "FrozenDict",
    "config_error",
    "did_you_mean",
    "freeze",
    "load_mapping",
    "parse_overrides",
    "plain_help",
    "renamed_error",
    "thaw",
    "unique_json_keys",
    "yaml_error_line",
    "yaml_load_unique",
]


class FrozenDict(dict):
    """A dict that cannot be changed (a config's mapping field): reads, ``json.dumps`` and ``dict(...)``
    work as for a dict; ``d[k] = v``, ``update``, ``pop``... raise ``TypeError``. Hashable."""

    def _refuse(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError("a config's mapping is read-only: make a new config with .replace(...)")

    __setitem__ = __delitem__ = clear = pop = popitem = setdefault = update = _refuse  # type: ignore[assignment]
    __ior__ = _refuse  # type: ignore[assignment]

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(frozenset(self.items()))

    def __reduce__(self):  # copy, deepcopy and pickle rebuild it whole (dict's protocol would call __setitem__)
        return (type(self), (dict(self),))

    def __repr__(self) -> str:
        return f"FrozenDict({dict.__repr__(self)})"


def freeze(value: Any) -> Any:
    """``value`` with every list a tuple and every mapping a :class:`FrozenDict` (recursively)."""
    if isinstance(value, Mapping):
        return value if isinstance(value, FrozenDict) else FrozenDict({k: freeze(v) for k, v in value.items()})
    if isinstance(value, (list, tuple)):
        return tuple(freeze(v) for v in value)
    return value


def thaw(value: Any) -> Any:
    """The inverse of :func:`freeze`: mappings as dicts, tuples as lists (JSON's shapes)."""
    if isinstance(value, Mapping):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [thaw(v) for v in value]
    return value


# ---------------------------------------------------------------------- files
def yaml_load_unique(text: str, *, source: str) -> Any:
    """``yaml.safe_load(text)``, but a mapping that names one key twice is refused.

    PyYAML keeps the last of two equal keys silently (``seeds: 1`` then ``seeds: 3`` trains 3 seeds), so a
    config file's typo or leftover would change a run without a word.

    Args:
        text: the YAML document.
        source: the file it came from, named in the message.

    Raises:
        ValueError: ``<source>:<line>: duplicate key '<key>' (first on line <n>)``; ``yaml.YAMLError`` for
            text that is not YAML.
    """
    import yaml

    class UniqueKeyLoader(yaml.SafeLoader):
        pass

    def construct_mapping(loader, node, deep=False):
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = loader.construct_object(key_node, deep=True)
            try:
                first = seen.get(key)
            except TypeError:  # an unhashable key: let PyYAML say so
                break
            line = key_node.start_mark.line + 1
            if first is not None:
                raise ValueError(f"{source}:{line}: duplicate key {key!r} (first on line {first}); keep one of them")
            seen[key] = line
        return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)

    UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, construct_mapping)
    return yaml.load(text, Loader=UniqueKeyLoader)


def unique_json_keys(source: str | Path):
    """An ``object_pairs_hook`` for ``json.loads`` that refuses an object naming one key twice.

    Args:
        source: the file the JSON came from, named in the message.
    """

    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in pairs:
            if key in out:
                raise ValueError(f"{source}: duplicate key {key!r} in one JSON object; keep one of them")
            out[key] = value
        return out

    return hook


def yaml_error_line(exc: BaseException) -> str:
    """A YAML parse error as one line: ``line L, column C: problem (context)``, not PyYAML's 4-line text.

    Args:
        exc: a ``yaml.YAMLError`` (or any exception: its text, newlines folded).
    """
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None)
    if mark is not None and problem:
        context = getattr(exc, "context", None)
        return f"line {mark.line + 1}, column {mark.column + 1}: {problem}" + (f" ({context})" if context else "")
    return " ".join(str(exc).split())


def load_mapping(path: str | os.PathLike, *, what: str = "config") -> Any:
    """The parsed content of a YAML (``.yaml``/``.yml``) or JSON file (any other suffix), a key named twice
    in one mapping refused.

    Args:
        path: the file.
        what: what the file is, for the messages (``training config``...).

    Raises:
        ConfigError: unreadable, not UTF-8, not valid YAML/JSON (one line: the file and the position), or
            a duplicate key (the file, line and key).
    """
    import yaml

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise ConfigError(f"{path}: not a UTF-8 text file: {error}") from None
    except OSError as error:
        raise ConfigError(f"cannot read {what} {path}: {error.strerror or error}") from None
    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            return yaml_load_unique(text, source=str(path))
        return json.loads(text, object_pairs_hook=unique_json_keys(path))
    except (yaml.YAMLError, json.JSONDecodeError) as error:  # the file and the position, one line
        raise ConfigError(f"{path}: cannot parse {what}: {yaml_error_line(error)}") from None
    except ValueError as error:  # a duplicate key: the message names the file, line and key
        raise ConfigError(str(error)) from None


def parse_overrides(pairs: list[str] | tuple[str, ...]) -> dict[str, str]:
    """CLI-style ``key=value`` strings as key -> unparsed value (``max-steps`` -> ``max_steps``).

    Args:
        pairs: strings such as ``"alpha=0.3"`` or ``"languages=de,en"``.
    """
    overrides: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override {pair!r} is not of the form key=value")
        overrides[key.strip().replace("-", "_")] = value.strip()
    return overrides


# ---------------------------------------------------------------------- messages
def did_you_mean(name: str, known: typing.Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``known``, or an empty string."""
    close = difflib.get_close_matches(str(name), sorted(known), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def config_error(prefix: str, message: str, fields: typing.Iterable[str] = ()) -> ConfigError:
    """``ConfigError(prefix + message)`` whose ``key`` is ``message``'s first word when it names one of
    ``fields`` (``detail``: the rest), so a command line can say ``--batch-size must be >= 1`` instead."""
    error = ConfigError(prefix + message)
    head = message.split(" ", 1)[0].split(":", 1)[0]
    if head in set(fields):
        error.key = head
        error.detail = message[len(head) :]
    return error


def renamed_error(error: Exception, name: Callable[[str], str]) -> Exception:
    """``error`` with its key named by ``name(key)`` (``--k``) and the config prefix dropped; ``error`` as it
    is when it names no key."""
    if getattr(error, "key", None) is None:
        return error
    out = type(error)(name(error.key) + error.detail)
    out.key, out.detail = error.key, error.detail
    return out


# ---------------------------------------------------------------------- coercion
def _optional(hint: Any) -> tuple[Any, bool]:
    """(the hint without ``None``, whether ``None`` is allowed)."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        rest = [a for a in args if a is not type(None)]
        return (rest[0] if len(rest) == 1 else typing.Union[tuple(rest)]), type(None) in args  # noqa: UP007
    return hint, hint is type(None) or hint is Any


def type_name(hint: Any) -> str:
    """``hint`` in words: ``an integer or null``, ``a list of str``, ``a mapping``."""
    base, optional = _optional(hint)
    origin = typing.get_origin(base)
    if origin is tuple:
        item = typing.get_args(base)[0]
        name = f"a list of {getattr(item, '__name__', item)}"
    elif origin in (dict, Mapping) or base in (dict, Mapping):
        name = "a mapping"
    else:
        raw = getattr(base, "__name__", str(base))
        name = {"str": "a string", "int": "an integer", "float": "a number", "bool": "true or false"}.get(raw, raw)
    return name + (" or null" if optional else "")


def coerce(key: str, value: Any, hint: Any, *, parse_strings: bool = True) -> Any:
    """``value`` in the Python shape of a field typed ``hint``, or a ``ConfigError`` naming ``key``.

    Lists and tuples become tuples (their items coerced), mappings read-only, ints floats and whole floats
    ints where the field says so; a bool is never a number. With ``parse_strings`` (``--set key=value``,
    environment-like text) a string is parsed into the field's type (``none``/``null``/empty -> None for an
    optional field, ``true``/``false``..., numbers, ``a,b`` -> a tuple, a YAML flow mapping for a mapping
    field); without, only a tuple field splits a comma string (``"de,en"``).
    """
    base, optional = _optional(hint)
    if value is None:
        if optional:
            return None
        raise ConfigError(f"{key} must be {type_name(hint)}, got None")
    if base is Any:
        return freeze(value)
    origin = typing.get_origin(base)
    if isinstance(value, str) and (parse_strings or origin is tuple) and base is not str:
        value = _parse_string(key, value, base, optional)
        if value is None:
            return None
    if origin is tuple:
        if isinstance(value, (list, tuple)):
            item = typing.get_args(base)[0]
            try:
                return tuple(coerce(key, v, item, parse_strings=parse_strings) for v in value)
            except ConfigError:
                raise ConfigError(f"{key} must be {type_name(hint)}, got {value!r}") from None
    elif origin in (dict, Mapping) or base in (dict, Mapping):
        if isinstance(value, Mapping):
            key_hint, value_hint = typing.get_args(base) or (Any, Any)
            return FrozenDict(
                {
                    coerce(key, k, key_hint, parse_strings=False): coerce(f"{key}[{k!r}]", v, value_hint, parse_strings=False)
                    for k, v in value.items()
                }
            )
    elif base is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif base is int:
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif isinstance(base, type) and isinstance(value, base):
        return value
    elif base is str and isinstance(value, os.PathLike):  # a folder or file given as a Path
        return os.fspath(value)
    raise ConfigError(f"{key} must be {type_name(hint)}, got {value!r}")


def _parse_string(key: str, text: str, base: Any, optional: bool) -> Any:
    stripped = text.strip()
    if optional and stripped.lower() in ("none", "null", ""):
        return None
    origin = typing.get_origin(base)
    try:
        if base is bool:
            lowered = stripped.lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off"):
                return False
            raise ValueError(text)
        if base is int:
            number = float(stripped)
            if not number.is_integer():
                raise ValueError(text)
            return int(number)
        if base is float:
            return float(stripped)
        if origin is tuple:
            return [part.strip() for part in stripped.split(",") if part.strip()]
        if origin in (dict, Mapping) or base in (dict, Mapping):
            import yaml

            parsed = yaml.safe_load(stripped) if stripped else {}
            if not isinstance(parsed, dict):
                raise ValueError(text)
            return parsed
    except (ValueError, ImportError):
        pass
    except Exception:  # noqa: BLE001 - yaml.YAMLError: text that is no mapping
        pass
    else:
        return stripped
    raise ConfigError(f"{key} must be {type_name(base)}, got {text!r}")


# ---------------------------------------------------------------------- field help
_ENTRY = re.compile(r"^(\w+(?:, \w+)*): (.*)$")


def docstring_args(doc: str | None) -> dict[str, str]:
    """The entries of a Google-style docstring's ``Args:`` section: name -> its text on one line.

    An entry is ``name: text`` (or ``a, b: text``: the same text for each name) at the section's
    indentation; its more-indented lines continue it. The section ends at the first line indented less
    than its entries (a paragraph after it, ``Raises:``).

    Args:
        doc: a docstring (``cls.__doc__``); None gives no entries.
    """
    lines = inspect.cleandoc(doc or "").splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.strip() == "Args:") + 1
    except StopIteration:
        return {}
    entries: dict[str, list[str]] = {}
    indent = None
    current: list[str] = []
    for line in lines[start:]:
        if not line.strip():
            continue
        depth = len(line) - len(line.lstrip())
        if indent is None:
            indent = depth
        if depth < indent:
            break
        match = _ENTRY.match(line.strip()) if depth == indent else None
        if match:
            current = [match.group(2).strip()]
            for name in match.group(1).split(", "):
                entries[name] = current  # names sharing an entry share its (growing) list
        elif depth > indent and current:
            current.append(line.strip())
        else:
            break
    return {name: " ".join(parts) for name, parts in entries.items()}


_ROLE = re.compile(r":[a-z]+:`~?([^`]+)`")  # :func:`polyret.x.y` -> polyret.x.y
_LITERAL = re.compile(r"``([^`]+)``")  # ``key: value`` -> key: value
# an API cross-reference (a reST role) alone in parentheses, or ending a clause after "; " / ", " (``see x`` or
# ``methods: x`` too): for help(cls) readers, left out of a command line's help
_REFERENCE = re.compile(r"\s*\((?:see |default: )?:[a-z]+:`[^`]+`\)|[;,]\s*(?:see |\w+: )?:[a-z]+:`[^`]+`(?=[).;]|$)")


def plain_help(text: str, *, none: str = "unset", names: Mapping[str, str] | None = None) -> str:
    """A field's docstring text as a command-line option's help: API cross-references (reST roles alone in
    parentheses or ending a clause) left out, other markup dropped, the first letter capital, a final full
    stop, ``None`` spelled as the option spells it, and other fields named as the command names them.

    Args:
        text: :meth:`ConfigBase.field_help`'s text.
        none: what ``None`` is on the command line (``unset``: the option left out; ``0`` where the
            option takes 0 for None).
        names: a literal field name (````max_tokens````) -> how the command line names it
            (``--max-tokens``); a literal not in it loses its markup only.
    """
    names = names or {}
    out = _ROLE.sub(r"\1", _REFERENCE.sub("", text))
    out = _LITERAL.sub(lambda m: names.get(m.group(1), m.group(1)), out)
    out = re.sub(r"\bNone\b", none, out).strip()
    if out and not out.endswith((".", ")", "?")):
        out += "."
    return out[:1].upper() + out[1:]


# ---------------------------------------------------------------------- the base class
class ConfigBase:
    """The shared behaviour of polyret's frozen config dataclasses (see the module docstring).

    A subclass is a ``@dataclass(frozen=True)`` that sets ``KIND`` (``"training"`` ...), may set ``ALIASES``
    (another library's name -> the field), calls ``self._prepare()`` first in ``__post_init__`` and then its
    own checks (``self._error(message)`` makes the ``ConfigError``).
    """

    KIND: ClassVar[str] = "config"
    ALIASES: ClassVar[Mapping[str, str]] = {}

    # ------------------------------------------------------------------ fields
    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))  # type: ignore[arg-type]

    @classmethod
    def field_types(cls) -> dict[str, Any]:
        cached = cls.__dict__.get("_polyret_hints")
        if cached is None:
            cached = typing.get_type_hints(cls)
            cls._polyret_hints = cached  # type: ignore[attr-defined]
        return cached

    @classmethod
    def field_docs(cls) -> dict[str, str]:
        """Field name -> its description, from the class docstring's ``Args:`` section (read once)."""
        cached = cls.__dict__.get("_polyret_docs")
        if cached is None:
            cached = docstring_args(cls.__doc__)
            cls._polyret_docs = cached  # type: ignore[attr-defined]
        return dict(cached)

    @classmethod
    def field_help(cls, name: str) -> str:
        """The description of field ``name`` (its ``Args:`` entry in the class docstring, on one line).

        Raises:
            KeyError: ``name`` is not a field, or the docstring does not describe it (a test keeps every
                field described).
        """
        if name not in cls.field_names():
            raise KeyError(f"{cls.__name__} has no field {name!r}")
        docs = cls.field_docs()
        if name not in docs:
            raise KeyError(f"{cls.__name__}'s docstring has no Args entry for {name!r}")
        return docs[name]

    @classmethod
    def default(cls, name: str) -> Any:
        """The default of field ``name`` (what a command-line option mirroring it defaults to)."""
        field = next(f for f in dataclasses.fields(cls) if f.name == name)  # type: ignore[arg-type]
        if field.default_factory is not dataclasses.MISSING:
            return field.default_factory()
        return field.default

    def _error(self, message: str) -> ConfigError:
        return config_error(f"invalid {self.KIND} config: ", message, self.field_names())

    def _prepare(self) -> None:
        """Every field in its Python shape (see :func:`coerce`), a wrong type refused naming the key."""
        hints = self.field_types()
        for name in self.field_names():
            try:
                value = coerce(name, getattr(self, name), hints[name], parse_strings=False)
            except ConfigError as error:
                raise self._error(str(error)) from None
            object.__setattr__(self, name, value)

    # ------------------------------------------------------------------ keys
    @classmethod
    def canonical_keys(cls, data: Mapping[str, Any]) -> dict[str, Any]:
        """``data`` with ``-`` spelled ``_`` and ``ALIASES`` resolved; an unknown key (with a did-you-mean)
        or a key given under two names is a ``ConfigError``."""
        names = set(cls.field_names())
        out: dict[str, Any] = {}
        given: dict[str, str] = {}
        unknown = []
        for raw, value in data.items():
            key = str(raw).replace("-", "_")
            name = cls.ALIASES.get(key, key)
            if name not in names:
                unknown.append(key)
                continue
            if name in given:
                raise ConfigError(f"{cls.KIND} config key {name!r} is given twice (as {given[name]!r} and {key!r}); keep one")
            given[name] = key
            out[name] = value
        if unknown:
            hints = "".join(did_you_mean(k, names | set(cls.ALIASES)) for k in unknown[:1])
            raise ConfigError(f"unknown {cls.KIND} config key(s) {sorted(unknown)}{hints}; known: {sorted(names)}")
        return out

    # ------------------------------------------------------------------ construction
    def replace(self, **changes: Any):
        """A copy with ``changes`` applied (strings parsed as for ``key=value``; aliases accepted), validated."""
        changes = self.canonical_keys(changes)
        hints = self.field_types()
        parsed = {key: coerce(key, value, hints[key]) for key, value in changes.items()}
        return dataclasses.replace(self, **parsed)  # type: ignore[type-var]

    def with_overrides(self, pairs: list[str] | tuple[str, ...]):
        """Apply CLI-style ``key=value`` strings, e.g. ``["alpha=0.3", "languages=de,en"]``."""
        return self.replace(**parse_overrides(pairs))

    @classmethod
    def start(cls, data: dict[str, Any], source: str):
        """The config ``from_dict`` applies ``data`` to (a subclass: a named recipe or preset); may take keys
        out of ``data``."""
        return cls()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "<dict>"):
        """A config from a mapping (a parsed YAML/JSON file, ``to_dict``'s output).

        Args:
            data: config keys (``-`` or ``_``, or an alias) -> values in file shape (lists, comma strings, numbers).
            source: what ``data`` came from, named in every error.

        Raises:
            ConfigError naming ``source`` and the key.
        """
        if not isinstance(data, Mapping):
            raise ConfigError(f"{source}: a {cls.KIND} config must be a mapping, got {type(data).__name__}")
        from .errors import PolyretError

        try:
            data = cls.canonical_keys(data)
            return cls.start(data, source).replace(**data)
        except PolyretError as error:  # a ConfigError, or a DataError (an unknown benchmark id): named
            raise _prefixed(error, f"{source}: ") from None

    @classmethod
    def record(cls, data: Any, path: Path) -> Any:
        """A file's parsed content as ``from_dict``'s mapping (a subclass: unwrap a record polyret wrote)."""
        return data

    @classmethod
    def from_file(cls, path: str | os.PathLike):
        """A config from a YAML (``.yaml``/``.yml``) or JSON file; see ``from_dict``."""
        path = Path(path)
        data = load_mapping(path, what=f"{cls.KIND} config")
        if data is None:
            data = {}
        return cls.from_dict(cls.record(data, path), source=str(path))

    def to_dict(self) -> dict[str, Any]:
        """Every field, JSON-ready (tuples as lists, mappings as dicts): ``from_dict`` gives it back."""
        return {name: thaw(getattr(self, name)) for name in self.field_names()}


def _prefixed(error: Exception, prefix: str) -> Exception:
    out = type(error)(prefix + str(error))
    for attr in ("key", "detail"):
        if getattr(error, attr, None) is not None:
            setattr(out, attr, getattr(error, attr))
    return out
