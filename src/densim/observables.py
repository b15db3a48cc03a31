"""Observables of compression and impact trajectories, on plain arrays (xarray wrappers live with the stages).

The Poisson ratio of a frame is ``nu = -eps_yy / eps_xx`` for axial compression along x. The axial strain is
the imposed one; the transverse strain is measured three ways:

- :func:`poisson_ratio_from_box`: strains of the periodic box (the ground truth of a simulation);
- :func:`poisson_ratio_from_positions`: from node positions and the network alone, which is what a learned
  rollout has. The transverse box length is the one at which the network's elastic energy is stationary,
  ``dE/dL_y = 0`` with the node positions held (:func:`zero_stress_box_y`). Held positions in force balance make
  this the condition of zero transverse virial stress, which is how the simulation's barostat sets ``L_y``, so on
  ground truth it recovers the box (to 1e-4 in nu on the default datasets). Positions must be unwrapped (as
  trajectories and rollouts are).
- :func:`poisson_ratio_from_slope`: the least-squares slope of the transverse displacement against the centred
  transverse reference position (displacements under the minimum image), with the lowest periodic modes of the
  reference positions fitted alongside. It is exact for affine deformations but biased by the non-affine
  displacement field of a disordered network, which is periodic yet correlates with position over one box:
  on pruned 128-node networks single networks are off by up to 0.45 in nu and the box-vs-slope R^2 over a
  dataset is 0.92 to 0.99. It is kept as a comparison.

Impact trajectories (:func:`densim.md.impact`) are at fixed box; their observable is the arrival of
the pulse front on the far side of the box: :func:`far_displacement` and :func:`front_arrival`.
"""

from __future__ import annotations

import warnings

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from densim.elasticity import hessian
from densim.springs import SpringNetwork, minimum_image, periodic_images


def box_strain(box: np.ndarray) -> np.ndarray:
    """Engineering strains ``L / L0 - 1`` of a box trajectory.

    Parameters
    ----------
    box : ndarray, shape (frames, 2)

    Returns
    -------
    ndarray, shape (frames, 2)
    """
    return box / box[0] - 1.0


