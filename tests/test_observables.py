"""Poisson ratio of a trajectory from the box, from node positions with the network (zero transverse stress) and
from the least-squares slope of displacements, on synthetic deformations. Agreement on LAMMPS ground truth is
tested in test_trajectories."""

import numpy as np
import pytest
import torch

from densim.springs import minimum_image, periodic_images, triangular_lattice
from densim.observables import (
    bond_images,
    poisson_ratio_from_box,
    poisson_ratio_from_positions,
    poisson_ratio_from_slope,
    r_squared,
    zero_stress_box_y,
)


def affine_trajectory(nu, frames=6, nodes=200, strain=0.02, seed=0):
    rng = np.random.default_rng(seed)
    box0 = np.array([12.0, 9.0])
    reference = rng.uniform(0, 1, (nodes, 2)) * box0
    exx = -np.linspace(0, strain, frames)
    eyy = -nu * exx
    scale = np.stack([1 + exx, 1 + eyy], axis=1)  # (frames, 2)
    return reference[None] * scale[:, None, :], box0 * scale, exx


@pytest.mark.parametrize("nu", [-0.7, 0.0, 1 / 3, 0.9])
def test_box_and_slope_recover_an_affine_poisson_ratio(nu):
    positions, box, exx = affine_trajectory(nu)
    from_box = poisson_ratio_from_box(box)
    from_positions = poisson_ratio_from_slope(positions, exx, box[0])
    assert np.isnan(from_box[0]) and np.isnan(from_positions[0])
    np.testing.assert_allclose(from_box[1:], nu, atol=1e-12)
    np.testing.assert_allclose(from_positions[1:], nu, atol=1e-12)


def test_slope_route_ignores_periodic_wrapping():
    positions, box, exx = affine_trajectory(0.25)
    wrapped = np.mod(positions, box[:, None, :])
    np.testing.assert_allclose(
        poisson_ratio_from_slope(wrapped, exx, box[0])[1:], poisson_ratio_from_slope(positions, exx, box[0])[1:], atol=1e-12
    )


def test_slope_route_is_robust_to_uncorrelated_non_affine_noise():
    positions, box, exx = affine_trajectory(0.4, nodes=2000)
    noise = 1e-4 * np.random.default_rng(1).standard_normal(positions.shape)
    noise[0] = 0
    nu = poisson_ratio_from_slope(positions + noise, exx, box[0])
    np.testing.assert_allclose(nu[1:], 0.4, atol=0.02)


def test_r_squared():
    x = np.array([0.0, 1.0, 2.0, np.nan])
    assert r_squared(x, x) == 1.0
    assert r_squared(x[:3], np.full(3, 1.0)) == pytest.approx(0.0)


@pytest.mark.parametrize("box", [np.array([12.0, 9.0]), 1.0])
def test_minimum_image_is_the_same_on_numpy_and_torch(box):
    """Offsets of several boxes either way, exact half boxes (ties round to even) and a scalar box."""
    rng = np.random.default_rng(2)
    span = np.broadcast_to(box, (2,))
    delta = rng.uniform(-3.7, 3.7, (500, 2)) * span
    delta[:4] = [[0.5, -0.5], [1.5, -1.5], [2.5, -2.5], [-3.0, 3.0]] * span
    box_t = torch.as_tensor(box) if isinstance(box, np.ndarray) else box
    expected = minimum_image(delta, box)
    as_torch = minimum_image(torch.as_tensor(delta), box_t)
    assert np.array_equal(as_torch.numpy(), expected)
    assert np.all(np.abs(expected) <= span / 2)
    shifts = (delta - expected) / span
    np.testing.assert_allclose(shifts, np.round(shifts), atol=1e-12)
    images = periodic_images(delta, box)
    assert np.array_equal(periodic_images(torch.as_tensor(delta), box_t).numpy(), images)
    assert np.abs(images).max() >= 3
    np.testing.assert_array_equal(images[:4], [[0, 0], [2, -2], [2, -2], [-3, 3]])


