"""The trajectory protocols: what LAMMPS runs, what a trajectory file records, how rollouts set the box, and what
rollouts are scored on.

Each protocol is one object in :data:`PROTOCOLS` (like a model in :data:`densim.models.MODELS`); a dataset's
``protocol`` key and a trajectory file's ``protocol`` attribute name it. Adding a protocol is a subclass of
:class:`Protocol` and one line in the registry:

- ``compression``: uniaxial compression at a constant strain rate under a transverse barostat
  (:func:`densim.md.compress`); files record the Poisson ratio per frame, rollouts set the transverse box at
  zero transverse stress of the predicted positions and are scored on the Poisson ratio (Table 2: its R^2);
- ``impact``: a strip kicked outwards at rest, at fixed box (:func:`densim.md.impact`, settings in the
  ``trajectories.impact`` subsection); files record the strips, the far strip's displacement and the front's
  arrival, rollouts keep the box and are scored on the arrival frame (Table 2: its mean absolute error).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import xarray as xr

from densim.md import MDSettings, ImpactSettings, compress, impact, impact_md_settings, impact_strips
from densim.config import ConfigError, typed_config
from densim.springs import SpringNetwork
from densim.observables import (box_strain, far_displacement, front_arrival, poisson_ratio_from_box, poisson_ratio_from_positions,
                                poisson_ratio_from_slope, r_squared, rebased_poisson_ratio, zero_stress_box_y)

if TYPE_CHECKING:  # torch only where a rollout needs it: LAMMPS jobs, which import this module, never load it
    import torch

    from densim.rollout import TrajectoryGraph


class Protocol:
    """One trajectory protocol. Subclasses set :attr:`name`, :attr:`headline` and override what differs."""

    #: The protocol's name: a dataset's ``protocol`` key, a trajectory's and an evaluation's ``protocol`` attribute.
    name: ClassVar[str]
    #: Its own subsection of the ``trajectories`` config section (``None``: it has none).
    subsection: ClassVar[str | None] = None
    #: The evaluation metric of its datasets' column in Table 2 (:func:`densim.tables.headline_table`).
    headline: ClassVar[str]
    #: Fig. 2's parity panel: the evaluation quantity drawn predicted against true, and its axis label.
    parity: ClassVar[tuple[str, str]]
    #: Written over Fig. 2's Poisson R^2 panel where the protocol has no Poisson ratio (``None``: it has one).
    poisson_note: ClassVar[str | None] = None

    def headline_label(self, values, step: int) -> str:
        """The caption of Fig. 2's parity panel: the headline metric of the model shown (``values``: one per seed)."""
        return f"step {step}, R² = {values.mean():.2f}" + (f" ± {values.std():.2f}" if len(values) > 1 else "")

    def settings(self, section: dict) -> Any:
        """Its own settings from the ``trajectories`` section (``None`` where it has none), naming any bad key."""
        return None

    def md_settings(self, settings: MDSettings, own: Any) -> MDSettings:
        """The MD settings its runs use (the frame spacing, damping and the rest)."""
        return settings

    def record(self, settings: MDSettings, own: Any) -> dict:
        """The settings a trajectory file records (its ``md_settings`` attribute)."""
        return asdict(self.md_settings(settings, own))

    def run(self, network: SpringNetwork, settings: MDSettings, own: Any, progress: Callable[[int], Any] | None = None,
            reseed: tuple[int, int] | None = None):
        """One LAMMPS run of ``network`` (a :class:`densim.md.MDRun`); ``reseed``: (frame, seed), the thermostat's new
        seed after that frame (a thermal twin, :func:`densim.md.compress`)."""
        raise NotImplementedError

    def variables(self, network_ds: xr.Dataset, run, own: Any) -> dict:
        """The trajectory file's variables of this protocol (name -> (dims, values, attrs))."""
        return {}

    def summary(self, group: list[xr.Dataset], small_strain: float) -> dict[str, float]:
        """Its columns of the per-dataset trajectory summary (:func:`densim.trajectories.summary`)."""
        return {}

    def graph_fields(self, trajectory: xr.Dataset) -> dict:
        """Its fields of a rollout's :class:`densim.rollout.TrajectoryGraph`."""
        return {}

    def boxes(self, trajectories: list[TrajectoryGraph], positions: list[torch.Tensor], box_x: torch.Tensor) -> torch.Tensor:
        """The boxes of predicted frames of several trajectories at once, shape (G, 2), from each frame's positions
        (N_i, 2) and the imposed x lengths (G,)."""
        raise NotImplementedError

    def scores(self, trajectory: TrajectoryGraph, predicted: torch.Tensor, truth: torch.Tensor, last_input: int) -> dict:
        """Its per-step scores of one rollout: ``poisson_ratio``, ``poisson_ratio_true``, ``far_displacement``,
        ``far_displacement_true`` (shape (S,)), scalars ``arrival_frame`` and ``arrival_frame_true`` (NaN where they
        mean nothing). ``predicted`` and ``truth`` are (N, T, 2), the rollout's steps are ``last_input + 1 ..``."""
        raise NotImplementedError

    def evaluation_variables(self, trajectories: list[TrajectoryGraph], scores: dict[str, np.ndarray]) -> dict:
        """Variables an evaluation file of this protocol adds from its stacked ``scores`` (name -> (dims, values))."""
        return {}


