"""The networks stage: configuration, files, determinism and the command line."""

import json
from pathlib import Path
import re

import numpy as np
import pytest
import xarray as xr

from densim.cli import main
from densim.io import DensimFileError, read_dataset, read_network
from densim.networks import ConfigError, DatasetConfig, generate_network
from densim.provenance import VOLATILE_ATTRS

ROOT = Path(__file__).resolve().parents[1]
SMALL = {"generator": "bond_pru_opt", "networks": 3, "nu_range": [-0.4, 0.4], "packing": {"nodes": 40}}


def generate(tmp_path, name, spec=SMALL, index=1):
    out = tmp_path / name
    main(["networks", "generate", "--dataset", "test", "--spec", json.dumps(spec), "--index", str(index), "--output", str(out)])
    return out


def test_same_seed_gives_identical_files(tmp_path):
    a = read_dataset(generate(tmp_path, "a.nc"), "network")
    b = read_dataset(generate(tmp_path, "b.nc"), "network")
    assert set(a.variables) == set(b.variables)
    for name in a.variables:
        assert a[name].dtype == b[name].dtype
        assert np.array_equal(a[name].values, b[name].values), name
    stable = lambda attrs: {k: v for k, v in attrs.items() if k not in VOLATILE_ATTRS}  # noqa: E731
    assert stable(a.attrs) == stable(b.attrs)


def test_network_file_contents_and_provenance(tmp_path):
    network, ds = read_network(generate(tmp_path, "n.nc"))
    assert ds["positions"].dtype == np.float64
    assert abs(float(ds["poisson_ratio"]) - float(ds["target_poisson_ratio"])) <= 0.005
    assert ds.attrs["generator"] == "bond_pru_opt" and ds.attrs["network"] == "0001"
    for key in ("densim_version", "git_commit", "git_dirty", "config_hash", "input_hashes", "command", "created", "package_versions"):
        assert key in ds.attrs
    assert json.loads(ds.attrs["config"])["packing"]["nodes"] == 40
    assert network.degrees().min() >= 3


def test_manifest_and_provenance_commands(tmp_path, capsys):
    files = [generate(tmp_path, f"{i}.nc", index=i) for i in range(3)]
    out = tmp_path / "manifest.csv"
    main(["networks", "manifest", *map(str, files), "--output", str(out)])
    import pandas as pd

    table = pd.read_csv(out, dtype={"network": str})
    assert list(table["network"]) == ["0000", "0001", "0002"]
    np.testing.assert_allclose(table["target_poisson_ratio"], [-0.4, 0.0, 0.4])
    assert (table["excess_coordination"] > 0).all()
    capsys.readouterr()
    main(["provenance", str(out)])
    assert "input_hashes" in capsys.readouterr().out


def test_bad_files_are_named(tmp_path):
    good = generate(tmp_path, "good.nc")
    with pytest.raises(DensimFileError, match="missing.nc"):
        read_network(tmp_path / "missing.nc")
    truncated = tmp_path / "truncated.nc"
    truncated.write_bytes(good.read_bytes()[:2000])
    with pytest.raises(DensimFileError, match="truncated.nc"):
        read_network(truncated)
    foreign = tmp_path / "foreign.nc"
    xr.Dataset({"x": ("a", [1.0])}).to_netcdf(foreign)
    with pytest.raises(DensimFileError, match="foreign.nc.*network"):
        read_network(foreign)


@pytest.mark.parametrize(
    "section, key",
    [
        ({"generator": "magic"}, "datasets.d.generator"),
        ({"generator": "noi_pru", "nu_range": [0.5, -0.5]}, "datasets.d.nu_range"),
        ({"generator": "noi_pru", "packing": {"nodes": -5}}, "datasets.d.packing.nodes"),
        ({"generator": "noi_pru", "colour": "red"}, "datasets.d.colour"),
    ],
)
def test_dataset_config_errors_name_the_key(section, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        DatasetConfig.from_dict("d", section)


def test_help_documents_the_stage(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["networks", "generate", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "--spec" in out and "nu_range" in out


@pytest.mark.parametrize("nu_range, interval, remedy", [
    ([0.95, 1.0], r"\[0\.925, 0\.975\]", "move nu_range there"),  # beyond every path
    ([-0.95, -0.9], r"\[-0\.975, -0\.925\]", "stepping over the interval"),  # crossed in steps wider than the interval
])
def test_noi_pru_that_never_lands_names_the_interval_where_its_paths_went_and_the_remedy(nu_range, interval, remedy):
    """An interval random paths never land in fails naming the network, the interval, the nu the paths went through and
    what to change: move nu_range when the paths never reached it, widen it when they stepped over it."""
    config = DatasetConfig.from_dict("d", {"generator": "noi_pru", "networks": 1, "nu_range": nu_range,
                                           "packing": {"nodes": 40}, "noi_pru": {"max_attempts": 2}})
    with pytest.raises(RuntimeError, match=rf"datasets\.d network 0000: no random path reached nu in {interval} in 2 attempts; "
                                           rf"the paths' nu went through \[\S+, \S+\].*{remedy}") as error:
        generate_network(config, 0)
    low, high = map(float, re.search(r"went through \[(\S+), (\S+)\]", str(error.value)).groups())
    assert low < high
