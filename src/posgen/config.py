"""Typed run configuration: plain dataclasses, JSON round trips and `key.sub=value` overrides.

A run is `RunConfig(model, discriminator, train, data)`; presets (`posgen.presets`) are small
factories returning one. Nothing is inherited from files: what you print is what runs.
The model config's class is the generator family (`posgen.models.GENERATORS`); its JSON carries
the family's name as a top-level `family` key, absent from configs written before there were
two families (they are StyleGAN2 ones).
"""
from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Literal

from posgen.data import DataConfig
from posgen.models import GENERATORS, DiscriminatorConfig, ModelConfig, StyleGAN2Config, family_of
from posgen.training.config import TrainConfig


class ConfigError(ValueError):
    """A bad configuration value or override; the message is one line."""


@dataclass
class RunConfig:
    name: str = "custom"
    description: str = ""
    model: ModelConfig = field(default_factory=StyleGAN2Config)
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    data: DataConfig = field(default_factory=DataConfig)

    def validate(self) -> None:
        try:
            self.model.validate()
            self.train.validate()
            self.data.validate()
        except ValueError as e:
            raise ConfigError(str(e)) from None
        if self.discriminator.resolution != self.model.resolution:
            raise ConfigError(f"discriminator.resolution ({self.discriminator.resolution}) must equal "
                              f"model.resolution ({self.model.resolution})")
        ms = self.train.multiscale
        if ms.sizes and not ms.resize_to_discriminator and not self.discriminator.adaptive_pool:
            raise ConfigError("multi-scale training without resize_to_discriminator needs discriminator.adaptive_pool=true")

    @property
    def family(self) -> str:
        """The generator family: the `GENERATORS` name of the model config's class."""
        return family_of(self.model)

    def to_dict(self) -> dict[str, Any]:
        return {"family": self.family, **dataclasses.asdict(self)}

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


def run_config_from_dict(data: dict[str, Any]) -> RunConfig:
    """`RunConfig.to_dict` inverted: `family` (default "stylegan2") picks the model config class."""
    data = dict(data)
    family = data.pop("family", "stylegan2")
    if not isinstance(family, str) or family not in GENERATORS:
        raise ConfigError(f"config.family: must be one of {', '.join(map(repr, GENERATORS))}; got {family!r}")
    model = _coerce(GENERATORS[family][0], data.pop("model", {}), "config.model")
    return dataclasses.replace(from_dict(RunConfig, data, "config"), model=model)


def apply_overrides(cfg: RunConfig, overrides: list[str]) -> RunConfig:
    """Apply `section.field=value` strings; values parse as JSON, else as plain strings."""
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
        node[parts[-1]] = value
    out = run_config_from_dict(data)
    out.validate()
    return out