def test_bond_images_bring_bonds_to_their_minimum_image():
    rng = np.random.default_rng(4)
    box = np.array([5.0, 4.0])
    reference = rng.uniform(-10, 10, (30, 2))
    bonds = rng.integers(0, 30, (50, 2))
    delta = reference[bonds[:, 1]] - reference[bonds[:, 0]]
    np.testing.assert_array_equal(delta - bond_images(reference, bonds, box) * box, minimum_image(delta, box))


def strained_lattice(exx, eyy, cells=(8, 10)):
    """A triangular lattice deformed affinely; its nodes stay in force balance by inversion symmetry."""
    net = triangular_lattice(*cells)
    scale = np.stack([1 + exx, 1 + eyy], axis=-1)  # (frames, 2)
    return net, net.positions[None] * scale[:, None, :], net.box * scale


def test_zero_stress_route_gives_one_third_on_a_triangular_lattice_strained_at_zero_transverse_stress():
    exx = -np.array([0.0, 1e-7, 1e-6, 1e-5])
    net, positions, box = strained_lattice(exx, -exx / 3)
    nu = poisson_ratio_from_positions(positions, box[:, 0], box[0], net.bonds, net.rest_lengths, net.stiffness)
    assert np.isnan(nu[0])
    np.testing.assert_allclose(nu[1:], 1 / 3, atol=1e-5)


def test_zero_stress_route_is_the_same_on_numpy_and_torch_and_ignores_node_order():
    exx = -np.array([0.0, 0.01, 0.02])
    net, positions, box = strained_lattice(exx, 0.2 * exx)
    images = bond_images(positions[0], net.bonds, box[0])
    args = (net.bonds, images, net.rest_lengths, net.stiffness)
    expected = zero_stress_box_y(positions, box[:, 0], box[0, 1], *args)
    as_torch = zero_stress_box_y(torch.as_tensor(positions), torch.as_tensor(box[:, 0]), box[0, 1], *map(torch.as_tensor, args))
    np.testing.assert_allclose(as_torch.numpy(), expected, rtol=1e-14)
    order = np.random.default_rng(0).permutation(net.num_nodes)
    relabel = np.argsort(order)[net.bonds]
    permuted = zero_stress_box_y(positions[:, order], box[:, 0], box[0, 1], relabel, images, net.rest_lengths, net.stiffness)
    np.testing.assert_allclose(permuted, expected, rtol=1e-14)


def test_zero_stress_route_solves_several_networks_at_once_as_each_alone():
    """Two lattices of other sizes and strains in one segmented Newton solve give each one's own transverse box."""
    alone, stacked = [], []
    for cells, exx, eyy in (((8, 10), -0.01, 0.004), ((6, 6), -0.02, -0.005)):
        net, positions, box = strained_lattice(np.array([0.0, exx]), np.array([0.0, eyy]))
        images = bond_images(positions[0], net.bonds, box[0])
        alone.append(zero_stress_box_y(positions[1], box[1, 0], box[0, 1], net.bonds, images, net.rest_lengths, net.stiffness))
        stacked.append((positions[1], box[1, 0], box[0, 1], net.bonds, images, net.rest_lengths, net.stiffness))
    offset = len(stacked[0][0])
    fields = [torch.as_tensor(np.concatenate([a, b])) if np.ndim(a) else torch.tensor([a, b]) for a, b in zip(*stacked)]
    fields[3] = torch.as_tensor(np.concatenate([stacked[0][3], stacked[1][3] + offset]))
    segments = torch.repeat_interleave(torch.arange(2), torch.tensor([len(stacked[0][3]), len(stacked[1][3])]))
    together = zero_stress_box_y(*fields, segments=segments)
    np.testing.assert_allclose(together.numpy(), alone, rtol=1e-14)
    fields[4][segments == 1] = 0.0  # the second network no longer crosses the boundary
    with pytest.raises(ValueError, match="no bond crosses"):
        zero_stress_box_y(*fields, segments=segments)


