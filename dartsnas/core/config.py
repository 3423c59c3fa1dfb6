"""Config loading, shared by every kind of run: a typed dataclass holds the defaults (each side has its
own: conv/config.py, recurrent/config.py); a YAML file and `--set key=value` override fields; an unknown
key is an error that suggests the closest field; values are checked against the field's type. Shipped
configs live in `dartsnas/configs/` and can be named without a path. YAML is read with `safe_load` only.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from pathlib import Path
from typing import Any, Union

import yaml

CONFIG_DIR = Path(__file__).parent.parent / "configs"


class ConfigError(ValueError):
    """A config the user wrote that cannot be used; the message names the key and the fix."""


def check_keys(cls, keys, where: str) -> None:
    """Every key must be a field of the config dataclass `cls`; else an error naming the closest one."""
    names = [f.name for f in dataclasses.fields(cls)]
    for key in keys:
        if key not in names:
            close = difflib.get_close_matches(key, names, n=1)
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
            return float(value)
        if base is float and isinstance(value, str):  # YAML 1.1 reads 3e-4 (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
        if base in (int, bool, str, list, dict) and isinstance(value, base):
            return value
    names = " or ".join(getattr(k, "__name__", str(k)) for k in allowed)
    raise ConfigError(f"{key} must be {names}, got {value!r}")


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


def load_dataclass(cls, path: str | Path | None = None, overrides: list[str] | None = None,
                   folder: Path = CONFIG_DIR, what: str = "config"):
    """Defaults of `cls`, then the YAML file, then `key=value` overrides (values read as YAML: 3, 0.1, true, [a, b])."""
    values: dict[str, Any] = {}
    if path is not None:
        source = resolve_config_path(path, folder, what)
        try:
            loaded = yaml.safe_load(source.read_text()) or {}
        except yaml.YAMLError as err:
            raise ConfigError(f"{source} is not valid YAML: {err}") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"{source} must hold a mapping of config keys, got {type(loaded).__name__}")
        check_keys(cls, loaded, str(source))
        values.update(loaded)
    for item in overrides or []:
        key, sep, raw = item.partition("=")
        if not sep:
            raise ConfigError(f"--set {item!r}: write it as key=value, e.g. --set epochs=10")
        key = key.strip()
        check_keys(cls, [key], "--set")
        try:
            values[key] = yaml.safe_load(raw)
        except yaml.YAMLError:
            values[key] = raw
    return cls(**{k: coerce(cls, k, v) for k, v in values.items()}).validate()


def save_config(config, path: Path) -> None:
    """Any config dataclass as YAML (what `load_dataclass` reads back)."""
    path.write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
