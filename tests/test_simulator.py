"""The acceleration family's integrator, its exact inverse, and the affine part of the velocities."""

import pytest
import torch

from densim.observables import affine_velocity
from densim.simulator import AccelerationSimulator, Statistics, edge_features


def statistics():
    return Statistics(
        velocity_mean=torch.tensor([1e-4, -2e-5]),
        velocity_std=torch.tensor([3e-4, 2e-4]),
        acceleration_mean=torch.tensor([0.0, 1e-7]),
        acceleration_std=torch.tensor([2e-6, 3e-6]),
        edge_mean=torch.zeros(4),
        edge_std=torch.ones(4),
    )


def compression(frames=6, nodes=50, seed=0):
    """Positions of a compressed box with some non-affine motion, in float64 at realistic magnitudes."""
    g = torch.Generator().manual_seed(seed)
    box0 = torch.tensor([11.0, 11.0], dtype=torch.float64)
    x0 = torch.rand(nodes, 2, generator=g, dtype=torch.float64) * box0
    strain = -torch.linspace(0, 5e-4, frames, dtype=torch.float64)
    box_x = box0[0] * (1 + strain)
    centre = float(box0[0] / 2)
    xs = centre + (x0[:, None, 0] - centre) * (1 + strain)
    ys = x0[:, None, 1] * (1 - 0.3 * strain)
    wobble = 1e-5 * torch.randn(nodes, frames, 2, generator=g, dtype=torch.float64)
    return torch.stack([xs, ys], dim=-1) + wobble, box_x, centre


@pytest.mark.parametrize("residual", [False, True])
def test_postprocess_inverts_target_to_1e10(residual):
    positions, box_x, centre = compression()
    sim = AccelerationSimulator(torch.nn.Identity(), history=3, statistics=statistics(), residual=residual)
    window = positions[:, 1:6]  # history + 2 frames
    target = sim.normalised_acceleration(window, box_x[1:6], centre)
    predicted = sim.postprocess(target, window[:, :-1], box_x[5], box_x[1:5], centre)
    assert predicted.dtype == torch.float64
    assert torch.max(torch.abs(predicted - window[:, -1])) < 1e-10


def test_affine_velocity_is_the_imposed_compression():
    positions, box_x, centre = compression()
    affine = affine_velocity(positions, box_x, centre)
    exact_x = positions[:, 1:, 0] - positions[:, :-1, 0]
    # without the wobble the x velocity would be purely affine
    assert torch.max(torch.abs(affine[..., 0] - exact_x)) < 5e-5
    assert torch.all(affine[..., 1] == 0)


def test_edge_features_use_the_minimum_image():
    positions = torch.tensor([[0.1, 5.0], [9.9, 5.0]], dtype=torch.float64)
    edges = edge_features(positions, torch.tensor([[0, 1], [1, 0]]), torch.tensor([10.0, 10.0], dtype=torch.float64), torch.tensor([0.2, 0.2], dtype=torch.float64))
    assert torch.allclose(edges[0], torch.tensor([-0.2, 0.0, 0.2, 5.0], dtype=torch.float64))
    assert torch.allclose(edges[1, :2], torch.tensor([0.2, 0.0], dtype=torch.float64))


def test_statistics_are_buffers_in_the_state_dict():
    sim = AccelerationSimulator(torch.nn.Linear(6, 2), history=3, statistics=statistics())
    state = sim.state_dict()
    for name in ("velocity_mean", "velocity_std", "acceleration_mean", "acceleration_std", "edge_mean", "edge_std"):
        assert name in state and state[name].dtype == torch.float64