def test_zero_stress_route_names_an_undetermined_box():
    net, positions, box = strained_lattice(np.zeros(1), np.zeros(1))
    images = np.zeros((net.num_bonds, 2))
    with pytest.raises(ValueError, match="no bond crosses"):
        zero_stress_box_y(positions, box[:, 0], box[0, 1], net.bonds, images, net.rest_lengths, net.stiffness)


def test_zero_stress_route_returns_nan_for_a_diverged_frame():
    exx = -np.array([0.0, 0.01, 0.02])
    net, positions, box = strained_lattice(exx, -exx / 3)
    positions[2, 5] = np.nan
    nu = poisson_ratio_from_positions(positions, box[:, 0], box[0], net.bonds, net.rest_lengths, net.stiffness)
    assert np.isfinite(nu[1]) and np.isnan(nu[2])


def ringing(frames=200, nodes=30, omega=0.3, seed=0):
    """Nodes oscillating at angular frequency ``omega`` per frame in y, with random amplitudes and phases."""
    rng = np.random.default_rng(seed)
    t = np.arange(frames)[:, None]
    x0 = rng.uniform(0, 10, (nodes, 2))
    y = 1e-3 * rng.uniform(0.5, 1.5, nodes) * np.cos(omega * t + rng.uniform(0, 2 * np.pi, nodes))
    positions = np.repeat(x0[None], frames, axis=0)
    positions[:, :, 1] += y
    return positions, np.full(frames, 10.0)


def test_difficulty_of_a_harmonic_ringing_is_known_in_closed_form():
    from densim.observables import difficulty

    omega = 0.3
    measured = difficulty([ringing(omega=omega)], history=2)
    # x_{t+1} = 2 cos(w) x_t - x_{t-1}: the acceleration is an exact linear map of the last two velocities
    assert measured["linear_floor_r2"] == pytest.approx(1.0, abs=1e-9)
    # a sinusoid's differences scale by 2 sin(w / 2); no imposed compression, so no affine part
    assert measured["acceleration_over_velocity"] == pytest.approx(2 * np.sin(omega / 2), rel=2e-2)
    assert measured["affine_acceleration_share"] == 0.0
    assert difficulty([ringing(omega=omega)], history=1)["linear_floor_r2"] < 0.99  # one velocity is not enough


def test_affine_share_separates_the_imposed_compression_from_the_network_motion():
    from densim.observables import difficulty

    positions, _ = ringing()
    t = np.arange(len(positions))
    box_x = 10.0 * (1 - 1e-5 * t**2)  # an accelerating compression, so the affine part has an acceleration
    centre = 5.0
    positions[:, :, 0] = centre + (positions[0, :, 0] - centre) * (box_x / box_x[0])[:, None]
    measured = difficulty([(positions, box_x)])
    affine = np.diff(positions[:, :, 0], n=2, axis=0)
    ringing_y = np.diff(positions[:, :, 1], n=2, axis=0)
    expected = np.sum(affine**2) / (np.sum(affine**2) + np.sum(ringing_y**2))  # x and y are orthogonal
    assert measured["affine_acceleration_share"] == pytest.approx(expected, rel=1e-6)
    # the residual motion is the ringing alone, so the floor still fits it exactly
    assert measured["linear_floor_r2"] == pytest.approx(1.0, abs=1e-6)


