"""Typed model configs: one dataclass per model, saved with its weights (``config.json``)."""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

from .errors import ConfigError

C = TypeVar("C")


def build_config(cls: type[C], base: dict[str, Any] | None = None, **overrides: Any) -> C:
    """Instantiate config dataclass ``cls`` from a variant's ``base`` values plus user ``overrides``.

    Unknown keys raise :class:`ConfigError` naming them; JSON lists become tuples where the field's
    default is a tuple (so a config survives a ``config.json`` round trip unchanged).
    """
    fields = {f.name: f for f in dataclasses.fields(cls)}
    values = {**(base or {}), **overrides}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigError(f"{cls.__name__} has no field(s) {unknown}; valid fields: {sorted(fields)}")
    for k, v in list(values.items()):
        f = fields[k]
        default = f.default if f.default is not dataclasses.MISSING else None
        if isinstance(v, list) and (isinstance(default, tuple) or "tuple" in str(f.type)):
            values[k] = tuple(tuple(x) if isinstance(x, list) else x for x in v)
    try:
        cfg = cls(**values)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"invalid {cls.__name__}: {e}") from e
    return cfg


def config_to_dict(cfg: Any) -> dict[str, Any]:
    return dataclasses.asdict(cfg)
