"""densim's deck against the study group's published runs, where a clone of their repository is present (at its first
commit, which holds the 50 runs: see workflow/presets/published.yaml; ``DENSIM_PUBLISHED`` names the clone, default
``published/`` in the checkout). Nothing of it is part of this project, so without a clone these tests skip."""

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from densim.cli import main
from densim.dumps import UNITS
from tests.conftest import ROOT

CLONE = Path(os.environ.get("DENSIM_PUBLISHED", ROOT / "published"))
#: Runs of rigid and floppy networks, 24 to 73 nodes (2: 3 floppy modes, 12: 1, 21: 1, 10 and 33: none).
RUNS = ("2", "10", "12", "21", "33")

pytestmark = pytest.mark.skipif(not (CLONE / "1/compression_sim/deform_dump.lammpstrj").is_file(),
                                reason=f"no clone of the study group's runs at {CLONE}")


@pytest.fixture(scope="module")
def survey(tmp_path_factory):
    """The five runs imported, each beside six runs of densim's deck in the published regime on its network."""
    output = tmp_path_factory.mktemp("published") / "survey.csv"
    runs = tmp_path_factory.mktemp("runs")
    for run in RUNS:  # the five runs' folders, linked
        (runs / run).symlink_to(CLONE / run)
    main(["trajectories", "survey", "--dumps", str(runs / "*/compression_sim/deform_dump.lammpstrj"),
          "--data", str(runs / "*/compression_sim/network.lmp"), "--units", "metal",
          "--settings", '{"timestep": 0.01, "damping": 1.0}', "--rerun", "published", "--seeds", "1", "2", "3", "4", "5", "6",
          "-o", str(output)])
    table = pd.read_csv(output, dtype={"run": str}).set_index("run")
    return table.loc[list(RUNS)]


def test_densims_deck_in_the_published_regime_has_their_runs_temperature_and_learnability(survey):
    kelvin = survey["temperature"] / UNITS["metal"][1]
    assert kelvin.between(0.2, 0.215).all(), kelvin  # the bath at 0.1 K integrated twice: 0.2 K
    # their thermostat has no ``zero yes``: it heats 2N degrees of freedom, which LAMMPS counts as 2N - 2
    nodes = survey["nodes"]
    np.testing.assert_allclose(survey["ours_temperature"] * nodes / (nodes - 1), survey["temperature"], rtol=0.03)
    for name in ("acceleration_over_velocity", "linear_floor_r2", "local_predictability_r2"):
        np.testing.assert_allclose(survey[f"ours_{name}"], survey[name], rtol=0.06, err_msg=name)


@pytest.mark.parametrize("strain", ["0.01", "0.025", "0.05"])
def test_densims_deck_reproduces_their_box_poisson_ratio_within_the_seed_spread(survey, strain):
    """Thermal motion spreads one network's box Poisson ratio by 0.02 to 0.7 between Langevin seeds: the published
    run (one seed) must lie within three of densim's seed standard deviations of its mean, in four runs of five."""
    theirs, ours, spread = (survey[f"{prefix}nu_box_at_{strain}{suffix}"] for prefix, suffix in (("", ""), ("ours_", ""), ("ours_", "_std")))
    z = (theirs - ours) / spread
    assert (z.abs() < 3).sum() >= 4, z


@pytest.mark.skipif(not (ROOT / "published/1/compression_sim/deform_dump.lammpstrj").is_file(), reason="no clone at published/")
def test_the_published_preset_finds_every_run_with_a_dump_but_the_one_it_excludes(monkeypatch):
    from densim.config import load_config
    from densim.experiments import imported_files, resolve_config

    monkeypatch.chdir(ROOT)
    config = resolve_config(load_config([ROOT / "config.yaml", ROOT / "workflow/presets/published.yaml"]))
    pairs = imported_files(config, "published")
    assert len(pairs) == 49 and not any(dump.startswith("published/47/") for dump, _ in pairs)
    assert all(dump.split("/")[1] == data.split("/")[1] for dump, data in pairs)  # each dump with its own folder's network