def test_too_short_trajectories_are_refused_with_the_minimum_frames_named():
    """A 3-frame trajectory has one acceleration per node and no velocity history before it: the linear floor
    (history 2) needs 4 frames, and says so instead of failing inside numpy ("need at least one array to
    concatenate")."""
    from densim.observables import MIN_TRAJECTORY_FRAMES, difficulty, linear_floor_r2, min_frames, residual_velocities

    assert MIN_TRAJECTORY_FRAMES == min_frames() == min_frames(1) == 4 and min_frames(5) == 7
    for frames in (2, 3):
        with pytest.raises(ValueError, match=rf"difficulty: run 0 has {frames} frames; .*linear_floor_r2, history 2\) needs at least 4"):
            difficulty([ringing(frames=frames)])
    with pytest.raises(ValueError, match="run 1 has 4 frames; .*history 3\\) needs at least 5"):
        difficulty([ringing(frames=10), ringing(frames=4)], history=3)
    # the fit itself, on velocity histories (frames - 1 velocities each)
    velocities = [np.moveaxis(np.diff(ringing(frames=3)[0], axis=0), 0, 1)]
    with pytest.raises(ValueError, match="linear_floor_r2: history 2 needs a trajectory of at least 4 frames .*the longest has 3"):
        linear_floor_r2(velocities, 2)
    with pytest.raises(ValueError, match="linear_floor_r2: history 2 needs .*the longest has 0"):
        linear_floor_r2([], 2)
    with pytest.raises(ValueError, match="history must be at least 1"):
        linear_floor_r2(velocities, 0)
    # pooled, a short history adds nothing to the fit and stops nothing
    long = ringing(frames=30, omega=0.7)
    v_long = residual_velocities(np.moveaxis(long[0], 0, 1), long[1], 5.0)
    assert linear_floor_r2([v_long, velocities[0]], 2) == linear_floor_r2([v_long], 2)


def test_every_difficulty_measure_is_finite_at_the_minimum_frames():
    from densim.observables import MIN_TRAJECTORY_FRAMES, difficulty, local_predictability_r2

    network = disordered_lattice()
    positions, box = verlet_frames(network, timestep=0.05, frames=MIN_TRAJECTORY_FRAMES, steps_per_frame=5)
    measured = difficulty([(positions, box[:, 0])])
    assert all(np.isfinite(value) for value in measured.values()), measured
    assert np.isfinite(local_predictability_r2([as_run(network, positions, box)]))


def disordered_lattice(cells_x=6, cells_y=6, seed=0):
    """A triangular lattice with random stiffnesses (a broad vibration spectrum), unit rest lengths, stress-free."""
    from dataclasses import replace

    network = triangular_lattice(cells_x, cells_y)
    rng = np.random.default_rng(seed)
    return replace(network, stiffness=rng.uniform(0.3, 1.7, network.num_bonds))


def verlet_frames(network, timestep, frames, steps_per_frame, amplitude=0.1, seed=0):
    """Undamped velocity-Verlet run of ``network`` (unit mass, fixed box) from a random displacement at rest,
    positions (frames, N, 2) sampled every ``steps_per_frame`` steps, and the box per frame."""
    from densim.observables import spring_forces

    box = network.box[None]
    force = lambda x: spring_forces(x[None], box, network.bonds, network.rest_lengths, network.stiffness)[0]  # noqa: E731
    x = network.positions + amplitude * np.random.default_rng(seed).standard_normal(network.positions.shape)
    v, f, out = np.zeros_like(x), force(x), [x]
    for step in range(1, (frames - 1) * steps_per_frame + 1):
        v += 0.5 * timestep * f
        x = x + timestep * v
        f = force(x)
        v += 0.5 * timestep * f
        if step % steps_per_frame == 0:
            out.append(x)
    return np.array(out), np.tile(network.box, (frames, 1))


def as_run(network, positions, box):
    return positions, box, network.bonds, network.rest_lengths, network.stiffness


