"""Typed run configuration: plain dataclasses, JSON round trips and `key.sub=value` overrides.

A run is `RunConfig(family, model, train, data, discriminator)`; the family (a key of
`posgen.families.FAMILIES`) says which dataclass each section is, and presets
(`posgen.presets`) are small factories returning one. Nothing is inherited from files: what you
print is what runs. This module is the generic machinery; it imports no family, no trainer and
no torch (`posgen.families.run_config_from_dict` reads a config through the family table).
"""
from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from dataclasses import dataclass
from typing import Any, Literal

from posgen.data import DataConfig
from posgen.errors import ConfigError

__all__ = ["ConfigError", "RunConfig", "apply_overrides", "from_dict", "parse_run_config"]


MAX_RESOLUTION = 8192   # training resolution (every family): beyond it no machine holds a batch


@dataclass
class RunConfig:
    family: str
    model: Any                 # the family's model config
    train: Any                 # the family's training config (a posgen.training.config.TrainConfig)
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    discriminator: Any = None  # the family's discriminator config, None for families without one
    name: str = "custom"
    description: str = ""

    def validate(self) -> None:
        try:
            resolution = getattr(self.model, "resolution", None)
            if isinstance(resolution, int) and not 1 <= resolution <= MAX_RESOLUTION:
                raise ValueError(f"model.resolution must be in [1, {MAX_RESOLUTION}], got {resolution}")
            self.model.validate()
            if self.discriminator is not None and hasattr(self.discriminator, "validate"):
                self.discriminator.validate()
            self.train.validate()
            self.train.check_run(self)
            self.data.validate()
        except ValueError as e:
            raise ConfigError(str(e)) from None

    def to_dict(self) -> dict[str, Any]:
        out = {"family": self.family, "name": self.name, "description": self.description}
        for section in ("model", "discriminator", "train", "data"):
            value = getattr(self, section)
            out[section] = None if value is None else dataclasses.asdict(value)
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)


def _coerce(tp: Any, value: Any, where: str) -> Any:
    """Convert a JSON value to the annotated type `tp` (dataclasses, tuples, Literals, Optionals)."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected an object, got {value!r}")
        return from_dict(tp, value, where)
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{where}: must be one of {', '.join(map(repr, args))}; got {value!r}")
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(a, value, where)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if errors else f"{where}: bad value {value!r}")
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(args[0], v, where) for v in value)
        if len(args) != len(value):
            raise ConfigError(f"{where}: expected {len(args)} values, got {len(value)}")
        return tuple(_coerce(a, v, where) for a, v in zip(args, value))
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value:
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return int(value)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    return value


def from_dict(cls: type, data: dict[str, Any], where: str = "config") -> Any:
    """Build dataclass `cls` from a dict; unknown keys are errors, missing keys take defaults."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
    return cls(**{k: _coerce(hints[k], v, f"{where}.{k}") for k, v in data.items()})


def parse_run_config(data: dict[str, Any], sections: dict[str, type | None]) -> RunConfig:
    """`RunConfig.to_dict` inverted, given the dataclass of each section ("model", "train",
    "discriminator" (None: the family has none), "data" is always `DataConfig`)."""
    if not isinstance(data, dict):
        raise ConfigError(f"config: must be a JSON object, got {type(data).__name__}")
    if not _finite(data):
        raise ConfigError("config: values must be finite numbers (found NaN or infinity)")
    data = dict(data)
    unknown = set(data) - {"family", "name", "description", "model", "discriminator", "train", "data"}
    if unknown:
        raise ConfigError(f"config: unknown field(s) {', '.join(sorted(unknown))}")
    out: dict[str, Any] = {"family": data.get("family")}
    for key in ("name", "description"):
        if key in data:
            out[key] = _coerce(str, data[key], f"config.{key}")
    out["data"] = _coerce(DataConfig, data.get("data", {}), "config.data")
    for section in ("model", "train", "discriminator"):
        cls, value = sections[section], data.get(section)
        if cls is None:
            if value is not None:
                raise ConfigError(f"config.{section}: a {out['family']} run has no {section} section")
            out[section] = None
        else:
            out[section] = _coerce(cls, {} if value is None else value, f"config.{section}")
    return RunConfig(**out)


def apply_overrides(cfg: RunConfig, overrides: list[str]) -> RunConfig:
    """Apply `section.field=value` strings; values parse as JSON, else as plain strings.

    Numbers must be finite (`--set train.lr=NaN` is refused here, before any work)."""
    data = cfg.to_dict()
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set expects key=value, got {item!r}")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        node = data
        parts = key.split(".")
        for p in parts[:-1]:
            if not isinstance(node.get(p), dict):
                raise ConfigError(f"--set {key}: no section {p!r}")
            node = node[p]
        if parts[-1] not in node:
            raise ConfigError(f"--set {key}: unknown field {parts[-1]!r}")
        if parts == ["family"]:
            raise ConfigError("--set family: the family comes with the preset; choose another preset")
        if not _finite(value):
            raise ConfigError(f"--set {key}: values must be finite numbers, got {raw}")
        node[parts[-1]] = value
    sections = {name: None if getattr(cfg, name) is None else type(getattr(cfg, name))
                for name in ("model", "train", "discriminator")}
    out = parse_run_config(data, sections)
    out.validate()
    return out


def _finite(value: Any) -> bool:
    """Whether every number in a JSON value (nested dicts and lists) is finite."""
    return not any(isinstance(v, float) and not math.isfinite(v) for v in _leaves(value))


def _leaves(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [x for v in value.values() for x in _leaves(v)]
    if isinstance(value, list):
        return [x for v in value for x in _leaves(v)]
    return [value]
