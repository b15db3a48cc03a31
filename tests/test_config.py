"""One source of truth per config key: the schema, which the workflow validates against and every config
dataclass takes its defaults and checks from. These tests walk every key of the schema."""

import dataclasses
import math

import jsonschema
import pytest

from densim.cli import build_parser
from densim.md import MDSettings, ImpactSettings
from densim.config import ConfigError, schema, schema_node, typed_config
from densim.elasticity import POISSON_DEFINITIONS
from densim.evaluation import EvaluationConfig
from densim.springs import STIFFNESS_MODES
from densim.networks import GENERATORS, DatasetConfig, NodeOptConfig, NoiPruConfig, PackingConfig
from densim.splits import SplitFractions
from densim.training import TrainingConfig

#: How to build each config dataclass with one field changed.
BUILDERS = {
    TrainingConfig: TrainingConfig,
    EvaluationConfig: EvaluationConfig,
    SplitFractions: SplitFractions,
    MDSettings: MDSettings,
    ImpactSettings: ImpactSettings,
    PackingConfig: PackingConfig,
    NodeOptConfig: NodeOptConfig,
    NoiPruConfig: NoiPruConfig,
    DatasetConfig: lambda **kw: DatasetConfig(**{"name": "d", "generator": "noi_pru", **kw}),
}
#: Keys the workflow or a command's options read directly (no dataclass), with where their default lives.
WORKFLOW_KEYS = {"seeds", "experiments.datasets", "experiments.models", "experiments.histories", "experiments.history_ablation.models",
                 "experiments.history_ablation.histories", "experiments.history_ablation.datasets", "cluster.training_gpus", "datasets.*.union", "datasets.*.protocol", "models",
                 "experiments.igns_ablation.models", "experiments.igns_ablation.warmup", "experiments.igns_ablation.loss_steps",
                 "experiments.igns_ablation.datasets", "training.overrides", "tables.steps", "tables.relative_mse_steps", "tables.fidelity", "tables.regime", "tables.long_range",
                 "datasets.*.packing",
                 "datasets.*.variant_of", "datasets.*.trajectories", "datasets.*.training.windows",
                 "datasets.*.source", "datasets.*.dumps", "datasets.*.data", "datasets.*.exclude", "trajectories.units"}
#: Keys passed to a ``densim`` command as options: key -> (subcommand path, option destination).
CLI_OPTIONS = {"spectra.dense_below": (("spectra",), "dense_below"), "spectra.sigma": (("spectra",), "sigma"),
               "spectra.cache": (("spectra",), "cache_dir"), "trajectories.small_strain": (("trajectories", "summary"), "small_strain")}


def leaves(node=None, path=""):
    """Dotted paths of every key with a value of its own (``datasets.*`` for any dataset)."""
    node = schema() if node is None else node
    if "$ref" in node:
        node = schema()["$defs"][node["$ref"].rsplit("/", 1)[-1]]
    if "properties" in node:
        for key, child in node["properties"].items():
            yield from leaves(child, f"{path}.{key}".lstrip("."))
        if isinstance(node.get("additionalProperties"), dict) and node["additionalProperties"]:
            yield from leaves(node["additionalProperties"], f"{path}.*")
    elif isinstance(node.get("additionalProperties"), dict) and "$ref" in node["additionalProperties"]:
        yield from leaves(node["additionalProperties"], f"{path}.*")
    else:
        yield path


def backed_fields():
    """Schema path -> (dataclass, field name) of every schema-backed dataclass field."""
    found = {}
    for cls in BUILDERS:
        for field in dataclasses.fields(cls):
            if "schema" in field.metadata:
                assert field.metadata["schema"] not in found, f"{field.metadata['schema']} is backed twice"
                found[field.metadata["schema"]] = (cls, field.name)
    return found


def test_every_schema_key_has_exactly_one_owner_and_a_description():
    keys, backed = set(leaves()), backed_fields()
    assert set(backed) <= keys, f"dataclass fields point at keys the schema lacks: {set(backed) - keys}"
    owners = set(backed) | WORKFLOW_KEYS | set(CLI_OPTIONS) | {"spectra.k"}
    assert keys == owners, f"keys without an owner: {keys - owners}; owners without a key: {owners - keys}"
    for key in keys:
        assert schema_node(key).get("description"), f"{key} has no description"