def test_damped_modes_advance_exactly_and_two_positions_give_the_velocity():
    """Underdamped, critically damped, overdamped and free modes under a force linear in time, against a numerical
    integration to 1e-12; the velocity that links two positions is the one that made them."""
    import numpy as np
    from scipy.integrate import solve_ivp

    from densim.simulator import advance_modes, modal_velocity

    omega2 = np.array([0.0, 1e-3, 0.01, 1.0, 4.0, 0.0625])  # 0.0625 = rate^2 / 4: critical
    rate, duration = 0.5, 2.7
    q, p = np.array([0.1, 0.2, -0.3, 0.4, 0.05, 0.3]), np.array([0.01, -0.2, 0.3, 0.1, -0.4, 0.2])
    force, slope = np.array([0, 0.01, 0.02, -0.1, 0.3, 0.1]), np.array([0, 0.001, -0.02, 0.05, 0.1, 0.0])
    q1, p1 = advance_modes(q, p, omega2, rate, force, slope, duration)
    n = len(q)
    exact = solve_ivp(lambda t, y: np.concatenate([y[n:], force + slope * t - rate * y[n:] - omega2 * y[:n]]), (0, duration),
                      np.concatenate([q, p]), rtol=1e-13, atol=1e-15).y[:, -1]
    np.testing.assert_allclose(q1, exact[:n], atol=1e-11)
    np.testing.assert_allclose(p1, exact[n:], atol=1e-11)
    np.testing.assert_allclose(modal_velocity(q, q1, omega2, rate, force, slope, duration), p1, atol=1e-12)


@pytest.fixture(scope="module")
def warm_and_cold_runs():
    """A 64-node NOI-PRU network kicked (impact) and compressed, at temperature 0, as trajectory graphs."""
    from densim.md import MDSettings
    from densim.networks import DatasetConfig, generate_network, network_dataset
    from densim.protocols import PROTOCOLS
    from densim.rollout import trajectory_graph
    from densim.trajectories import simulate, trajectory_dataset

    config = DatasetConfig.from_dict("d", {"generator": "noi_pru", "networks": 2, "nu_range": [-0.3, 0.3], "packing": {"nodes": 64}})
    generated = generate_network(config, 0)
    network_ds = network_dataset(config, 0, generated, {})
    graphs = {}
    for protocol, settings in (("impact", MDSettings(frames=41, temperature=0.0)),
                               ("compression", MDSettings(frames=81, temperature=0.0, steps_per_frame=10, strain_per_frame=6.25e-6))):
        own = PROTOCOLS[protocol].settings({})
        run = simulate(generated.network, settings, "d/0000", protocol=protocol, own=own)
        graphs[protocol] = trajectory_graph(trajectory_dataset(network_ds, settings, run, {}, protocol=protocol, own=own), None)
    return graphs


def _relative_mse(key, graph, start, steps):
    from densim.models import build_simulator
    from densim.rollout import rollouts

    zero, one = torch.zeros(2, dtype=torch.float64), torch.ones(2, dtype=torch.float64)
    statistics = Statistics(zero, one, zero, one, torch.zeros(4, dtype=torch.float64), torch.ones(4, dtype=torch.float64))
    errors = {}
    for model in (key, "frozen"):
        rolled = rollouts(build_simulator(model, history=2, statistics=statistics, seed=0), [graph], start=start)[0]
        errors[model] = ((rolled - graph.positions) ** 2).sum(-1).mean(0)
    return [float(errors[key][start + step] / errors["frozen"][start + step]) for step in steps]


def test_the_physics_baseline_follows_lammps_in_the_linear_regime(warm_and_cold_runs):
    """A kick of 1e-3 at temperature 0 is linear dynamics: the damped modes of the network's Hessian, started from two
    frames, follow LAMMPS to 1e-4 of the frozen error over 30 frames. Under compression (finite strain, nonlinear
    pruned springs) they beat constant-velocity extrapolation at steps 1, 10 and 30."""
    assert max(_relative_mse("linear_dynamics", warm_and_cold_runs["impact"], 2, (1, 10, 30))) < 1e-4
    physics = _relative_mse("linear_dynamics", warm_and_cold_runs["compression"], 40, (1, 10, 30))
    extrapolated = _relative_mse("constant_velocity", warm_and_cold_runs["compression"], 40, (1, 10, 30))
    assert all(p < 0.5 * e for p, e in zip(physics, extrapolated)), (physics, extrapolated)