def _not_measured(frames: int, last_input: int) -> dict:
    missing = np.full(frames - last_input - 1, np.nan)
    return {"poisson_ratio": missing, "poisson_ratio_true": missing.copy(), "far_displacement": missing.copy(),
            "far_displacement_true": missing.copy(), "arrival_frame": np.array(np.nan), "arrival_frame_true": np.array(np.nan)}


def small_strain_poisson_ratio(box: np.ndarray, max_strain: float) -> float:
    """Poisson ratio of the first frames, ``|eps_xx| <= max_strain``, as a least-squares slope through 0."""
    strain = box_strain(box)
    small = (np.abs(strain[:, 0]) <= max_strain) & (strain[:, 0] != 0)
    if not small.any():
        small = strain[:, 0] != 0
        small[np.argmax(small) + 1 :] = False  # only the first strained frame
    ex, ey = strain[small, 0], strain[small, 1]
    return float(-(ex @ ey) / (ex @ ex))


#: The Poisson-ratio columns of the trajectory summary, NaN in the rows of datasets without a Poisson ratio.
POISSON_COLUMNS = ("nu_min", "nu_median", "nu_max", "positions_vs_box_r2", "positions_vs_box_max_diff", "slope_vs_box_r2", "slope_vs_box_max_diff",
                   "compression_vs_uniaxial_r2", "compression_vs_uniaxial_max_diff", "compression_vs_isotropic_r2",
                   "compression_vs_isotropic_max_diff")