def test_spring_forces_are_minus_the_gradient_of_the_energy_across_the_periodic_boundary():
    from densim.observables import spring_forces

    network = disordered_lattice(4, 4)
    rng = np.random.default_rng(3)
    # perturbed, then shifted so that bonds cross the box edge, and one node unwrapped by a whole box
    x = network.positions + 0.1 * rng.standard_normal(network.positions.shape) + 0.4 * network.box
    x[5] += network.box * [1, -2]
    box = network.box

    def energy(x):
        r = minimum_image(x[network.bonds[:, 1]] - x[network.bonds[:, 0]], box)
        return 0.5 * np.sum(network.stiffness * (np.linalg.norm(r, axis=1) - network.rest_lengths) ** 2)

    h = 1e-6
    gradient = np.zeros_like(x)
    for i in range(len(x)):
        for c in range(2):
            e = np.zeros_like(x)
            e[i, c] = h
            gradient[i, c] = (energy(x + e) - energy(x - e)) / (2 * h)
    forces = spring_forces(np.stack([x, x]), np.stack([box, box]), network.bonds, network.rest_lengths, network.stiffness)
    np.testing.assert_allclose(forces[0], -gradient, atol=1e-8)
    np.testing.assert_array_equal(forces[0], forces[1])
    np.testing.assert_allclose(forces[0].sum(axis=0), 0.0, atol=1e-12)  # Newton's third law


def test_local_predictability_is_one_for_frames_sampled_every_step():
    """Velocity Verlet makes ``x_{t+1} - 2 x_t + x_{t-1} = dt^2 F_t / m`` exactly: a linear function of the force."""
    from densim.observables import local_predictability_r2

    network = disordered_lattice()
    positions, box = verlet_frames(network, timestep=0.02, frames=60, steps_per_frame=1)
    assert local_predictability_r2([as_run(network, positions, box)]) > 0.999
    # unwrapping is irrelevant (minimum image) and so is a rigid shift; two runs pool into one fit
    shifted = positions + network.box * [3, -1]
    assert local_predictability_r2([as_run(network, shifted, box), as_run(network, positions, box)]) > 0.999


def test_local_predictability_drops_when_frames_span_the_fastest_period():
    """With frames about one fastest period apart, the map from force to frame acceleration differs from mode to
    mode (``2 (1 - cos w dt) / w^2``), so no map shared by all nodes fits it."""
    from densim.observables import fastest_period, local_predictability_r2

    network = disordered_lattice()
    period = fastest_period(network)
    dense, box = verlet_frames(network, timestep=0.05, frames=40, steps_per_frame=2)
    sparse, box = verlet_frames(network, timestep=0.05, frames=40, steps_per_frame=int(round(period / 0.05)))
    dense_r2, sparse_r2 = (local_predictability_r2([as_run(network, p, box)]) for p in (dense, sparse))
    assert dense_r2 > 0.99  # frames 0.1 apart, period about 2
    assert sparse_r2 < 0.9
    assert sparse_r2 < dense_r2 - 0.1


def test_local_predictability_of_noise():
    """White-noise accelerations are unpredictable (R^2 near 0). Random-walk positions are not: their frame
    acceleration ``e_{t+1} - e_t`` shares ``-e_t`` with the velocity ``e_t``, half its variance (R^2 near 1/2)."""
    from densim.observables import local_predictability_r2

    network = disordered_lattice()
    rng = np.random.default_rng(1)
    frames, box = 300, np.tile(network.box, (300, 1))
    kicks = rng.standard_normal((frames,) + network.positions.shape)
    white_acceleration = network.positions + 1e-3 * np.cumsum(np.cumsum(kicks, axis=0), axis=0)
    random_walk = network.positions + 0.05 * np.cumsum(kicks, axis=0)
    assert abs(local_predictability_r2([as_run(network, white_acceleration, box)])) < 0.02
    assert local_predictability_r2([as_run(network, random_walk, box)]) == pytest.approx(0.5, abs=0.03)
    with pytest.warns(RuntimeWarning, match="local_predictability_r2: no trajectory has the 4 frames it needs .*longest has 3"):
        assert np.isnan(local_predictability_r2([as_run(network, random_walk[:3], box[:3])]))  # too short