@pytest.mark.parametrize("key", sorted(backed_fields()))
def test_dataclass_default_is_the_schema_default(key):
    cls, name = backed_fields()[key]
    field = next(f for f in dataclasses.fields(cls) if f.name == name)
    node = schema_node(key)
    if "default" not in node:  # a required key (datasets.*.generator)
        assert field.default is dataclasses.MISSING
        return
    expected = tuple(node["default"]) if isinstance(node["default"], list) else node["default"]
    assert field.default == expected and type(field.default) is type(expected)


def full_config(key, value):
    """A minimal whole config with ``key`` set to ``value``."""
    config = {"datasets": {"d": {"generator": "noi_pru"}}}
    parts = key.replace("*", "d").split(".")
    node = config
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value
    return config


def beyond_bounds(node):
    """Values just outside each bound of a schema node, and values of the wrong type or choice."""
    integer = node.get("type") == "integer"
    step = (lambda v: 1) if integer else (lambda v: 1e-6 * max(1.0, abs(v)))
    values = []
    if "minimum" in node:
        values.append(node["minimum"] - step(node["minimum"]))
    if "exclusiveMinimum" in node:
        values.append(node["exclusiveMinimum"])
    if "maximum" in node:
        values.append(node["maximum"] + step(node["maximum"]))
    if "exclusiveMaximum" in node:
        values.append(node["exclusiveMaximum"])
    if "enum" in node:
        values.append("no-such-choice")
    if node.get("type") in ("integer", "number"):
        values += ["3", True]
    if integer:
        values.append(2.5)
    if node.get("type") == "array" and "items" in node:
        values += [[node["items"].get("maximum", 0) + 1] * node.get("minItems", 1), [0.0] * (node.get("maxItems", 2) + 1)]
    return values


BOUND_CASES = [(key, value) for key in sorted(backed_fields()) for value in beyond_bounds(schema_node(key))]


@pytest.mark.parametrize(("key", "value"), BOUND_CASES, ids=[f"{k}={v!r}" for k, v in BOUND_CASES])
def test_a_value_the_schema_refuses_is_refused_by_the_code_naming_the_key(key, value):
    validator = jsonschema.Draft202012Validator(schema())
    assert list(validator.iter_errors(full_config(key, value))), f"the schema accepts {key} = {value!r}"
    cls, name = backed_fields()[key]
    with pytest.raises(ConfigError, match=rf"\b{name}\b"):
        BUILDERS[cls](**{name: value})
    prefix = key.rsplit(".", 1)[0]
    with pytest.raises(ConfigError, match=rf"{prefix.replace('*', 'x').replace('.', '[.]')}[.]{name}"):
        extra = {"name": "x", "generator": "noi_pru"} if cls is DatasetConfig and name != "generator" else ({"name": "x"} if cls is DatasetConfig else {})
        typed_config(cls, {name: value}, prefix.replace("*", "x"), **extra)


def test_defaults_validate_and_an_unknown_key_is_named():
    config = full_config("training.horizon", 20)
    assert not list(jsonschema.Draft202012Validator(schema()).iter_errors(config))
    for cls, build in BUILDERS.items():
        build()
    with pytest.raises(ConfigError, match=r"training\.epochs: unknown key"):
        typed_config(TrainingConfig, {"epochs": 3}, "training")


def test_enums_are_the_code_registries():
    assert set(schema_node("datasets.*.generator")["enum"]) == set(GENERATORS)
    assert set(schema_node("datasets.*.poisson_ratio")["enum"]) == set(POISSON_DEFINITIONS)
    assert set(schema_node("stiffness")["enum"]) == set(STIFFNESS_MODES)


def test_command_line_defaults_are_the_schema_defaults():
    import densim.spectra

    for key, (path, dest) in CLI_OPTIONS.items():
        command = build_parser()
        for name in path:
            command = command._subparsers._group_actions[0].choices[name]
        defaults = {action.dest: action.default for action in command._actions}
        assert str(defaults[dest]) == str(schema_node(key)["default"]), key
    assert densim.spectra.DENSE_BELOW == schema_node("spectra.dense_below")["default"]
    assert math.isclose(densim.spectra.SIGMA, schema_node("spectra.sigma")["default"])