class Compression(Protocol):
    """Uniaxial compression along x (:func:`densim.md.compress`)."""

    name = "compression"
    headline = "poisson_r2"
    parity = ("poisson_ratio", "ν")

    def run(self, network, settings, own, progress=None, reseed=None):
        return compress(network, settings, progress=progress, reseed=reseed)

    def variables(self, network_ds, run, own):
        """The Poisson ratio of every frame, from the box, from positions and from the slope."""
        return {
            "poisson_ratio_box": (("time",), poisson_ratio_from_box(run.box), {"description": "-(Ly/Ly0 - 1)/(Lx/Lx0 - 1)"}),
            "poisson_ratio_positions": (
                ("time",),
                poisson_ratio_from_positions(run.positions, run.box[:, 0], run.box[0], network_ds["bonds"].values,
                                             network_ds["rest_length"].values, network_ds["stiffness"].values),
                {"description": "from positions and the network: transverse box at zero transverse stress (densim.observables)"},
            ),
            "poisson_ratio_slope": (
                ("time",),
                poisson_ratio_from_slope(run.positions, run.strain, run.box[0]),
                {"description": "least-squares slope of transverse displacements over the imposed axial strain"},
            ),
        }

    def summary(self, group, small_strain):
        """Range and median of the final box nu, agreement of positions nu and slope nu with box nu over every strained frame
        (R^2, largest difference), and of the small-strain compression nu with linear response (C_xxyy / C_yyyy and
        the isotropic (B - G) / (B + G))."""
        box_nu = np.concatenate([ds["poisson_ratio_box"].values[1:] for ds in group])
        pos_nu = np.concatenate([ds["poisson_ratio_positions"].values[1:] for ds in group])
        slope_nu = np.concatenate([ds["poisson_ratio_slope"].values[1:] for ds in group])
        final = np.array([ds["poisson_ratio_box"].values[-1] for ds in group])
        compression = np.array([small_strain_poisson_ratio(ds["box"].values, small_strain) for ds in group])
        uniaxial = np.array([float(ds["uniaxial_poisson_ratio"]) for ds in group])
        isotropic = np.array([float(ds["isotropic_poisson_ratio"]) for ds in group])
        return {
            "nu_min": float(final.min()),
            "nu_median": float(np.median(final)),
            "nu_max": float(final.max()),
            "positions_vs_box_r2": r_squared(box_nu, pos_nu),
            "positions_vs_box_max_diff": float(np.nanmax(np.abs(box_nu - pos_nu))),
            "slope_vs_box_r2": r_squared(box_nu, slope_nu),
            "slope_vs_box_max_diff": float(np.nanmax(np.abs(box_nu - slope_nu))),
            "compression_vs_uniaxial_r2": r_squared(uniaxial, compression),
            "compression_vs_uniaxial_max_diff": float(np.max(np.abs(uniaxial - compression))),
            "compression_vs_isotropic_r2": r_squared(isotropic, compression),
            "compression_vs_isotropic_max_diff": float(np.max(np.abs(isotropic - compression))),
        }

    def boxes(self, trajectories, positions, box_x):
        """The imposed x lengths; the y lengths at zero transverse stress of the positions, every network's Newton
        iteration in one batched solve."""
        import torch

        offsets = [0, *np.cumsum([len(p) for p in positions])[:-1].tolist()]
        bond_counts = torch.tensor([len(t.bonds) for t in trajectories], device=box_x.device)
        box_y = zero_stress_box_y(torch.cat(positions), box_x, torch.stack([t.box[0, 1] for t in trajectories]),
                                  torch.cat([t.bonds + offset for t, offset in zip(trajectories, offsets)]),
                                  torch.cat([t.images for t in trajectories]),
                                  torch.cat([t.graph.rest_length[: len(t.bonds)] for t in trajectories]),
                                  torch.cat([t.stiffness for t in trajectories]),
                                  segments=torch.arange(len(trajectories), device=box_x.device).repeat_interleave(bond_counts))
        return torch.stack([box_x, box_y], dim=1)

    def scores(self, trajectory, predicted, truth, last_input):
        """The Poisson ratio of the predicted positions (zero-stress route) and of the true box, both measured from the
        last input frame (:func:`densim.observables.rebased_poisson_ratio`)."""
        frames = predicted.shape[1]
        scores = _not_measured(frames, last_input)
        steps = slice(last_input + 1, frames)
        box = trajectory.box[:frames].cpu().numpy()
        rest_length = trajectory.graph.rest_length[: len(trajectory.bonds)]
        nu = poisson_ratio_from_positions(predicted.permute(1, 0, 2).cpu().numpy(), box[:, 0], box[0], trajectory.bonds.cpu().numpy(),
                                          rest_length.cpu().numpy(), trajectory.stiffness.cpu().numpy())
        scores["poisson_ratio"] = rebased_poisson_ratio(nu, box[:, 0], last_input)[steps]
        scores["poisson_ratio_true"] = rebased_poisson_ratio(poisson_ratio_from_box(box), box[:, 0], last_input)[steps]
        return scores

    def evaluation_variables(self, trajectories, scores):
        """The network oracle: each test network's own linear-response uniaxial Poisson ratio (C_xxyy / C_yyyy, it knows
        the network but not the dynamics) and its R^2 against the simulated (box) Poisson ratio at every step."""
        nu_true = scores["poisson_ratio_true"]
        network_nu = np.array([t.uniaxial_poisson_ratio for t in trajectories])
        r2 = np.array([r_squared(nu_true[:, s], network_nu) if np.isfinite(nu_true[:, s]).sum() > 1 else np.nan
                       for s in range(nu_true.shape[1])])
        return {"poisson_ratio_network": ("trajectory", network_nu), "oracle_poisson_r2": ("step", r2)}


