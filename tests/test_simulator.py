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
