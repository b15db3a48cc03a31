"""Poisson ratio of a trajectory from the box and from node positions, on synthetic affine deformations."""

import numpy as np
import pytest

from densim.observables import poisson_ratio_from_box, poisson_ratio_from_positions, r_squared


def affine_trajectory(nu, frames=6, nodes=200, strain=0.02, seed=0):
    rng = np.random.default_rng(seed)
    box0 = np.array([12.0, 9.0])
    reference = rng.uniform(0, 1, (nodes, 2)) * box0
    exx = -np.linspace(0, strain, frames)
    eyy = -nu * exx
    scale = np.stack([1 + exx, 1 + eyy], axis=1)  # (frames, 2)
    return reference[None] * scale[:, None, :], box0 * scale, exx


@pytest.mark.parametrize("nu", [-0.7, 0.0, 1 / 3, 0.9])
def test_box_and_positions_recover_an_affine_poisson_ratio(nu):
    positions, box, exx = affine_trajectory(nu)
    from_box = poisson_ratio_from_box(box)
    from_positions = poisson_ratio_from_positions(positions, exx, box[0])
    assert np.isnan(from_box[0]) and np.isnan(from_positions[0])
    np.testing.assert_allclose(from_box[1:], nu, atol=1e-12)
    np.testing.assert_allclose(from_positions[1:], nu, atol=1e-12)


def test_positions_route_ignores_periodic_wrapping():
    positions, box, exx = affine_trajectory(0.25)
    wrapped = np.mod(positions, box[:, None, :])
    np.testing.assert_allclose(
        poisson_ratio_from_positions(wrapped, exx, box[0])[1:], poisson_ratio_from_positions(positions, exx, box[0])[1:], atol=1e-12
    )


def test_positions_route_is_robust_to_uncorrelated_non_affine_noise():
    positions, box, exx = affine_trajectory(0.4, nodes=2000)
    noise = 1e-4 * np.random.default_rng(1).standard_normal(positions.shape)
    noise[0] = 0
    nu = poisson_ratio_from_positions(positions + noise, exx, box[0])
    np.testing.assert_allclose(nu[1:], 0.4, atol=0.02)


def test_r_squared():
    x = np.array([0.0, 1.0, 2.0, np.nan])
    assert r_squared(x, x) == 1.0
    assert r_squared(x[:3], np.full(3, 1.0)) == pytest.approx(0.0)
