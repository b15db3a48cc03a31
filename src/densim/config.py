"""Configuration sections as typed dataclasses, with errors that name the key at fault."""

from __future__ import annotations

from dataclasses import fields


class ConfigError(ValueError):
    """A configuration value is invalid; the message names the key."""


def typed_config(cls, values: dict, prefix: str, **extra):
    """Instantiate a config dataclass from a mapping, naming any unknown key or value of the wrong type.

    Parameters
    ----------
    cls : dataclass type
    values : dict
        The config section.
    prefix : str
        Dotted path of the section, for error messages (``datasets.noi_pru``).
    **extra
        Fields given by the caller rather than the section.
    """
    defaults = {f.name: f.default for f in fields(cls)}
    for key, value in values.items():
        if key not in defaults:
            raise ConfigError(f"{prefix}.{key}: unknown key")
        expected = type(defaults[key])
        numeric = expected in (int, float) and isinstance(value, (int, float)) and not isinstance(value, bool)
        if expected in (int, float, str) and not (numeric or isinstance(value, expected)) or (expected is int and isinstance(value, float)):
            raise ConfigError(f"{prefix}.{key}: expected {expected.__name__}, got {value!r}")
    return cls(**values, **extra)