def test_a_model_needs_no_schema_entry():
    """Model keys come from the registry: the schema names none of them (but as the ablations' defaults)."""
    import copy

    from densim.models import MODELS

    trimmed = copy.deepcopy(schema())
    for grid in ("history_ablation", "igns_ablation"):
        ablation = trimmed["properties"]["experiments"]["properties"][grid]["properties"]["models"]
        assert set(ablation.pop("default")) <= set(MODELS)
    text = str(trimmed)
    assert not [key for key in MODELS if f"'{key}'" in text and key not in ("node_opt", "noi_pru")]


@pytest.mark.parametrize("variant, key", [
    ({"variant_of": "nowhere"}, "datasets.v.variant_of"),
    ({"variant_of": "noi_pru", "trajectories": {"frame_spacing": 2}}, "datasets.v.trajectories.frame_spacing"),
    ({"variant_of": "noi_pru", "trajectories": {"steps_per_frame": 0}}, "datasets.v.trajectories.steps_per_frame"),
    ({"variant_of": "noi_pru", "trajectories": {"rollout_start": 50}}, "datasets.v.trajectories.rollout_start"),
    ({"variant_of": "noi_pru", "training": {"windows": "middle"}}, "datasets.v.training.windows"),
    ({"variant_of": "noi_pru", "trajectories": {"small_strain": 0.01}}, "datasets.v.trajectories.small_strain"),
])
def test_a_bad_regime_variant_is_named_with_its_key(tmp_path, variant, key):
    import yaml

    from densim.config import load_config
    from densim.experiments import resolve_config
    from tests.conftest import ROOT

    (tmp_path / "variant.yaml").write_text(yaml.safe_dump({"datasets": {"v": variant}, "experiments": {"datasets": ["v"]}}))
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        resolve_config(load_config([ROOT / "config.yaml", tmp_path / "variant.yaml"]))


def test_a_variant_shares_its_sources_networks_and_overrides_only_its_own_trajectory_keys(tmp_path):
    import yaml

    from densim.config import load_config
    from densim.experiments import resolve_config
    from densim.experiments import built_datasets, network_datasets, network_spec, trajectory_section, training_section
    from tests.conftest import ROOT

    layer = {"datasets": {"v": {"variant_of": "noi_pru", "trajectories": {"steps_per_frame": 10, "rollout_start": 10, "frames": 213},
                                "training": {"windows": "start"}}},
             "experiments": {"datasets": ["v", "impact"], "history_ablation": {"models": []}}}
    (tmp_path / "variant.yaml").write_text(yaml.safe_dump(layer))
    config = resolve_config(load_config([ROOT / "config.yaml", tmp_path / "variant.yaml"]))
    assert built_datasets(config) == ["impact", "v"] and network_datasets(config) == ["node_opt", "noi_pru"]
    assert network_spec(config, "v") == network_spec(config, "noi_pru")
    section = trajectory_section(config, "v")
    assert (section["steps_per_frame"], section["frames"], section["rollout_start"]) == (10, 213, 10)
    assert section["damping"] == config["trajectories"]["damping"] and "impact" not in section
    assert "impact" in trajectory_section(config, "impact")
    assert training_section(config, "v")["windows"] == "start" and training_section(config, "noi_pru")["windows"] == config["training"]["windows"] != "start"


def test_a_dataset_can_have_networks_of_its_own_size_which_its_variants_share():
    from densim.config import load_config
    from densim.cost import work
    from densim.experiments import dataset_nodes, network_spec, resolve_config
    from densim.networks import DatasetConfig
    from tests.conftest import ROOT

    config = resolve_config(load_config([ROOT / "config.yaml", ROOT / "workflow/presets/large.yaml"]))
    large, small = DatasetConfig.from_dict("noi_pru_n5000", network_spec(config, "impact_n5000")), network_spec(config, "noi_pru_n200")
    assert large.packing.nodes == 5000 and small["packing"]["nodes"] == 200
    assert large.packing.packing_fraction == config["packing"]["packing_fraction"]  # the other packing keys are the section's
    assert network_spec(config, "noi_pru")["packing"] == config["packing"]  # datasets without one keep the section's
    assert (dataset_nodes(config, "impact_n5000"), dataset_nodes(config, "comb")) == (5000, config["packing"]["nodes"])

    class Job:  # what densim.cost prices: a network job's work grows as its own nodes squared
        rule, values = "networks", {"dataset": "noi_pru_n5000", "network": "0000"}

    assert work(config, Job()) == 5000.0**2