class Impact(Protocol):
    """A strip kicked outwards at rest, at fixed box (:func:`densim.md.impact`)."""

    name = "impact"
    subsection = "impact"
    headline = "arrival_error"
    parity = ("arrival_frame", "front arrival [frame]")
    poisson_note = "fixed box: no Poisson ratio\n(arrival error in Table 2)"

    def headline_label(self, values, step):
        return f"error = {values.mean():.2f}" + (f" ± {values.std():.2f}" if len(values) > 1 else "") + " frames"

    def settings(self, section):
        """The ``impact`` subsection (defaults when absent), naming any bad key (``trajectories.impact.<key>``)."""
        kick = section.get("impact", {})
        if not isinstance(kick, dict):
            raise ConfigError(f"trajectories.impact: expected a mapping, got {kick!r}")
        return typed_config(ImpactSettings, kick, "trajectories.impact")

    def md_settings(self, settings, own):
        return impact_md_settings(settings, own)

    def record(self, settings, own):
        return {**asdict(self.md_settings(settings, own)), "impact": asdict(own)}

    def run(self, network, settings, own, progress=None, reseed=None):
        return impact(network, settings, own, progress=progress, reseed=reseed)

    def variables(self, network_ds, run, own):
        """The strips, the far strip's displacement and the front's arrival."""
        kicked, far = impact_strips(run.positions[0], run.box[0], own)
        displacement = far_displacement(run.positions, far)
        threshold = own.arrival_fraction * float(displacement.max())
        return {
            "kicked": (("node",), kicked, {"description": "nodes of the kicked strip (densim.md.impact_strips)"}),
            "far": (("node",), far, {"description": "nodes of the far strip, centred half a box from the kicked one"}),
            "far_displacement": (("time",), displacement, {"units": "small particle diameter",
                                                            "description": "mean over far nodes of |x(t) - x(0)| (densim.observables.far_displacement)"}),
            "arrival_frame": ((), front_arrival(displacement, threshold), {
                "units": "frame", "description": "first (interpolated, fractional) frame index at which far_displacement reaches arrival_threshold"}),
            "arrival_threshold": ((), threshold, {"units": "small particle diameter",
                                                  "description": "trajectories.impact.arrival_fraction times the largest far_displacement"}),
        }

    def summary(self, group, small_strain):
        """NaN Poisson columns (fixed box); median, min and max of the front's arrival frame over the trajectories
        (fronts that never arrived left out; NaN when none arrived)."""
        arrival = np.array([float(ds["arrival_frame"]) for ds in group])
        arrival = arrival[np.isfinite(arrival)]
        columns = dict.fromkeys(POISSON_COLUMNS, np.nan)
        if len(arrival) == 0:
            return {**columns, **dict.fromkeys(("arrival_frame_median", "arrival_frame_min", "arrival_frame_max"), np.nan)}
        return {**columns, "arrival_frame_median": float(np.median(arrival)), "arrival_frame_min": float(arrival.min()),
                "arrival_frame_max": float(arrival.max())}

    def graph_fields(self, trajectory):
        import torch

        return {"far": torch.as_tensor(trajectory["far"].values.astype(bool)), "arrival_threshold": float(trajectory["arrival_threshold"])}

    def boxes(self, trajectories, positions, box_x):
        """The fixed boxes."""
        import torch

        return torch.stack([t.box[0] for t in trajectories])

    def scores(self, trajectory, predicted, truth, last_input):
        """The far strip's displacement per step and the front's arrival frame (the last frame where it never arrives)."""
        frames = predicted.shape[1]
        scores = _not_measured(frames, last_input)
        steps = slice(last_input + 1, frames)
        for suffix, positions in (("", predicted), ("_true", truth)):
            displacement = far_displacement(positions.permute(1, 0, 2), trajectory.far).cpu().numpy()
            arrival = front_arrival(displacement, trajectory.arrival_threshold)
            scores[f"far_displacement{suffix}"] = displacement[steps]
            scores[f"arrival_frame{suffix}"] = np.array(frames - 1.0 if np.isnan(arrival) else arrival)
        return scores


#: Every protocol by name.
PROTOCOLS: dict[str, Protocol] = {protocol.name: protocol for protocol in (Compression(), Impact())}


def get_protocol(name: str) -> Protocol:
    """The protocol called ``name``; a :class:`ValueError` names the known ones."""
    try:
        return PROTOCOLS[name]
    except KeyError:
        raise ValueError(f"unknown trajectory protocol {name!r}; known protocols: {', '.join(PROTOCOLS)}") from None


def protocol_of(ds: xr.Dataset) -> Protocol:
    """The protocol of a trajectory or evaluation file (files written before impact existed are compressions)."""
    return get_protocol(ds.attrs.get("protocol", "compression"))


def md_settings(section: dict) -> MDSettings:
    """The MD settings of a ``trajectories`` section (every protocol's subsection aside), naming any bad key."""
    own = {protocol.subsection for protocol in PROTOCOLS.values()}
    return typed_config(MDSettings, {key: value for key, value in section.items() if key not in own}, "trajectories")