def _ratio(transverse: np.ndarray, axial: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(axial != 0, -transverse / np.where(axial != 0, axial, 1.0), np.nan)


def velocities(positions):
    """Finite-difference velocities ``x_t - x_{t-1}`` (numpy or torch).

    Parameters
    ----------
    positions : array, shape (N, T, 2)

    Returns
    -------
    array, shape (N, T - 1, 2)
    """
    return positions[:, 1:] - positions[:, :-1]


def affine_velocity(positions, box_x, centre_x):
    """x velocity that the imposed compression gives each node between consecutive frames (numpy or torch).

    LAMMPS' ``remap x`` maps ``x -> c + (x - c) L'/L`` about the box centre ``c``; frame ``t`` gets
    ``(x_{t-1} - c) (L_t / L_{t-1} - 1)``.

    Parameters
    ----------
    positions : array, shape (N, T, 2)
    box_x : array, shape (T,), or (N, T)
        Imposed box length along x per frame (per node: several networks at once).
    centre_x : float, or array of shape (N, 1)

    Returns
    -------
    array, shape (N, T - 1, 2) (y component zero)
    """
    affine = 0.0 * positions[:, :-1]
    affine[..., 0] = (positions[:, :-1, 0] - centre_x) * (box_x[..., 1:] / box_x[..., :-1] - 1.0)
    return affine


def residual_velocities(positions, box_x, centre_x, residual: bool = True):
    """Velocities of ``positions`` (N, T, 2), less the imposed affine velocity when ``residual``; (N, T - 1, 2)."""
    v = velocities(positions)
    return v - affine_velocity(positions, box_x, centre_x) if residual else v


def min_frames(history: int = 2) -> int:
    """The fewest frames a trajectory needs for every difficulty measure of its file: ``max(history + 2, 4)``.

    Per measure: :func:`linear_floor_r2` needs ``history + 2`` frames (``history`` velocities and the next one; 4
    at the files' history 2), :func:`local_predictability_r2` 4 (an acceleration and the one before it), the
    affine acceleration share and the residual acceleration over velocity of :func:`difficulty` 3 (one
    acceleration), :func:`noise_over_signal` 2 (one velocity), :func:`fastest_period_frames` none.
    """
    return max(history + 2, 4)


#: The fewest frames of a trajectory file (:func:`min_frames` at the files' history 2): what
#: ``densim.trajectories`` writes needs :func:`difficulty` and :func:`local_predictability_r2` of it.
MIN_TRAJECTORY_FRAMES = min_frames()


def linear_floor_r2(velocity_histories: list[np.ndarray], history: int) -> float:
    """R^2 of the best linear map, shared by all nodes, from a node's last ``history`` velocities to its next
    velocity change (its acceleration).

    This is what the ``linear_floor`` baseline can reach on the data: 1 means the motion is a linear
    extrapolation of each node's own past, 0 that the past explains nothing linearly.

    Parameters
    ----------
    velocity_histories : list of ndarray, shape (N, T - 1, 2) each
        (Residual) velocities of each trajectory; all pooled into one least-squares fit (with an intercept).
    history : int

    Returns
    -------
    float
        ``1 - SSE / SST`` over every node, frame and component (SST about the mean acceleration); NaN when the
        acceleration does not vary.

    Raises
    ------
    ValueError
        If ``history`` is below 1, or no trajectory has ``history + 1`` velocities (``history + 2`` frames), the
        fewest that give one acceleration to fit.
    """
    if history < 1:
        raise ValueError(f"linear_floor_r2: history must be at least 1, got {history}")
    longest = max((v.shape[1] for v in velocity_histories), default=0)
    if longest < history + 1:
        raise ValueError(f"linear_floor_r2: history {history} needs a trajectory of at least {history + 2} frames "
                         f"({history + 1} velocities); the longest has {longest + 1 if velocity_histories else 0}")
    features, targets = [], []
    for v in velocity_histories:
        frames = v.shape[1]
        for t in range(history - 1, frames - 1):
            features.append(v[:, t - history + 1 : t + 1].reshape(v.shape[0], -1))
            targets.append(v[:, t + 1] - v[:, t])
    x, y = np.concatenate(features), np.concatenate(targets)
    design = np.column_stack([x, np.ones(len(x))])
    solution, *_ = np.linalg.lstsq(design, y, rcond=None)
    residual = y - design @ solution
    total = np.sum((y - y.mean(axis=0)) ** 2)
    return float(1.0 - np.sum(residual**2) / total) if total > 0 else float("nan")


def _stored_residual_velocities(positions: np.ndarray, box_x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positions (T, N, 2) as stored in trajectory files, moved to (N, T, 2), and their residual velocities
    (the box is centred on ``box_x[0] / 2``, as LAMMPS' ``remap x`` keeps it)."""
    x = np.moveaxis(positions, 0, 1)
    return x, residual_velocities(x, box_x, float(box_x[0]) / 2)


#: What each difficulty metric (:func:`difficulty`) measures, for file attributes.
DIFFICULTY_DESCRIPTIONS = {
    "linear_floor_r2": "R^2 of the best linear map (shared by all nodes) from the last 2 residual velocities to the residual acceleration",
    "affine_acceleration_share": "share of the squared acceleration explained by the imposed affine compression",
    "acceleration_over_velocity": "rms residual acceleration over rms residual velocity (frame to frame)",
    "noise_over_signal": "rms frame-to-frame change of the thermal part of the motion (against the same run at temperature 0) over rms residual velocity",
    "local_predictability_r2": "R^2 of the best linear map (shared by all nodes) from a node's previous acceleration, spring force and velocity to its frame acceleration",
    "fastest_period_frames": "period of the network's fastest vibration, 2 pi / sqrt(lambda_max / mass), in frames",
}


def difficulty(runs: list[tuple[np.ndarray, np.ndarray]], history: int = 2) -> dict[str, float]:
    """How hard trajectories are to learn, from their frames alone, pooled over ``runs``.

    With ``v`` the velocities, ``r`` the residual velocities (imposed affine velocity removed,
    :func:`residual_velocities`), ``a = Δv`` and ``a_r = Δr`` the accelerations, sums running over every
    node, frame, component and trajectory:

    - ``linear_floor_r2``: :func:`linear_floor_r2` of the residual velocities;
    - ``affine_acceleration_share``: ``Σ|a - a_r|^2 / Σ|a|^2``, the part of the acceleration that the imposed
      compression explains;
    - ``acceleration_over_velocity``: ``sqrt(Σ|a_r|^2 / Σ|r|^2)`` (rms over rms); near 0 the nodes drift
      steadily from frame to frame (quasi-static), of order 1 or more they ring at the frame scale.

    Parameters
    ----------
    runs : list of (positions, box_x)
        Unwrapped positions (T, N, 2) as stored in trajectory files, and the box length along x (T,).
    history : int
        Velocities the linear floor sees.

    Raises
    ------
    ValueError
        If a run has fewer than ``history + 2`` frames (:func:`min_frames`; 4 at history 2), naming it: the
        linear floor has no acceleration to fit on it.
    """
    for index, (positions, _) in enumerate(runs):
        if len(positions) < history + 2:
            raise ValueError(f"difficulty: run {index} has {len(positions)} frames; its linear floor (linear_floor_r2, "
                             f"history {history}) needs at least {history + 2}")
    if not runs:
        raise ValueError("difficulty: no run")
    residuals, sums = [], np.zeros(6)  # Σ|a - a_r|^2, Σ|a|^2, Σ|a_r|^2, Σ|r|^2, and the entries of a_r and r
    for positions, box_x in runs:
        x, residual = _stored_residual_velocities(positions, box_x)
        a_full, a_residual = np.diff(velocities(x), axis=1), np.diff(residual, axis=1)
        sums += [np.sum((a_full - a_residual) ** 2), np.sum(a_full**2), np.sum(a_residual**2), np.sum(residual**2),
                 a_residual.size, residual.size]
        residuals.append(residual)
    return {
        "linear_floor_r2": linear_floor_r2(residuals, history),
        "affine_acceleration_share": float(sums[0] / sums[1]),
        "acceleration_over_velocity": float(np.sqrt((sums[2] / sums[4]) / (sums[3] / sums[5]))),
    }


def spring_forces(positions: np.ndarray, box: np.ndarray, bonds: np.ndarray, rest_length: np.ndarray, stiffness: np.ndarray) -> np.ndarray:
    """Spring force on every node in every frame, ``F_i = sum_b k_b (|r_b| - l0_b) r_b / |r_b|``.

    ``r_b`` is the minimum-image vector (in the frame's box) from node ``i`` to the other end of bond ``b``; the
    energy of a bond is ``k/2 (r - l0)^2``.

    Parameters
    ----------
    positions : ndarray, shape (T, N, 2)
        Node positions (wrapped or unwrapped) per frame.
    box : ndarray, shape (T, 2)
        Box lengths per frame.
    bonds : ndarray, shape (B, 2)
    rest_length, stiffness : ndarray, shape (B,)

    Returns
    -------
    ndarray, shape (T, N, 2)
    """
    frames, nodes, _ = positions.shape
    bonds = np.asarray(bonds, dtype=np.int64)
    delta = minimum_image(positions[:, bonds[:, 1]] - positions[:, bonds[:, 0]], box[:, None, :])  # (T, B, 2)
    length = np.linalg.norm(delta, axis=-1)
    bond_force = (stiffness * (length - rest_length) / length)[..., None] * delta  # on node i, minus it on j
    # incidence (N, B): +1 at i, -1 at j; one sparse product sums every frame and component at once
    count = len(bonds)
    incidence = sp.csr_matrix((np.r_[np.ones(count), -np.ones(count)], (bonds.T.ravel(), np.r_[np.arange(count), np.arange(count)])),
                              shape=(nodes, count))
    force = incidence @ np.moveaxis(bond_force, 1, 0).reshape(count, -1)  # (N, T * 2)
    return np.moveaxis(np.asarray(force).reshape(nodes, frames, 2), 1, 0)


def local_predictability_r2(runs: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]]) -> float:
    """R^2 of the frame acceleration on local information: how much of a node's next move its own state explains.

    For every node ``i`` and frame ``t`` with ``2 <= t <= T - 2`` (so that the previous acceleration exists), the
    frame acceleration ``a_t = x_{t+1} - 2 x_t + x_{t-1}`` is fitted by ordinary least squares, one linear map
    with intercept shared by all nodes, frames and runs, on the node's previous acceleration ``a_{t-1}``, the
    spring force on it in frame ``t`` (:func:`spring_forces`) and its velocity ``x_t - x_{t-1}`` (6 features).

    Frames of a conservative integration sampled every step give 1 (velocity Verlet makes ``a_t`` exactly
    ``dt^2 F_t / m``); frames far apart compared with the fastest vibration give less, as the map from force to
    frame acceleration then differs between modes. Noise is not 0: positions that random-walk give 1/2, since
    ``a_t = e_{t+1} - e_t`` shares ``-e_t = -v_t`` with the velocity; white-noise accelerations give 0.

    Parameters
    ----------
    runs : list of (positions, box, bonds, rest_length, stiffness)
        Unwrapped positions (T, N, 2) as stored in trajectory files (float64), the box per frame (T, 2), and the
        network: bonds (B, 2), rest lengths (B,) and stiffness (B,).

    Returns
    -------
    float
        ``1 - SSE / SST`` pooled over every node, frame, component and run (SST about the mean acceleration);
        NaN when the acceleration does not vary, and NaN with a :class:`RuntimeWarning` that says so when no run has
        the 4 frames the measure needs (shorter runs are left out of the pool).
    """
    features, targets = [], []
    longest = 0
    for positions, box, bonds, rest_length, stiffness in runs:
        x = np.asarray(positions, dtype=np.float64)
        longest = max(longest, len(x))
        if len(x) < 4:
            continue
        v = np.diff(x, axis=0)  # v[t - 1] = x_t - x_{t-1}
        a = np.diff(v, axis=0)  # a[t - 1] = x_{t+1} - 2 x_t + x_{t-1}
        force = spring_forces(x[2:-1], np.asarray(box, dtype=np.float64)[2:-1], bonds, rest_length, stiffness)
        features.append(np.concatenate([a[:-1], force, v[1:-1]], axis=-1).reshape(-1, 6))
        targets.append(a[1:].reshape(-1, 2))
    if not targets:
        warnings.warn(f"local_predictability_r2: no trajectory has the 4 frames it needs (the longest has {longest}): NaN",
                      RuntimeWarning, stacklevel=2)
        return float("nan")
    x, y = np.concatenate(features), np.concatenate(targets)
    # scale the columns so that the least-squares problem is well conditioned whatever the units
    scale = np.where(np.std(x, axis=0) > 0, np.std(x, axis=0), 1.0)
    design = np.column_stack([x / scale, np.ones(len(x))])
    solution, *_ = np.linalg.lstsq(design, y, rcond=None)
    residual = y - design @ solution
    total = np.sum((y - y.mean(axis=0)) ** 2)
    return float(1.0 - np.sum(residual**2) / total) if total > 0 else float("nan")


def fastest_period(network: SpringNetwork, mass: float = 1.0) -> float:
    """Period of the network's fastest vibration, ``2 pi / sqrt(lambda_max / mass)``.

    ``lambda_max`` is the largest eigenvalue of the Hessian of the stress-free network
    (:func:`densim.elasticity.hessian`): dense for up to 300 nodes, else by Lanczos (``eigsh``).

    Parameters
    ----------
    network : SpringNetwork
    mass : float
        Node mass.

    Returns
    -------
    float
        In the network's time units; infinite for a network without bonds.
    """
    if network.num_bonds == 0:
        return float("inf")
    matrix = hessian(network)
    if network.num_nodes <= 300:
        lambda_max = float(np.linalg.eigvalsh(matrix.toarray())[-1])
    else:
        lambda_max = float(spla.eigsh(matrix, k=1, which="LA", return_eigenvectors=False)[0])
    return float(2.0 * np.pi / np.sqrt(lambda_max / mass)) if lambda_max > 0 else float("inf")


def fastest_period_frames(network: SpringNetwork, mass: float, frame_spacing: float) -> float:
    """Frames per period of the network's fastest vibration: :func:`fastest_period` over the frame spacing.

    Below about 2 frames the fastest modes alias (Nyquist); a learned simulator then sees them as noise.

    Parameters
    ----------
    network : SpringNetwork
    mass : float
        Node mass.
    frame_spacing : float
        Time between frames, ``steps_per_frame * timestep``.
    """
    return fastest_period(network, mass) / frame_spacing


def noise_over_signal(positions: np.ndarray, athermal_positions: np.ndarray, box_x: np.ndarray) -> float:
    """Thermal noise over signal of a trajectory, against its athermal twin (same run at temperature 0).

    The thermal part of the motion is ``x - x_athermal``, exactly (the drive is deterministic); its
    frame-to-frame change is compared with the residual velocity:
    ``rms(Δ(x - x_athermal)) / rms(r)``.

    Parameters
    ----------
    positions, athermal_positions : ndarray, shape (T, N, 2)
    box_x : ndarray, shape (T,)
    """
    x, signal = _stored_residual_velocities(positions, box_x)
    noise = velocities(x - np.moveaxis(athermal_positions, 0, 1))
    return float(np.sqrt(np.mean(noise**2) / np.mean(signal**2)))


def poisson_ratio_from_box(box: np.ndarray) -> np.ndarray:
    """Poisson ratio of every frame from the box, ``-(Ly/Ly0 - 1) / (Lx/Lx0 - 1)``; NaN at zero strain.

    Parameters
    ----------
    box : ndarray, shape (frames, 2)

    Returns
    -------
    ndarray, shape (frames,)
    """
    strain = box_strain(box)
    return _ratio(strain[:, 1], strain[:, 0])


def rebased_poisson_ratio(nu: np.ndarray, box_x: np.ndarray, reference: int) -> np.ndarray:
    """Poisson ratios measured from frame 0 (``nu``, as :func:`poisson_ratio_from_box` and
    :func:`poisson_ratio_from_positions` give them) re-measured from frame ``reference``:
    ``-(Ly/Ly_ref - 1) / (Lx/Lx_ref - 1)``, NaN at and before it.

    A rollout is given every frame up to its last input frame, so the deformation it predicts is the one from there
    on: its Poisson ratio from frame 0 would mostly be the given frames' (after a long start, even the frozen baseline
    scores well).

    Parameters
    ----------
    nu : ndarray, shape (frames,)
        From frame 0 (NaN at frame 0).
    box_x : ndarray, shape (frames,)
        Axial box length of every frame.
    reference : int
    """
    axial = box_x / box_x[0] - 1.0
    transverse_ratio = np.where(axial != 0, 1.0 - np.nan_to_num(nu) * axial, 1.0)  # Ly / Ly0
    ratio = _ratio(transverse_ratio / transverse_ratio[reference] - 1.0, box_x / box_x[reference] - 1.0)
    ratio[: reference + 1] = np.nan
    return ratio


def strain_design_matrix(reference: np.ndarray, box: np.ndarray) -> np.ndarray:
    """Columns: 1, centred y, and cos/sin of the lowest periodic modes of the reference positions, shape (N, 10)."""
    phase = 2 * np.pi * reference / box
    columns = [np.ones(len(reference)), reference[:, 1] - reference[:, 1].mean()]
    for kx, ky in ((1, 0), (0, 1), (1, 1), (1, -1)):
        argument = kx * phase[:, 0] + ky * phase[:, 1]
        columns += [np.cos(argument), np.sin(argument)]
    return np.stack(columns, axis=1)


def transverse_strain_from_slope(positions: np.ndarray, reference: np.ndarray, box: np.ndarray) -> np.ndarray:
    """Least-squares slope of transverse displacement against centred transverse reference position.

    The lowest periodic modes are fitted alongside the slope (see the module docstring).

    Parameters
    ----------
    positions : ndarray, shape (..., N, 2)
        Positions of one or more frames (wrapped or unwrapped).
    reference : ndarray, shape (N, 2)
        Reference positions (the first frame).
    box : ndarray, shape (2,)
        Reference box, for the minimum image of displacements.

    Returns
    -------
    ndarray, shape (...)
    """
    displacement = minimum_image(positions - reference, box)[..., 1]  # (..., N)
    coefficients = np.linalg.pinv(strain_design_matrix(reference, box))[1]  # the slope row of the least-squares solution
    return displacement @ coefficients


def poisson_ratio_from_slope(positions: np.ndarray, axial_strain: np.ndarray, box0: np.ndarray) -> np.ndarray:
    """Poisson ratio of every frame from the least-squares slope of transverse displacements.

    Parameters
    ----------
    positions : ndarray, shape (frames, N, 2)
        Node positions; frame 0 is the reference.
    axial_strain : ndarray, shape (frames,)
        Imposed engineering strain along x (negative in compression).
    box0 : ndarray, shape (2,)
        Box of frame 0.

    Returns
    -------
    ndarray, shape (frames,)
        NaN where the axial strain is zero.
    """
    return _ratio(transverse_strain_from_slope(positions, positions[0], box0), axial_strain)


def bond_images(reference, bonds, box):
    """Periodic image offsets ``n`` of each bond: ``x_j - x_i - n * L`` is its minimum-image vector in ``reference``.

    The sign convention of :func:`densim.springs.periodic_images`. Works on numpy arrays and torch tensors alike.

    Parameters
    ----------
    reference : array, shape (N, 2)
    bonds : int array, shape (B, 2)
    box : array, shape (2,)

    Returns
    -------
    array, shape (B, 2), integer-valued floats
    """
    return periodic_images(reference[bonds[:, 1]] - reference[bonds[:, 0]], box)


def zero_stress_box_y(positions, box_x, box_y0, bonds, images, rest_length, stiffness, tolerance: float = 1e-13, max_iterations: int = 50,
                      segments=None):
    """Transverse box length at which the network's energy is stationary with the node positions held.

    Solves ``dE/dL_y = 0`` for ``E = sum_b k_b / 2 (|d_b| - l_b)^2``, ``d_b = x_j - x_i - n_b * (L_x, L_y)``, by
    Newton's method from ``box_y0``; only bonds that cross the periodic boundary in y depend on ``L_y``. Works on
    numpy arrays and torch tensors alike (torch keeps gradients).

    Parameters
    ----------
    positions : array, shape (..., N, 2)
        Unwrapped node positions of one or more frames.
    box_x : array, shape (...)
        Imposed box length along x of each frame.
    box_y0 : float, or array of shape (G,) with ``segments``
        Starting value (the reference transverse box length).
    bonds : int array, shape (B, 2)
    images : array, shape (B, 2)
        From :func:`bond_images` of the reference frame.
    rest_length, stiffness : array, shape (B,)
    segments : LongTensor, shape (B,), optional
        Several networks at once (torch only): the network of each bond, ``0 .. G - 1``, with the networks' nodes
        stacked in ``positions`` of shape (N, 2), ``box_x`` and ``box_y0`` of shape (G,). Each network has its own
        Newton iteration (one batched solve instead of G).

    Returns
    -------
    array, shape (...), or (G,) with ``segments``
        NaN for frames with non-finite positions or where Newton's method does not converge.

    Raises
    ------
    ValueError
        When no bond (of some network) crosses the boundary in y (the transverse box is then undetermined).
    """
    crossing = images[:, 1] != 0
    if segments is None:
        per_bond, total = (lambda value: value[..., None]), (lambda value: value.sum(-1))
        uncrossed = not bool(crossing.any())
    else:
        segments, count = segments[crossing], len(box_x)
        per_bond, total = (lambda value: value[segments]), (lambda value: value.new_zeros(count).index_add(0, segments, value))
        uncrossed = bool((segments.bincount(minlength=count) == 0).any())
    if uncrossed:
        raise ValueError("no bond crosses the periodic boundary in y: the transverse box is undetermined")
    bonds, images, rest_length, stiffness = bonds[crossing], images[crossing], rest_length[crossing], stiffness[crossing]
    delta = positions[..., bonds[:, 1], :] - positions[..., bonds[:, 0], :]  # (..., B, 2)
    dx = delta[..., 0] - images[:, 0] * per_bond(box_x)
    ny = images[:, 1]
    box_y = box_x * 0 + box_y0
    for _ in range(max_iterations):
        dy = delta[..., 1] - ny * per_bond(box_y)
        length = (dx * dx + dy * dy) ** 0.5
        tension = stiffness * (length - rest_length)
        cosine = dy / length
        gradient = -total(tension * cosine * ny)  # d(dy)/dL_y = -n_y
        curvature = total(ny * ny * (stiffness * cosine * cosine + tension / length * (1 - cosine * cosine)))
        step = gradient / curvature
        box_y = box_y - step
        moving = abs(step) > tolerance * box_y0  # False where converged, and where NaN (non-finite positions)
        if not bool(moving.any()):
            return box_y
    box_y = box_y * 1.0  # a copy, for numpy and torch alike
    box_y[moving] = float("nan")  # frames that did not converge (a diverged rollout)
    return box_y


def poisson_ratio_from_positions(positions: np.ndarray, box_x: np.ndarray, box0: np.ndarray, bonds: np.ndarray, rest_length: np.ndarray, stiffness: np.ndarray) -> np.ndarray:
    """Poisson ratio of every frame from node positions and the network (:func:`zero_stress_box_y`).

    Parameters
    ----------
    positions : ndarray, shape (frames, N, 2)
        Unwrapped node positions; frame 0 is the reference.
    box_x : ndarray, shape (frames,)
        Imposed box length along x per frame.
    box0 : ndarray, shape (2,)
        Box of frame 0.
    bonds : ndarray, shape (B, 2)
    rest_length, stiffness : ndarray, shape (B,)

    Returns
    -------
    ndarray, shape (frames,)
        NaN where the axial strain is zero.
    """
    images = bond_images(positions[0], bonds, box0)
    box_y = zero_stress_box_y(positions, box_x, box0[1], bonds, images, rest_length, stiffness)
    return _ratio(box_y / box0[1] - 1.0, box_x / box0[0] - 1.0)


def r_squared(truth: np.ndarray, prediction: np.ndarray) -> float:
    """Coefficient of determination of ``prediction`` against ``truth`` (NaNs dropped pairwise; NaN when the truth
    does not vary)."""
    keep = np.isfinite(truth) & np.isfinite(prediction)
    truth, prediction = truth[keep], prediction[keep]
    residual = np.sum((truth - prediction) ** 2)
    total = np.sum((truth - truth.mean()) ** 2)
    return float(1.0 - residual / total) if total > 0 else float("nan")


def far_displacement(positions, far):
    """Mean displacement magnitude from frame 0 of the far-strip nodes, per frame (numpy or torch).

    ``d_t = mean_{i in far} |x_i(t) - x_i(0)|``.

    Parameters
    ----------
    positions : array, shape (..., T, N, 2)
        Unwrapped node positions, frames first as stored in trajectory files; frame 0 is the reference.
    far : bool array, shape (N,)
        The far strip (:func:`densim.md.impact_strips`).

    Returns
    -------
    array, shape (..., T)
    """
    delta = positions[..., :, far, :] - positions[..., :1, far, :]
    return ((delta**2).sum(-1) ** 0.5).mean(-1)


def front_arrival(displacement, threshold: float) -> float:
    """Fractional frame index at which a displacement series first reaches ``threshold``.

    Linear interpolation between the last frame below the threshold and the first at or above it: for
    ``d[t-1] < threshold <= d[t]`` the arrival is ``t - 1 + (threshold - d[t-1]) / (d[t] - d[t-1])``. The
    reference trajectory's threshold is ``arrival_fraction * max(d)``; a prediction is timed against the same
    threshold.

    Parameters
    ----------
    displacement : array_like, shape (T,)
        E.g. :func:`far_displacement` of a trajectory or a rollout (NaN frames never count as reached).
    threshold : float

    Returns
    -------
    float
        In ``[0, T - 1]``; NaN if the series never reaches the threshold.

    Examples
    --------
    >>> front_arrival([0.0, 0.0, 1.0, 2.0], 0.25)
    1.25
    """
    d = np.asarray(displacement, dtype=np.float64)
    reached = np.flatnonzero(d >= threshold)
    if len(reached) == 0:
        return float("nan")
    t = int(reached[0])
    if t == 0 or not np.isfinite(d[t - 1]):
        return float(t)
    return float(t - 1 + (threshold - d[t - 1]) / (d[t] - d[t - 1]))
