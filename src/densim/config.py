"""The configuration: one schema for every key, and typed dataclasses whose defaults and bounds come from it.

``config.schema.yaml`` (shipped with the package) is the single source of truth for every key's type, default,
bounds and description: Snakemake validates ``config.yaml`` against it before any job, and every config
dataclass takes its defaults from it (:func:`setting`) and checks its values against it (:func:`check_settings`),
so a value is accepted or refused the same way whether it comes from the workflow, the command line or code.
Only checks that relate several keys (for example ``final_learning_rate <= learning_rate``) live in code.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import math
from pathlib import Path
from typing import Any

import jsonschema
import yaml

SCHEMA_PATH = Path(__file__).with_name("config.schema.yaml")


class ConfigError(ValueError):
    """A configuration value is invalid; the message names the key."""


@functools.cache
def schema() -> dict:
    """The configuration schema (JSON Schema, draft 2020-12)."""
    return yaml.safe_load(SCHEMA_PATH.read_text())


def schema_node(path: str) -> dict:
    """The schema of one key, by dotted path; ``*`` stands for any dataset name (``datasets.*.noi_pru.noise``)."""
    node = schema()
    for part in path.split("."):
        node = node["additionalProperties"] if part == "*" else node["properties"][part]
        if "$ref" in node:
            node = schema()["$defs"][node["$ref"].rsplit("/", 1)[-1]]
    return node


def default(path: str) -> Any:
    """The schema's default of a key (lists become tuples, so dataclass defaults stay immutable)."""
    value = schema_node(path)["default"]
    return tuple(value) if isinstance(value, list) else value


def setting(path: str):
    """A dataclass field for the config key ``path``: its default from the schema, its schema path recorded."""
    return dataclasses.field(default=default(path), metadata={"schema": path})


def _plain(value):
    return list(value) if isinstance(value, tuple) else value


def error_key(error: jsonschema.ValidationError, prefix: str = "") -> str:
    """Dotted path of the config key a schema error is about (``datasets.noi_pru.nu_range[0]``)."""
    path = prefix + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
    return path.lstrip(".") or "(top level)"


def check_value(value, path: str, key: str) -> None:
    """Check one value against the schema of ``path``; a failure names ``key`` and the cause.

    Non-finite numbers (YAML's ``.inf`` and ``.nan``) are refused too: JSON Schema's bounds let NaN through.
    """
    error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(schema_node(path)).iter_errors(_plain(value)))
    if error is not None:
        raise ConfigError(f"{error_key(error, key)}: {error.message}")
    numbers = value if isinstance(value, (list, tuple)) else [value]
    if any(isinstance(x, float) and not math.isfinite(x) for x in numbers):
        raise ConfigError(f"{key}: {value!r} is not a finite number")


def check_settings(instance, prefix: str) -> None:
    """Check every schema-backed field of a frozen config dataclass against the schema.

    Integers given for ``number`` keys are stored as floats, so that a config hash does not depend on
    whether ``1`` or ``1.0`` was written.
    """
    for field in dataclasses.fields(instance):
        if "schema" not in field.metadata:
            continue
        value = getattr(instance, field.name)
        check_value(value, field.metadata["schema"], f"{prefix}.{field.name}")
        types = schema_node(field.metadata["schema"]).get("type")
        if "number" in (types if isinstance(types, list) else [types]) and isinstance(value, int) and not isinstance(value, bool):
            object.__setattr__(instance, field.name, float(value))


def typed_config(cls, values: dict, prefix: str, **extra):
    """Instantiate a config dataclass from a mapping, naming any unknown key or bad value.

    Parameters
    ----------
    cls : dataclass type
        Fields made with :func:`setting` are checked against the schema.
    values : dict
        The config section.
    prefix : str
        Dotted path of the section, for error messages (``datasets.noi_pru``).
    **extra
        Fields given by the caller rather than the section.
    """
    known = {field.name: field for field in dataclasses.fields(cls)}
    for key, value in values.items():
        if key not in known or key in extra:
            raise ConfigError(f"{prefix}.{key}: unknown key")
        if "schema" in known[key].metadata:
            check_value(value, known[key].metadata["schema"], f"{prefix}.{key}")
    return cls(**values, **extra)


def _merged(base: dict, update: dict) -> dict:
    """``base`` updated by ``update`` key by key, recursing into mappings (how Snakemake layers config files)."""
    out = dict(base)
    for key, value in update.items():
        out[key] = _merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def _fill_defaults(instance: dict, node: dict) -> None:
    """Fill in the schema's defaults of missing keys, recursively (as Snakemake's validation does)."""
    if "$ref" in node:
        node = schema()["$defs"][node["$ref"].rsplit("/", 1)[-1]]
    if not isinstance(instance, dict):
        return
    for key, sub in node.get("properties", {}).items():
        if key not in instance and "default" in sub:
            instance[key] = copy.deepcopy(sub["default"])
        if key in instance:
            _fill_defaults(instance[key], sub)
    if isinstance(node.get("additionalProperties"), dict):
        for key in set(instance) - set(node.get("properties", {})):
            _fill_defaults(instance[key], node["additionalProperties"])


def load_config(paths: list[str | Path]) -> dict:
    """The workflow's configuration from YAML files layered in order (``config.yaml`` first, then presets), checked
    against the schema with its defaults filled in.

    Raises
    ------
    ConfigError
        Naming a missing or unreadable file, or the first bad key and its cause.
    """
    config: dict = {}
    for path in paths:
        try:
            layer = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as err:
            raise ConfigError(f"{path}: not a readable YAML config ({err})") from None
        if not isinstance(layer, dict):
            raise ConfigError(f"{path}: a config file must hold a mapping of keys")
        config = _merged(config, layer)
    return validated(config)


def validated(config: dict) -> dict:
    """``config`` checked against the schema, with its defaults filled in (in place, and returned).

    The workflow (through :func:`densim.experiments.resolve_config`) and :func:`load_config` both come here, so a
    value is refused, and a default filled in, the same way on either side.

    Raises
    ------
    ConfigError
        Naming the first bad key and its cause.
    """
    error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(schema()).iter_errors(config))
    if error is not None:
        raise ConfigError(f"{error_key(error)}: {error.message}")
    _fill_defaults(config, schema())
    return config
