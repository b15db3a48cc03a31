"""Observables of compression trajectories, on plain arrays (xarray wrappers live with the stages).

The Poisson ratio of a frame is ``nu = -eps_yy / eps_xx`` for axial compression along x, measured two ways:

- :func:`poisson_ratio_from_box`: strains of the periodic box (the ground truth of a simulation);
- :func:`poisson_ratio_from_positions`: from node positions alone, which is what a learned rollout has. The
  transverse strain is the least-squares slope of the transverse displacement against the centred transverse
  position of the reference frame (displacements under the minimum image); the axial strain is the imposed one.

A periodic network's non-affine displacement field is periodic, but over one box a long-wavelength periodic
field still correlates with position and biases a plain slope (on pruned 128-node networks the box-vs-positions
R^2 falls to 0.84). The regression therefore also fits the lowest periodic modes of the reference positions
(wave vectors (1, 0), (0, 1), (1, 1), (1, -1), in box units), which absorb that field and leave the slope as
the affine strain; an exactly affine deformation is still recovered exactly.
"""

from __future__ import annotations

import numpy as np

from densim.network import minimum_image


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


def strain_design_matrix(reference: np.ndarray, box: np.ndarray) -> np.ndarray:
    """Columns: 1, centred y, and cos/sin of the lowest periodic modes of the reference positions, shape (N, 10)."""
    phase = 2 * np.pi * reference / box
    columns = [np.ones(len(reference)), reference[:, 1] - reference[:, 1].mean()]
    for kx, ky in ((1, 0), (0, 1), (1, 1), (1, -1)):
        argument = kx * phase[:, 0] + ky * phase[:, 1]
        columns += [np.cos(argument), np.sin(argument)]
    return np.stack(columns, axis=1)


def transverse_strain_from_positions(positions: np.ndarray, reference: np.ndarray, box: np.ndarray) -> np.ndarray:
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


def poisson_ratio_from_positions(positions: np.ndarray, axial_strain: np.ndarray, box0: np.ndarray) -> np.ndarray:
    """Poisson ratio of every frame from node positions and the imposed axial strain.

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
    return _ratio(transverse_strain_from_positions(positions, positions[0], box0), axial_strain)


def r_squared(truth: np.ndarray, prediction: np.ndarray) -> float:
    """Coefficient of determination of ``prediction`` against ``truth`` (NaNs dropped pairwise)."""
    keep = np.isfinite(truth) & np.isfinite(prediction)
    truth, prediction = truth[keep], prediction[keep]
    residual = np.sum((truth - prediction) ** 2)
    total = np.sum((truth - truth.mean()) ** 2)
    return float(1.0 - residual / total)