@pytest.mark.parametrize("cells", [(4, 4), (6, 6), (5, 4)])
def test_fastest_period_of_the_triangular_lattice(cells):
    """Unit springs and unit mass: the Hessian's largest eigenvalue is 6 (the zone-boundary M point, where two of the
    three bond directions vibrate in antiphase: 4 (n1 n1^T + n2 n2^T) with n1.n2 = 1/2 has eigenvalues 6 and 2),
    checked against a dense eigvalsh of the dense Hessian."""
    from densim.elasticity import hessian
    from densim.observables import fastest_period, fastest_period_frames

    network = triangular_lattice(*cells)
    lambda_max = np.linalg.eigvalsh(hessian(network).toarray())[-1]
    assert lambda_max == pytest.approx(6.0, rel=1e-12)
    assert fastest_period(network) == pytest.approx(2 * np.pi / np.sqrt(lambda_max), rel=1e-12)
    assert fastest_period(network, mass=4.0) == pytest.approx(2 * 2 * np.pi / np.sqrt(6.0), rel=1e-12)
    assert fastest_period_frames(network, mass=1.0, frame_spacing=0.5) == pytest.approx(4 * np.pi / np.sqrt(6.0), rel=1e-12)


def test_fastest_period_of_a_large_network_by_lanczos():
    """Past 300 nodes the largest eigenvalue comes from eigsh; it must match the dense spectrum."""
    from densim.elasticity import hessian
    from densim.observables import fastest_period

    network = disordered_lattice(20, 16)
    assert network.num_nodes > 300
    lambda_max = np.linalg.eigvalsh(hessian(network).toarray())[-1]
    assert fastest_period(network, mass=2.0) == pytest.approx(2 * np.pi / np.sqrt(lambda_max / 2.0), rel=1e-8)


def test_summary_reports_the_median_of_the_recorded_learnability_and_nan_for_older_files():
    import xarray as xr

    from densim.trajectories import summary

    network = disordered_lattice(4, 4)
    positions, box = verlet_frames(network, timestep=0.05, frames=12, steps_per_frame=3)

    def trajectory(dataset, **recorded):
        variables = {"positions": (("time", "node", "xy"), positions), "box": (("time", "xy"), box),
                     "strain": (("time",), np.zeros(len(box))), "arrival_frame": ((), 3.0)}
        return xr.Dataset({**variables, **{name: ((), value) for name, value in recorded.items()}},
                          attrs={"dataset": dataset, "protocol": "impact"})

    table = summary([trajectory("new", local_predictability_r2=r2, fastest_period_frames=period)
                     for r2, period in [(0.9, 4.0), (0.5, 2.0), (0.7, 9.0)]]
                    + [trajectory("mixed", local_predictability_r2=0.9, fastest_period_frames=4.0), trajectory("mixed")]).set_index("dataset")
    assert table.loc["new", "local_predictability_r2"] == 0.7 and table.loc["new", "fastest_period_frames"] == 4.0
    assert table.loc["mixed", ["local_predictability_r2", "fastest_period_frames"]].isna().all()


def test_a_poisson_ratio_rebased_on_a_later_frame_is_the_box_ratio_measured_from_there():
    from densim.observables import poisson_ratio_from_box, rebased_poisson_ratio

    rng = np.random.default_rng(0)
    box = np.column_stack([10 * (1 - 1e-4 * np.arange(40)), 12 * (1 + 3e-5 * np.arange(40) + 1e-6 * rng.standard_normal(40))])
    nu = poisson_ratio_from_box(box)
    rebased = rebased_poisson_ratio(nu, box[:, 0], 15)
    assert np.isnan(rebased[:16]).all()
    np.testing.assert_allclose(rebased[16:], poisson_ratio_from_box(box[15:])[1:], rtol=1e-9)
    np.testing.assert_allclose(rebased_poisson_ratio(nu, box[:, 0], 0)[1:], nu[1:], rtol=1e-12)
