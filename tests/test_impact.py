"""The impact protocol (:func:`densim.md.impact`): a strip kicked outwards at fixed box, against physics.

Checked: zero total momentum and a fixed box; conservation of energy without damping, to the bound that velocity
Verlet's shadow energy sets on a linear network; the front's speed on a triangular lattice against the
longitudinal sound speed ``c_L = sqrt(C_xxxx / rho)`` of linear response; bitwise determinism; the arrival
observables on synthetic series; the ``trajectories.impact`` config keys against the schema; and the command
that writes impact trajectory files.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import scipy.sparse.linalg as spla
import torch

from densim.cli import main
from densim.md import KICK_CENTRE, MDSettings, ImpactSettings, impact, impact_strips, kick_velocities
from densim.config import ConfigError, default, schema_node
from densim.elasticity import hessian, linear_response
from densim.io import read_dataset
from densim.springs import minimum_image, triangular_lattice
from densim.observables import far_displacement, front_arrival
from densim.protocols import PROTOCOLS, md_settings
from densim.trajectories import summary

impact_settings = PROTOCOLS["impact"].settings
from tests.test_config import beyond_bounds

IMPACT_KEYS = sorted(schema_node("trajectories.impact")["properties"])


@pytest.fixture(scope="module")
def lattice():
    """A triangular lattice of unit springs, 64 cells along x and 4 along y: the kick makes a plane wave along x."""
    return triangular_lattice(64, 4)


def test_the_kick_has_zero_momentum_and_the_box_never_changes(jammed):
    kick = ImpactSettings()
    velocity = kick_velocities(jammed.positions, jammed.box, kick)
    kicked, _ = impact_strips(jammed.positions, jammed.box, kick)
    n = jammed.num_nodes
    assert abs(velocity.sum()) <= 1e-12 * kick.speed * n
    assert np.all(velocity[~kicked] == 0)
    # outwards: x velocity and offset from the strip's centre line have the same sign (up to the strip's mean)
    offset = minimum_image(jammed.positions[kicked, 0] - KICK_CENTRE * jammed.box[0], jammed.box[0])
    assert np.all(velocity[kicked] * offset > 0)
    run = impact(jammed, MDSettings(), kick)
    assert np.array_equal(run.box, np.broadcast_to(jammed.box, run.box.shape)) and np.all(run.strain == 0)
    assert run.kinetic_energy[0] == pytest.approx(0.5 * np.sum(velocity**2), rel=1e-12)
    # The centre of mass moves by P t / (N m): with P = 0 the summed displacement is rounding only. Measured
    # 2e-13 of speed * N; the thermostat's noise (temperature 1e-12) adds no net force (zero yes).
    time = np.arange(len(run.positions)) * kick.steps_per_frame * MDSettings().timestep
    momentum = np.abs((run.positions - run.positions[0]).sum(axis=1))[1:] / time[1:, None]
    assert momentum.max() <= 1e-12 * kick.speed * n


def test_energy_is_conserved_without_damping_to_the_verlet_shadow_energy_bound(jammed):
    """Velocity Verlet conserves a shadow energy exactly on a linear system: per mode ``v**2 / 2 + (1 - (w dt)**2 / 4)
    w**2 x**2 / 2``. The true energy exceeds it by ``(w dt)**2 / 4`` times the mode's potential energy, so with all
    the energy kinetic at frame 0, ``0 <= E / E0 - 1 <= lambda_max dt**2 / 4``, and the excess scales as dt**2.
    The kick strains bonds by ~1e-4, so the network's nonlinearity and a damping time of 1e9 (a loss of 1e-7 over
    the run) stay far below it."""
    lambda_max = float(spla.eigsh(hessian(jammed), k=1, which="LA", return_eigenvectors=False)[0])
    excess = {}
    for timestep, steps in ((0.05, 20), (0.1, 10)):  # the same frames, 40 t0
        run = impact(jammed, MDSettings(temperature=0.0, timestep=timestep), ImpactSettings(damping=1e9, steps_per_frame=steps))
        energy = run.potential_energy + run.kinetic_energy
        excess[timestep] = energy / energy[0] - 1
        assert excess[timestep].min() >= -1e-6
        # measured 0.91 of the bound at both timesteps (1.4e-3 at 0.05)
        assert excess[timestep].max() <= lambda_max * timestep**2 / 4
        assert run.potential_energy.max() >= 0.5 * energy[0]  # the energy does pass into the springs
    # measured 4.02
    assert excess[0.1].max() / excess[0.05].max() == pytest.approx(4.0, rel=0.1)


def test_the_front_arrives_later_at_farther_strips_at_the_longitudinal_sound_speed(lattice):
    """A strip uniform in y sends plane waves along x; their front runs at ``c_L = sqrt(C_xxxx / rho)``, with
    ``C_xxxx = B + G = 3 sqrt(3) k / 4`` for the lattice (exact, and what linear response gives) and ``rho = N m / area``:
    ``c_L = sqrt(9 / 8)`` here."""
    moduli = linear_response(lattice)
    c_xxxx = moduli.stiffness_matrix[0, 0]
    assert c_xxxx == pytest.approx(moduli.bulk + moduli.shear, rel=1e-9) and c_xxxx == pytest.approx(3 * np.sqrt(3) / 4, rel=1e-9)
    sound_speed = np.sqrt(c_xxxx / (lattice.num_nodes / lattice.area))
    assert sound_speed == pytest.approx(np.sqrt(9 / 8), rel=1e-9)
    settings, kick = MDSettings(frames=201, temperature=0.0), ImpactSettings(strip=0.1, steps_per_frame=2, damping=1e6)
    run = impact(lattice, settings, kick)
    frame_time = kick.steps_per_frame * settings.timestep
    lx = lattice.box[0]
    x = run.positions[0, :, 0]
    # thin strips (one lattice spacing wide) 6 to 16 spacings right of the kick's centre line (3.2 past its edge
    # onwards); the left-going pulse reaches them 32 spacings later, after the run
    distances = np.arange(6.0, 17.0, 2.0)
    arrival = []
    for distance in distances:
        strip = np.abs(minimum_image(x - KICK_CENTRE * lx - distance, lx)) < 0.6
        displacement = far_displacement(run.positions, strip)
        arrival.append(front_arrival(displacement, kick.arrival_fraction * displacement.max()) * frame_time)
    assert np.all(np.diff(arrival) > 0)
    speed = np.polyfit(arrival, distances, 1)[0]
    # measured +2.5 %: the 10 % level of the pulse's rise runs a little ahead of c_L as the lattice's dispersion
    # spreads the pulse (its half-height runs 1.2 % slow); 10 % leaves room for that and no more
    assert speed == pytest.approx(sound_speed, rel=0.1)


def test_two_runs_are_bitwise_identical(jammed):
    settings, kick = MDSettings(frames=11, temperature=1e-8), ImpactSettings()  # a noise well above rounding
    first, second = impact(jammed, settings, kick), impact(jammed, settings, kick)
    for field in ("positions", "box", "strain", "potential_energy", "kinetic_energy"):
        assert np.array_equal(getattr(first, field), getattr(second, field)), field
    assert not np.array_equal(first.positions, impact(jammed, dataclasses.replace(settings, seed=2), kick).positions)


def test_front_arrival_on_synthetic_series():
    ramp = np.array([0.0, 0.0, 0.0, 1.0, 2.0, 3.0])
    assert front_arrival(ramp, 0.25) == 2.25  # exact on a linear ramp
    assert front_arrival(ramp, 2.5) == 4.5
    assert front_arrival(ramp, 2.0) == 4.0  # reached exactly at a frame
    assert front_arrival(ramp, 0.0) == 0.0
    assert np.isnan(front_arrival(ramp, 3.5))  # never reached
    assert np.isnan(front_arrival(np.full(4, np.nan), 1.0))
    assert front_arrival([0.0, np.nan, 2.0], 1.0) == 2.0  # a non-finite frame before the crossing: no interpolation


def test_far_displacement_is_the_mean_distance_from_frame_0_over_the_far_nodes():
    rng = np.random.default_rng(0)
    positions = rng.normal(size=(5, 7, 2))
    far = np.array([True, False, True, False, False, True, False])
    expected = np.linalg.norm(positions[:, far] - positions[0, far], axis=-1).mean(axis=1)
    np.testing.assert_allclose(far_displacement(positions, far), expected, rtol=1e-14)
    assert far_displacement(positions, far)[0] == 0.0
    np.testing.assert_allclose(far_displacement(torch.from_numpy(positions), far).numpy(), expected, rtol=1e-14)  # torch too
    batched = far_displacement(np.stack([positions, 2 * positions]), far)
    np.testing.assert_allclose(batched, [expected, 2 * expected], rtol=1e-14)


def test_strips_lie_where_the_settings_put_them(lattice):
    kick = ImpactSettings(strip=0.25, far=0.125)
    kicked, far = impact_strips(lattice.positions, lattice.box, kick)
    x = lattice.positions[:, 0]
    assert lattice.box[0] == 64
    # 16 and 8 columns of the 64-cell lattice (x = 16 is the centre, x = 48 the far centre), 4 rows each,
    # less the nodes exactly on an edge
    assert set(np.unique(x[kicked])) == {v for v in np.arange(0, 64, 0.5) if abs(v - 16) < 8}
    assert set(np.unique(x[far])) == {v for v in np.arange(0, 64, 0.5) if abs(v - 48) < 4}
    assert not np.any(kicked & far)
    velocity = kick_velocities(lattice.positions, lattice.box, kick)
    assert np.all(velocity[x == 16] == 0) and np.all(velocity[~kicked] == 0)  # the centre line and the rest stay at rest
    with pytest.raises(ValueError, match=r"trajectories\.impact\.far"):
        impact_strips(lattice.positions[x < 40], lattice.box, kick)


@pytest.mark.parametrize("key", IMPACT_KEYS)
def test_impact_settings_follow_the_schema(key):
    """Every ``trajectories.impact`` key is an ImpactSettings field with the schema's default, and a value the
    schema refuses is refused naming ``trajectories.impact.<key>`` (the checks of test_config for the other keys)."""
    field = next(f for f in dataclasses.fields(ImpactSettings) if f.name == key)
    assert field.metadata["schema"] == f"trajectories.impact.{key}"
    assert field.default == default(f"trajectories.impact.{key}") and type(field.default) is type(default(f"trajectories.impact.{key}"))
    for value in beyond_bounds(schema_node(f"trajectories.impact.{key}")):
        with pytest.raises(ConfigError, match=rf"trajectories\.impact\.{key}"):
            impact_settings({"impact": {key: value}})


def test_config_sections_and_protocols():
    assert {f.name for f in dataclasses.fields(ImpactSettings)} == set(IMPACT_KEYS)
    assert not {"impact", "protocol"} & {f.name for f in dataclasses.fields(MDSettings)}
    # the trajectories section as the workflow hands it over, defaults filled in, impact subsection included
    section = {"frames": 5, "impact": {key: default(f"trajectories.impact.{key}") for key in IMPACT_KEYS}}
    assert md_settings(section) == MDSettings(frames=5)
    assert impact_settings(section) == ImpactSettings() == impact_settings({})
    with pytest.raises(ConfigError, match=r"trajectories\.impact\.sped: unknown key"):
        impact_settings({"impact": {"sped": 1.0}})
    with pytest.raises(ConfigError, match=r"trajectories\.impact: expected a mapping"):
        impact_settings({"impact": 3})
    assert tuple(schema_node("datasets.*.protocol")["enum"]) == tuple(PROTOCOLS)
    assert default("datasets.*.protocol") == "compression"


@pytest.fixture(scope="module")
def network_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("impact") / "0000.nc"
    main(["networks", "generate", "--dataset", "wave", "--index", "0", "-o", str(path),
          "--spec", '{"generator": "bond_pru_opt", "networks": 2, "nu_range": [0.0, 0.2], "packing": {"nodes": 40}}'])
    return path


def test_the_command_writes_impact_trajectories(network_file, tmp_path):
    output = tmp_path / "0000.nc"
    main(["trajectories", "simulate", str(network_file), "--protocol", "impact", "-o", str(output),
          "--settings", '{"frames": 21, "damping": 3.0, "impact": {"speed": 0.002}}'])
    ds = read_dataset(output, "trajectory", ("positions", "box", "bonds", "kicked", "far", "far_displacement", "arrival_frame"))
    assert ds.attrs["protocol"] == "impact" and ds.sizes["time"] == 21
    md = json.loads(ds.attrs["md_settings"])
    assert md["impact"] == dataclasses.asdict(ImpactSettings(speed=0.002))
    assert md["damping"] == 200.0 and md["steps_per_frame"] == 10  # what the run used: the kick's, not the section's
    np.testing.assert_allclose(ds["time"].values, np.arange(21) * 10 * 0.05)
    assert ds["kicked"].dtype == bool and ds["kicked"].dims == ("node",) and ds["far"].any()
    assert not (ds["kicked"] & ds["far"]).any()
    displacement = ds["far_displacement"].values
    np.testing.assert_array_equal(displacement, far_displacement(ds["positions"].values, ds["far"].values))
    assert float(ds["arrival_threshold"]) == pytest.approx(0.1 * displacement.max())
    assert 0 < float(ds["arrival_frame"]) < 20
    assert not any(name.startswith("poisson_ratio") for name in ds.data_vars)
    assert np.isfinite(float(ds["noise_over_signal"]))  # against the athermal twin of the impact

    table = summary([ds])
    assert table.loc[0, "networks"] == 1 and table.loc[0, "frames"] == 21 and table.loc[0, "final_strain"] == 0
    assert table.loc[0, "arrival_frame_median"] == table.loc[0, "arrival_frame_min"] == float(ds["arrival_frame"])
    assert np.isnan(table.loc[0, "nu_min"]) and np.isnan(table.loc[0, "positions_vs_box_r2"])


def test_the_command_keeps_compression_files_and_names_a_bad_impact_key(network_file, tmp_path):
    output = tmp_path / "0000.nc"
    main(["trajectories", "simulate", str(network_file), "-o", str(output), "--settings", '{"frames": 6}'])
    ds = read_dataset(output, "trajectory", ("poisson_ratio_box", "poisson_ratio_positions"))
    assert ds.attrs["protocol"] == "compression" and "kicked" not in ds and "impact" not in json.loads(ds.attrs["md_settings"])
    assert "arrival_frame_median" not in summary([ds]).columns
    with pytest.raises(SystemExit, match=r"trajectories\.impact\.sped"):
        main(["trajectories", "simulate", str(network_file), "--protocol", "impact", "-o", str(tmp_path / "x.nc"),
              "--settings", '{"impact": {"sped": 0.002}}'])
    assert not (tmp_path / "x.nc").exists()


def test_impact_rollouts_are_scored_on_the_wave_front_at_fixed_box(network_file, tmp_path):
    """The truth scores an arrival error of 0; the frozen baseline never sees the front arrive (censored at the last
    frame); no Poisson ratio is defined; rollouts keep the fixed box."""
    import torch

    from densim.evaluation import evaluate, score_trajectory
    from densim.models import build_simulator
    from densim.rollout import estimated_boxes, trajectory_graph
    from densim.training import TrainingConfig, compute_statistics

    output = tmp_path / "0000.nc"
    main(["trajectories", "simulate", str(network_file), "--protocol", "impact", "-o", str(output), "--settings", '{"frames": 21}'])
    ds = read_dataset(output, "trajectory")
    graph = trajectory_graph(ds, None)
    assert graph.protocol == "impact" and graph.far.sum() > 0
    assert torch.equal(estimated_boxes([graph], [graph.positions[:, 5] + 0.01], graph.box[5:6, 0]), graph.box[:1])
    truth = score_trajectory(graph.positions, graph, 2, 1.0)
    assert float(truth["arrival_frame"]) == pytest.approx(float(ds["arrival_frame"])) == pytest.approx(float(truth["arrival_frame_true"]))
    assert np.isnan(truth["poisson_ratio"]).all() and np.isnan(truth["poisson_ratio_true"]).all()
    assert 2 < float(ds["arrival_frame"]) < 20  # the front arrives after the input frames, within the run
    frozen = build_simulator("frozen", 2, compute_statistics([graph], TrainingConfig(horizon=10)), seed=0)
    scored = evaluate(frozen, [graph])
    assert scored.attrs["protocol"] == "impact"
    assert float(scored["arrival_frame"][0]) == 20.0  # censored: the held frame never moves
    assert float(scored["arrival_error"]) == pytest.approx(20.0 - float(ds["arrival_frame"]))
    assert np.isnan(scored["poisson_r2"]).all()


def test_every_protocol_is_one_registry_entry_that_the_schema_and_the_command_offer():
    from densim.protocols import Protocol, get_protocol

    assert all(isinstance(protocol, Protocol) and protocol.name == name for name, protocol in PROTOCOLS.items())
    assert {protocol.headline for protocol in PROTOCOLS.values()} == {"poisson_r2", "arrival_error"}
    with pytest.raises(ValueError, match="unknown trajectory protocol 'shake'; known protocols: compression, impact"):
        get_protocol("shake")
