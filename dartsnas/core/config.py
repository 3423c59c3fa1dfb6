"""Config loading, shared by every kind of run: a typed dataclass holds the defaults (each side has its
own: conv/config.py, recurrent/config.py); a YAML file and `--set key=value` override fields; an unknown
key is an error that suggests the closest field; values are checked against the field's type. Shipped
configs live in `dartsnas/configs/` and can be named without a path. YAML is read with `safe_load` only.

A file may start from another: `base: NAME` (a shipped config of the same kind) or `base: PATH` (a .yaml
file, relative to the file that names it), then hold only its differences (docs/search.md, Presets). Each
key replaces the base's value whole, a list or a mapping too; `--set` applies last. A run folder saves the
resolved config, with no `base:`.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import re
import types
import typing
from pathlib import Path
from typing import Any, Union

import yaml

CONFIG_DIR = Path(__file__).parent.parent / "configs"
# A config is a few hundred bytes; a file past this is a mistake (a dataset, a log), and YAML would spend
# minutes and gigabytes parsing it before saying so.
MAX_CONFIG_BYTES = 1 << 20
# One `--set key=value` item: room for a long data_dir path, but not for a deeply nested value that would
# overflow the YAML parser's recursion.
MAX_SET_CHARS = 4096
# Whole-number fields stop here: past it torch's seeds and sizes overflow deep inside a run.
MAX_INT = 2**32 - 1
# How many files a config may stack through `base:` (itself included): deeper is a mistake, not a design.
MAX_BASE_DEPTH = 8
# A run folder or derived-file name: one plain path component, so it cannot point outside its folder.
NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}"


class ConfigError(ValueError):
    """A config the user wrote that cannot be used; the message names the key and the fix."""


# The sections a config file is written in, each a group of fields (a config class's SECTIONS says which; no
# field takes a section's name). A file may also hold the fields flat, the form before sections (every run folder
# saved before them): it loads as it is. `--set` takes `section.key=value` or the plain `key=value`.
SECTION_NAMES = ("data", "network", "relaxation", "method", "optimisation", "run", "compiler")


def flatten(cls, mapping: dict, where: str) -> tuple[dict[str, Any], bool]:
    """A config mapping in sections ({data: {dataset: ...}, optimisation: {lr: ...}}), flat ({dataset: ...,
    lr: ...}) or both, as field -> value; and whether any key was flat. Unknown keys and a field given twice are
    ConfigErrors naming the file."""
    sections = getattr(cls, "SECTIONS", {})
    out: dict[str, Any] = {}
    flat = False
    for key, value in mapping.items():
        key = str(key)
        if key in sections:
            if not isinstance(value, dict):
                raise ConfigError(
                    f"{key} in {where} is a section: write its keys under it ({key}: {{{sections[key][0]}: ...}}), "
                    f"not {value!r}"
                )
            for inner in value:
                if str(inner) not in sections[key]:
                    close = difflib.get_close_matches(str(inner), sections[key], n=1)
                    other = [s for s, names in sections.items() if str(inner) in names]
                    hint = (
                        f"; it belongs to the {other[0]} section"
                        if other
                        else f"; did you mean {close[0]!r}?"
                        if close
                        else f"; the {key} section holds {', '.join(sections[key])}"
                    )
                    raise ConfigError(f"unknown key {inner!r} in the {key} section of {where}{hint}")
            items = [(str(k), v) for k, v in value.items()]
        else:
            check_keys(cls, [key], where)
            flat = True
            items = [(key, value)]
        for name, v in items:
            if name in out:
                raise ConfigError(f"{name} is given twice in {where} (in its section and flat); keep one")
            out[name] = v
    return out, flat


def sectioned(cls, values: dict[str, Any]) -> dict[str, Any]:
    """Field -> value as the sections of `cls` (what a run folder's config.yaml holds), in section order."""
    sections = getattr(cls, "SECTIONS", {})
    if not sections:
        return dict(values)
    return {name: {k: values[k] for k in fields if k in values} for name, fields in sections.items()}


def read_saved(path: Path, what: str = "config") -> dict[str, Any]:
    """A run folder's config.yaml as field -> value, in sections or flat (folders saved before sections)."""
    loaded = read_yaml(path, what) or {}
    if not isinstance(loaded, dict):
        return {}
    out: dict[str, Any] = {}
    for key, value in loaded.items():
        if key in SECTION_NAMES and isinstance(value, dict):
            out.update(value)
        else:
            out[key] = value
    return out


def check_keys(cls, keys, where: str) -> None:
    """Every key must be a field of the config dataclass `cls`; else an error naming the closest one."""
    names = [f.name for f in dataclasses.fields(cls)]
    for key in keys:
        if key not in names:
            close = difflib.get_close_matches(key, names + list(getattr(cls, "SECTIONS", {})), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; valid keys: {', '.join(names)}"
            raise ConfigError(f"unknown config key {key!r} in {where}{hint}")


def coerce(cls, key: str, value: Any) -> Any:
    """Check a value against the field's declared type (ints become floats where floats are due)."""
    hint = typing.get_type_hints(cls)[key]
    allowed = typing.get_args(hint) if typing.get_origin(hint) in (Union, types.UnionType) else (hint,)
    if value is None and type(None) in allowed:
        return None
    for kind in allowed:
        base = typing.get_origin(kind) or kind
        if isinstance(value, bool) != (base is bool):
            continue
        if base is float and isinstance(value, (int, float)):
            return _to_float(key, value)
        if base is float and isinstance(value, str):  # YAML 1.1 reads 3e-4 (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
        if base is list and isinstance(value, list):
            return _coerce_items(key, typing.get_args(kind), value)
        if base in (int, bool, str, dict) and isinstance(value, base):
            return value
    names = " or ".join(getattr(k, "__name__", str(k)) for k in allowed)
    raise ConfigError(f"{key} must be {names}, got {value!r}")


def _coerce_items(key: str, item_type: tuple, value: list) -> list:
    """A list field's items: names must be strings (a nested list would reach set and dict lookups); numbers
    become floats, and anything else is left for the field's own check, whose message says what it wants."""
    if item_type == (str,) and not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{key} must be a list of names, got {value!r}")
    if item_type == (float,) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        return [_to_float(key, v) for v in value]
    return value


def _to_float(key: str, value: int | float) -> float:
    try:
        return float(value)
    except OverflowError:  # a whole number past 1.8e308
        raise ConfigError(f"{key} must be a finite number, got a whole number of {len(str(value))} digits") from None


def check_ranges(config) -> None:
    """Every field named in the class's RANGES lies in its interval, written "[low, high)" and the like (inf:
    unbounded). Floats must also be finite (a NaN learning rate trains nothing and compares false to every
    bound), whole numbers at most MAX_INT; None passes (it means off); a list field has each item checked."""
    for key, spec in type(config).RANGES.items():
        value = getattr(config, key)
        if value is None:
            continue
        items = value if isinstance(value, list) else [value]
        bad = [v for v in items if not _in_range(v, spec)]
        if bad:
            raise ConfigError(f"{key} must be {_describe(spec, bad[0], isinstance(value, list))}, got {value!r}")


def _bounds(spec: str) -> tuple[str, float, float, str]:
    match = re.fullmatch(r"([\[(])\s*(\S+)\s*,\s*(\S+)\s*([\])])", spec)
    if match is None:
        raise ValueError(f"a range is written like [0, 1) or (0, inf), not {spec!r}")
    return match[1], float(match[2]), float(match[3]), match[4]


def _in_range(value, spec: str) -> bool:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return False
    if isinstance(value, float) and not math.isfinite(value):
        return False
    if isinstance(value, int) and abs(value) > MAX_INT:
        return False
    left, low, high, right = _bounds(spec)
    above = value > low if left == "(" else value >= low
    below = value < high if right == ")" else value <= high
    return above and below


def _describe(spec: str, bad, in_list: bool) -> str:
    """What a range asks of the value that missed it: "at least 1", "a finite number > 0", "... in [0, 1)"."""
    left, low, high, right = _bounds(spec)

    def num(x: float) -> str:
        return str(int(x)) if x == int(x) else str(x)

    if isinstance(bad, int) and not isinstance(bad, bool) and not in_list:  # a whole-number field
        if math.isinf(high):
            return f"at most {MAX_INT}" if bad > low else f"at least {num(low + (left == '('))}"
        return f"a whole number in {left}{num(low)}, {num(high)}{right}"
    if math.isinf(high):
        bound = f"{'>' if left == '(' else '>='} {num(low)}"
    else:
        bound = f"in {left}{num(low)}, {num(high)}{right}"
    return f"a list of finite numbers {bound}" if in_list else f"a finite number {bound}"


def check_name(name: str, flag: str = "--name") -> str:
    """A user-given name that becomes a file or folder name: one plain component, never a path."""
    if not re.fullmatch(NAME_PATTERN, name):
        raise ConfigError(
            f"{flag} {name!r} is not a valid name; use up to 100 letters, digits, '.', '_' and '-', "
            "starting with a letter or digit (no '/', no '..')"
        )
    return name


def read_yaml(path: Path, what: str = "config"):
    """A YAML file read with safe_load, at most MAX_CONFIG_BYTES of UTF-8; every way it can be unreadable is
    a ConfigError that names the file."""
    path = Path(path)
    if not path.is_file():
        kind = "a folder" if path.is_dir() else "not a regular file" if path.exists() else "missing"
        raise ConfigError(f"{what} {path} is {kind}; give a YAML file")
    try:
        with open(path, "rb") as f:  # read no more than the cap: /proc files and pipes report no size
            data = f.read(MAX_CONFIG_BYTES + 1)
    except OSError as err:
        raise ConfigError(f"cannot read {what} {path} ({err.strerror or err}); check its permissions") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(
            f"{what} {path} is larger than {MAX_CONFIG_BYTES // 1024} KiB; a config is a short "
            "YAML file of key: value lines"
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError(f"{what} {path} is not UTF-8 text (byte {err.start}); save it as UTF-8 YAML") from None
    return parse_yaml(text, f"{path}")


def parse_yaml(text: str, where: str):
    """safe_load, with every parse failure a one-line ConfigError (YAML's own messages span several lines)."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ConfigError(f"{where} is not valid YAML: {_yaml_problem(err)}") from None
    except (ValueError, OverflowError, RecursionError) as err:  # a 5,000-digit int, a 13th month, deep nesting
        raise ConfigError(f"{where} is not valid YAML: {type(err).__name__}: {str(err).splitlines()[0]}") from None


def _yaml_problem(err: yaml.YAMLError) -> str:
    mark = getattr(err, "problem_mark", None)
    problem = getattr(err, "problem", None)
    if problem and mark is not None:
        return f"{problem} (line {mark.line + 1}, column {mark.column + 1})"
    return str(err).splitlines()[0]  # a reader error: its first line says which character


def resolve_config_path(name: str | Path, folder: Path = CONFIG_DIR, what: str = "config") -> Path:
    """A YAML file, or the name of a shipped one in `folder`."""
    path = Path(name)
    if path.exists():
        return path
    shipped = folder / f"{name}.yaml"
    if shipped.exists():
        return shipped
    names = sorted(p.stem for p in folder.glob("*.yaml"))
    raise ConfigError(f"{what} {str(name)!r} is neither a file nor a shipped one; shipped: {', '.join(names)}")


def load_dataclass(
    cls,
    path: str | Path | None = None,
    overrides: list[str] | None = None,
    folder: Path = CONFIG_DIR,
    what: str = "config",
):
    """Defaults of `cls`, then the YAML file, then `key=value` overrides (values read as YAML: 3, 0.1, true, [a, b])."""
    values: dict[str, Any] = {}
    if path is not None:
        for source, loaded in reversed(_chain(resolve_config_path(path, folder, what), folder, what)):
            fields, _ = flatten(cls, loaded, str(source))
            values.update(fields)  # the file over its base: a key replaces the base's value whole
    for item in overrides or []:
        if len(item) > MAX_SET_CHARS:
            raise ConfigError(
                f"--set {item[:40]!r}... is longer than {MAX_SET_CHARS} characters; put long "
                "values in a --config YAML file"
            )
        key, sep, raw = item.partition("=")
        if not sep:
            raise ConfigError(f"--set {item!r}: write it as key=value, e.g. --set epochs=10")
        key = key.strip()
        if key == "base":
            raise ConfigError(
                "--set base=...: a base is named only at the top of a YAML file; write base: in a --config file"
            )
        section, dot, name = key.rpartition(".")
        if dot:  # section.key: the key must be one of that section's
            sections = getattr(cls, "SECTIONS", {})
            if section not in sections:
                raise ConfigError(
                    f"--set {key}=...: {section!r} is not a section; the sections are {', '.join(sections)} "
                    "(or give the key alone: --set key=value)"
                )
            flatten(cls, {section: {name: None}}, "--set")
            key = name
        check_keys(cls, [key], "--set")
        try:
            values[key] = parse_yaml(raw, "--set")
        except ConfigError:  # not YAML: the text itself (a path with ': ' in it), checked against the type
            values[key] = raw
    return cls(**{k: coerce(cls, k, v) for k, v in values.items()}).validate()


def _chain(source: Path, folder: Path, what: str) -> list[tuple[Path, dict]]:
    """The file and its bases, the file first: (path, its keys without `base`) each."""
    chain: list[tuple[Path, dict]] = []
    while True:
        loaded = read_yaml(source, what)
        loaded = {} if loaded is None else loaded  # an empty file (or only comments): the defaults
        if not isinstance(loaded, dict):
            raise ConfigError(f"{source} must hold a mapping of config keys, got {type(loaded).__name__}")
        named = "base" in loaded
        base = loaded.pop("base", None)
        chain.append((source, loaded))
        if not named:
            return chain
        source = _find_base(base, source, folder, what)
        files = [p for p, _ in chain] + [source]
        names = " -> ".join(str(p) for p in files)
        if any(source.resolve() == p.resolve() for p, _ in chain):
            raise ConfigError(f"the bases of {files[0]} form a cycle: {names}; remove one of these base: lines")
        if len(files) > MAX_BASE_DEPTH:
            raise ConfigError(
                f"{files[0]} stacks more than {MAX_BASE_DEPTH} files through base: ({names}); "
                "copy some of their keys into one file"
            )


def _find_base(base, naming: Path, folder: Path, what: str) -> Path:
    """`base: NAME` is a shipped config in `folder` (so a file anywhere can start from one), or beside the
    naming file when that is itself shipped (a shipped file finds its own kind's presets, whichever folder the
    caller gave); a value with a '/' or ending in .yaml/.yml is a file, relative to the file that names it."""
    if not isinstance(base, str) or not base.strip():
        raise ConfigError(f"{naming}: base must be a shipped config's name or a YAML file's path, got {base!r}")
    if "/" in base or "\\" in base or base.endswith((".yaml", ".yml")):
        path = naming.parent / base
        if not _is_file(path):
            raise ConfigError(
                f"{naming}: base {base!r} is not a file ({path}); give a path relative to {naming.name}'s "
                "folder, or a shipped config's name"
            )
        return path
    if CONFIG_DIR.resolve() in naming.resolve().parents:
        folder = naming.parent
    shipped = folder / f"{base}.yaml"
    if re.fullmatch(NAME_PATTERN, base) and shipped.is_file():
        return shipped
    names = sorted(p.stem for p in folder.glob("*.yaml"))
    raise ConfigError(f"{naming}: base {base!r} is not a shipped {what}; shipped: {', '.join(names)}")


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except (OSError, ValueError):  # a name too long for the file system, a NUL byte
        return False


def load_saved(cls, path: str | Path):
    """A run folder's saved config (RUN/config.yaml) as that run ran. A key it lacks is a field added since;
    where the field's default would change what the run did, `cls.legacy(saved)` names the value it ran with
    (e.g. a method's earlier form) and that is filled in; any other missing key takes its default."""
    saved = read_saved(path)
    legacy = cls.legacy(saved) if hasattr(cls, "legacy") else {}
    return load_dataclass(cls, path, [f"{k}={json.dumps(v)}" for k, v in legacy.items() if k not in saved])


def save_config(config, path: Path) -> None:
    """Any config dataclass as YAML in its sections (what `load_dataclass` reads back)."""
    path.write_text(yaml.safe_dump(sectioned(type(config), config.to_dict()), sort_keys=False))
