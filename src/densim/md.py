"""Molecular dynamics of a spring network in LAMMPS (the runs behind densim.protocols): compression, release and impact.

:func:`compress` places a :class:`~densim.springs.SpringNetwork` in an in-memory LAMMPS instance
(:mod:`densim.lammps`), relaxes its box to zero stress and compresses it along x at a constant engineering
rate while the transverse box follows zero stress, recording a frame every ``steps_per_frame`` steps.
:func:`release` lets a displaced network ring at fixed box; :func:`impact` kicks a strip of nodes outwards at
fixed box, so that a longitudinal pulse crosses the network. :func:`compression_commands`,
:func:`release_commands` and :func:`impact_commands` hold the protocols' LAMMPS commands, so an input deck can
run them too.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from densim.config import ConfigError, check_settings, setting
from densim.lammps import checked_network, format_float, gather_xy, new_lammps, place_network
from densim.springs import SpringNetwork, minimum_image

__all__ = ["BOX_GUARD", "BOX_MODE_LIMIT", "KICK_CENTRE", "REGIMES", "MDRun", "MDSettings", "ImpactSettings", "SimulationError",
           "barostat_mass", "box_mode_stability", "box_stiffness", "check_barostat", "compress", "compression_commands", "impact",
           "impact_commands", "impact_md_settings", "impact_strips", "kick_velocities", "release", "release_commands",
           "reseed_commands"]


class SimulationError(RuntimeError):
    """A LAMMPS run failed: lost atoms, non-finite energy or positions, or a LAMMPS error."""


#: The study group's LAMMPS compression decks (``Shteingolts/simulator_data_gen``), in their own ``units metal``
#: (g/mol, Angstrom, eV, ps, K), as their files have them; :func:`deck_regime` translates each into a regime.
#:
#: ``published`` (deck A) is the deck of the 50 published runs (its first commit, 3628f35: ``in.deformation``,
#: ``init.mod``, ``potential.mod`` and each run's ``log.lammps``, one deck for all 50, Langevin seed 904297): node
#: mass 1e4, ``bond_style harmonic`` with ``K = 1/l0^2`` (``k = 2 K``: ``stiffness: inverse_square_length``),
#: ``timestep 0.01``, ``fix nve`` *and* ``fix nph y 0.0 0.0 10 ptemp 0.1`` (pchain 3, drag 0 by default), so every
#: node is integrated twice per step (LAMMPS warns "One or more atoms are time integrated more than once"),
#: ``fix langevin 0.1 0.1 1``, ``fix deform 1 x erate -1e-4 units box remap x``, 50,000 steps (5 % strain),
#: ``dump ... 250`` (200 frames, the first 128 steps after the deformation starts), no ``fix momentum``.
#: The double integration is velocity Verlet with a step of ``2 dt`` (the velocity update exactly, the position
#: update with ``3/8`` for ``1/2`` of the acceleration term, harmless at ``omega_max 2 dt`` 0.07-0.09): time runs
#: twice as fast per step, the bath is at ``2 T`` (0.2 K) with its damping time unchanged in that time (1 ps), the
#: barostat integrates once per step (``Pdamp`` 20 ps in that time), and the strain per frame is unchanged. Checked
#: against the published files: the authors' deck run here reproduces their dumps byte for byte with their seed;
#: their logs' kinetic temperature (mean 0.207 K over the 50 runs after 5,000 steps) is the doubled run's (0.207 K;
#: without ``fix nve``: 0.103 K), and a deck with one integration at ``2 dt``, 0.2 K, ``Pdamp`` 20 and half the strain
#: rate follows the authors' run to 6e-3 Angstrom over 200 frames with the same random numbers.
#:
#: ``later`` (deck B) is the deck of the later versions of their scripts (``lammps_scripts.py`` from 585eb47 to
#: 787f54d, with ``sim_var_cli.py``): mass 1e6 (1e5 and 5e8 in some versions), ``K = 1/l0^2`` (times 10 in
#: ``sim_var_cli.py`` from 8720a59), one integration (``fix nve`` commented out), ``fix langevin 1e-7 1e-7 10``,
#: ``fix nph y 0.0 0.0 1000.0 ptemp 0.0001``, ``erate -1e-5``, 3 % strain, a frame every ``int(1e4 / Lx)`` steps
#: (0.001 Angstrom of box per frame: 561 steps for their 200-node boxes of 17.8 Angstrom, 396 for 400 nodes),
#: ``fix momentum 100 linear 1 1 1 angular``, and harmonic angle springs (``K_theta`` 0.01 eV/rad^2), which densim's
#: networks do not have: the settings it cannot match.
DECKS: dict[str, dict[str, float]] = {
    "published": {"mass": 1e4, "timestep": 0.01, "integrations": 2, "steps_per_frame": 250, "damping": 1.0, "temperature": 0.1,
                  "pressure_damping": 10.0, "barostat_temperature": 0.1, "strain_rate": 1e-4, "strain": 0.05, "densim_steps_per_frame": 100},
    "later": {"mass": 1e6, "timestep": 0.01, "integrations": 1, "steps_per_frame": 561, "damping": 10.0, "temperature": 1e-7,
              "pressure_damping": 1000.0, "barostat_temperature": 1e-4, "strain_rate": 1e-5, "strain": 0.03, "densim_steps_per_frame": 66},
}


def deck_regime(deck: dict[str, float]) -> dict[str, float]:
    """A deck of :data:`DECKS` in densim's units: unit node mass, lengths in Angstrom read as small-particle diameters,
    energies in eV, so the time unit is ``tau = sqrt(m A^2 / eV)`` of the deck's node mass
    (:func:`densim.dumps.time_unit`: 1.018 ps at 1e4 g/mol, 10.18 ps at 1e6) and temperatures are ``k_B T`` in eV. With
    ``k = 2 / l0^2`` (``stiffness: inverse_square_length``) ``t0 = sqrt(m / k) = l0 / sqrt(2)`` tau, 0.81 tau at deck
    A's median bond (1.14 Angstrom).

    The deck's integrations per step (two for deck A) scale its time, bath temperature and barostat damping
    (see :data:`DECKS`); densim integrates once, with ``densim_steps_per_frame`` steps per frame of the deck's frame time.
    """
    from densim.dumps import UNITS, time_unit

    tau = time_unit("metal", deck["mass"])
    boltzmann = UNITS["metal"][1]
    twice = deck["integrations"]
    frame_time = twice * deck["timestep"] * deck["steps_per_frame"] / tau
    strain_per_frame = deck["strain_rate"] * deck["timestep"] * deck["steps_per_frame"]
    return {
        "timestep": frame_time / deck["densim_steps_per_frame"],
        "steps_per_frame": int(deck["densim_steps_per_frame"]),
        "damping": deck["damping"] / tau,
        "strain_per_frame": strain_per_frame,
        "frames": round(deck["strain"] / strain_per_frame) + 1,
        "temperature": twice * deck["temperature"] * boltzmann,
        "pressure_damping": twice * deck["pressure_damping"] / tau,
        "barostat_temperature": deck["barostat_temperature"] * boltzmann,
        "barostat_drag": 0.1,
    }


#: The dynamical regimes, in natural units: unit node mass and springs ``k ~ 1`` (``k = 1/l0`` with ``l0 ~ 1``),
#: so the time unit is ``t0 = sqrt(m / k) ~ 1``. Each gives the settings that a ``trajectories`` section leaves
#: ``None``.
#:
#: ``study`` follows the time scales of the study's LAMMPS deck as first read (metal units: timestep 0.01 ps, a
#: frame every 250 steps = 2.5 ps, ``fix langevin`` damping 1 to 6 ps, node mass 1e4 to 1e6 g/mol, ``K = 1/l0^2``
#: eV/A^2 so ``k = 2K ~ 2`` eV/A^2, strain rate 1e-5 per ps). Here a frame spans 2 t0 (40 steps of 0.05, about 50
#: steps per period of the fastest vibration, ``omega_max ~ 2.5``, for accuracy rather than stability), the damping
#: time is 8 t0 and the strain per frame 2.5e-5, at a temperature of 1e-12. The slowest non-trivial modes of the
#: 128-node networks have ``omega`` 0.15-0.18 (NODE-OPT) and 0.09-0.14 (BOND-PRU-OPT), periods of 35-75 t0 (17-37
#: frames); a mode rings (is underdamped) when ``omega > 1 / (2 damping)`` = 0.0625, so these ring; the
#: near-floppy modes of NOI-PRU (``omega`` down to 0.01) are overdamped in any damping of the deck's range.
#:
#: ``quasi_static`` is the earlier protocol: a frame every 80 t0 (200 steps of 0.4), damping 50, 5e-4 strain per
#: frame; every vibration and relaxation settles within a frame.
#:
#: ``published`` and ``later`` are the study group's decks A and B (:data:`DECKS`, :func:`deck_regime`), for
#: networks of ``k = 2 / l0^2``. ``published``: a frame of 4.91 tau (6.07 t0 at the median bond; 100 steps of
#: 0.049), damping 0.98 tau (1.2 t0), ``k_B T`` 1.72e-5 (8.6e-6 ``k l0^2``), ``Pdamp`` 19.6 tau, ``ptemp`` 8.6e-6,
#: 2.5e-4 strain per frame, 201 frames (5 %). ``later``: a frame of 0.55 tau (0.49 t0 at their 1.36-Angstrom median
#: bond; 11 steps of 0.050), damping 0.98 tau, ``k_B T`` 8.6e-12, ``Pdamp`` 98 tau, ``ptemp`` 8.6e-9, 5.6e-5 strain
#: per frame, 536 frames (3 %).
_OWN = {"temperature": 1e-12, "pressure_damping": 1.0, "barostat_temperature": 1.0, "barostat_drag": 0.1, "frames": 41}
REGIMES: dict[str, dict[str, float]] = {
    "study": {"timestep": 0.05, "steps_per_frame": 40, "damping": 8.0, "strain_per_frame": 2.5e-5, **_OWN},
    "quasi_static": {"timestep": 0.4, "steps_per_frame": 200, "damping": 50.0, "strain_per_frame": 5e-4, **_OWN},
    **{name: deck_regime(deck) for name, deck in DECKS.items()},
}


@dataclass(frozen=True)
class MDSettings:
    """Settings of a LAMMPS run (``units lj``; the ``trajectories`` config section): every protocol reads the
    dynamics, compression also the strain.

    Only dimensionless combinations matter.  With springs of stiffness
    ``k ~ 1`` and unit node mass the fastest vibration has angular frequency
    ``sqrt(lambda_max)``, ``lambda_max`` the largest Hessian eigenvalue (about
    5 for the jammed networks of this project, 6 for a triangular lattice of
    unit springs).  ``dynamics`` picks a regime of :data:`REGIMES`, which
    gives ``timestep``, ``steps_per_frame``, ``damping``, ``strain`` (as a
    strain per frame), ``frames``, ``temperature`` and the barostat's settings
    where they are left ``None``.

    Attributes
    ----------
    dynamics : str
        ``study`` (frames resolve the slow modes), ``quasi_static`` (every
        frame relaxed), or the study group's decks ``published`` (A) and
        ``later`` (B); see :data:`REGIMES`.
    strain : float
        Total engineering compressive strain along x (positive), reached at the
        last frame.
    frames : int
        Frames recorded, including frame 0 (the relaxed start).
    steps_per_frame : int
        MD steps between frames.
    timestep : float
        MD timestep.  Velocity Verlet is stable while
        ``timestep * sqrt(lambda_max / mass) < 2`` (a network too stiff for it
        is reported by :func:`densim.trajectories.simulate`).
    mass : float
        Node mass.
    temperature : float
        Target temperature of ``fix langevin``.  Thermal displacements scale as
        ``sqrt(temperature)``: at 1e-8 they are ~25 % of the per-frame
        non-affine displacement of a jammed network (quasi-static), at 1e-12
        ~0.3 %.
    damping : float
        Damping time ``mass / gamma`` of ``fix langevin``.  A mode of angular
        frequency ``omega`` rings at ``sqrt(omega**2 - 1 / (4 damping**2))``
        and decays at the rate ``1 / (2 damping)``.  Friction on the nodes also
        delays the non-affine relaxation that the transverse box needs (by
        ``gamma |u|**2 / (V C22)`` time units, 100-250 gamma for auxetic
        networks): with overdamped nodes (damping ~1) the box Poisson ratio of
        an auxetic network is 50-130 % off at 0.2 % strain.
    pressure_damping : float
        ``Pdamp`` of ``fix nph`` on y; it scales the barostat mass (see
        ``barostat_temperature``) and its damping rate (see ``barostat_drag``).
    barostat_temperature : float
        ``ptemp`` of ``fix nph``.  With ``pchain 0`` it only sets the barostat
        mass ``W = (N + 1) * barostat_temperature * pressure_damping**2``
        (:func:`barostat_mass`; energy times time squared, no node mass in
        it), the inertia of the transverse log strain ``eps = ln(Ly / Ly0)``:
        ``W eps'' = (P_yy - 0) V``.  With ``dilate all`` the nodes follow the
        box affinely within a step, so the box mode's stiffness is the affine
        one, ``K = d^2 E / d eps^2 = sum_b k_b r_by^4 / r_b^2`` on a
        stress-free network (:func:`box_stiffness`; ``V`` times the affine
        ``C_yyyy``, about ``N + 1`` for the springs of this project:
        ``K / (N + 1)`` is 0.95-1.12 on six 127-128-node NOI-PRU networks,
        1.04 on a 64-node jammed one, 9/8 on a triangular lattice of unit
        springs).  The box mode's angular frequency is
        ``sqrt(K / W) ~ 1 / (pressure_damping * sqrt(barostat_temperature))``,
        independent of N; the box's velocity Verlet step is stable while
        ``timestep * sqrt(K / W) < 2`` (:func:`box_mode_stability`; measured
        on three NOI-PRU networks: at 1.95-1.98 the box is as with the
        default barostat, at 2.02 it swings by 9-10 % instead of 1e-4, from
        2.05 on it runs away).  Past it the box strain grows by about
        ``(timestep * sqrt(K / W))**2`` per step: at ``pressure_damping``
        435, ``barostat_temperature`` 4.3e-12 and ``timestep`` 0.05 that is
        55**2 ~ 3000, and the box collapses (or explodes) within four steps,
        after which LAMMPS replicates every node into the ghost images of a
        box thinner than the ghost cutoff until memory runs out.
        :func:`compress` therefore refuses settings with
        ``timestep * sqrt(K / W) >= BOX_MODE_LIMIT`` (1.9) on the network at
        hand, and stops a box that leaves a wide band around ``Ly0`` anyway
        (:data:`BOX_GUARD`); keep ``timestep * sqrt(K / W)`` at 1 or below
        (``W >= K * timestep**2``) for a box mode that the integration
        resolves.  The defaults (1, 1) make the bare box mode about as fast as
        the node vibrations (``sqrt(K / W) ~ 1``, ``timestep * sqrt(K / W)``
        0.05 at the study timestep).
    barostat_drag : float
        ``drag`` of ``fix nph``: the barostat velocity decays at the rate
        ``2 * barostat_drag / pressure_damping``.  ``timestep * barostat_drag /
        pressure_damping`` must stay below 1.
    seed : int
        Seed of ``fix langevin``, in ``[1, 900000000]``.
    relax_force_tolerance : float
        Force-norm tolerance of the initial zero-stress box relaxation
        (``fix box/relax`` + ``minimize``).  A stress-free network is already
        below it and is left untouched.
    """

    dynamics: str = setting("trajectories.dynamics")
    strain: float = setting("trajectories.strain")
    strain_per_frame: float | None = setting("trajectories.strain_per_frame")
    frames: int | None = setting("trajectories.frames")
    steps_per_frame: int = setting("trajectories.steps_per_frame")
    timestep: float = setting("trajectories.timestep")
    mass: float = setting("trajectories.mass")
    temperature: float | None = setting("trajectories.temperature")
    damping: float = setting("trajectories.damping")
    pressure_damping: float | None = setting("trajectories.pressure_damping")
    barostat_temperature: float | None = setting("trajectories.barostat_temperature")
    barostat_drag: float | None = setting("trajectories.barostat_drag")
    seed: int = setting("trajectories.seed")
    relax_force_tolerance: float = setting("trajectories.relax_force_tolerance")
    rollout_start: float = setting("trajectories.rollout_start")

    def __post_init__(self) -> None:
        check_settings(self, "trajectories")
        regime = REGIMES[self.dynamics]
        for name, value in regime.items():
            if getattr(self, name) is None:
                object.__setattr__(self, name, value)
        if self.strain is None:
            object.__setattr__(self, "strain", self.strain_per_frame * (self.frames - 1))
        if self.rollout_start_frame >= self.frames - 1:
            raise ConfigError(f"trajectories.rollout_start: {self.rollout_start} damping times is frame {self.rollout_start_frame}, "
                              f"which leaves no frame to roll out of {self.frames} (raise trajectories.frames)")
        # fix nh multiplies the barostat velocity by 1 - dt * drag / Pdamp every
        # half step; at or past 1 it freezes or flips the box silently.
        if self.timestep * self.barostat_drag / self.pressure_damping >= 1:
            raise ConfigError("trajectories.barostat_drag: timestep * barostat_drag / pressure_damping must be below 1")

    @property
    def frame_time(self) -> float:
        """Time between frames (lj time units)."""
        return self.steps_per_frame * self.timestep

    @property
    def rollout_start_frame(self) -> int:
        """The first frame at or after ``rollout_start`` damping times: where rollouts start (their last ground-truth
        frame, when the history allows)."""
        return math.ceil(self.rollout_start * self.damping / self.frame_time - 1e-9)

    @property
    def total_steps(self) -> int:
        """MD steps from frame 0 to the last frame."""
        return (self.frames - 1) * self.steps_per_frame

    @property
    def strain_rate(self) -> float:
        """Engineering strain rate ``erate`` of ``fix deform`` (negative: compression)."""
        return -self.strain / (self.total_steps * self.timestep)


#: Where the kicked strip is centred, as a fraction of ``Lx``; the far strip is centred half a box away.
KICK_CENTRE = 0.25


@dataclass(frozen=True)
class ImpactSettings:
    """The kick of the impact protocol (the ``trajectories.impact`` config section).

    The network starts at rest in its box; the nodes of a strip across the box (all y) get an outward velocity
    along x, ``+speed`` right of the strip's centre line and ``-speed`` left of it, less the strip's mean
    velocity. The box stays fixed and the network evolves under ``fix nve`` with weak Langevin damping, so a
    longitudinal pulse runs out of the strip both ways and meets itself on the far side of the periodic box.

    Attributes
    ----------
    speed : float
        Kick speed (small-particle diameters per time unit). A longitudinal pulse strains the network by
        about its particle velocity over the sound speed (~1 in natural units), so the default 1e-3 stays in
        the linear regime (strains below 1e-3) and far above the thermal motion of the default temperature.
    strip : float
        Width of the kicked strip as a fraction of ``Lx``, centred on ``x = KICK_CENTRE * Lx``.
    damping : float
        Damping time ``mass / gamma`` of ``fix langevin`` during the impact run: low damping, so the pulse
        crosses the box many times before it decays (energy decays at the rate ``1 / damping``).
    steps_per_frame : int
        MD steps between frames (the timestep is ``trajectories.timestep``; 20 steps of 0.05 is one ``t0``).
    far : float
        Width, as a fraction of ``Lx``, of the far strip, centred half a box from the kicked one, whose mean
        displacement times the front's arrival (:func:`densim.observables.far_displacement`).
    arrival_fraction : float
        The front has arrived when the far strip's mean displacement reaches this fraction of its largest
        value over the reference trajectory (:func:`densim.observables.front_arrival`).
    """

    speed: float = setting("trajectories.impact.speed")
    strip: float = setting("trajectories.impact.strip")
    damping: float = setting("trajectories.impact.damping")
    steps_per_frame: int = setting("trajectories.impact.steps_per_frame")
    far: float = setting("trajectories.impact.far")
    arrival_fraction: float = setting("trajectories.impact.arrival_fraction")

    def __post_init__(self) -> None:
        check_settings(self, "trajectories.impact")


@dataclass(frozen=True)
class MDRun:
    """Frames of one LAMMPS run (compression, release or impact).

    Attributes
    ----------
    positions : ndarray, shape (frames, N, 2)
        Unwrapped float64 node positions, row ``i`` for node ``i``: each node
        moves continuously from its input position (wrapped into the box) at
        frame 0.  The box stays centred on ``(Lx0 / 2, Ly0 / 2)``, so the
        affine part of the motion is a scaling about that point.
    box : ndarray, shape (frames, 2)
        Box lengths ``(Lx, Ly)``.
    strain : ndarray, shape (frames,)
        Engineering axial strain ``Lx / Lx0 - 1`` (negative in compression).
    potential_energy : ndarray, shape (frames,)
        Elastic energy of the network (LJ energy units).
    kinetic_energy : ndarray, shape (frames,)
        ``(mass / 2) sum |v|**2`` of the nodes' velocities at the frame's step (LJ energy units).
    lammps_version : int
        LAMMPS version, e.g. 20250722.
    """

    positions: np.ndarray
    box: np.ndarray
    strain: np.ndarray
    potential_energy: np.ndarray
    kinetic_energy: np.ndarray
    lammps_version: int


#: ``timestep * sqrt(box stiffness / barostat mass)`` (:func:`box_mode_stability`) at or above which :func:`compress`
#: refuses to run: the box's velocity Verlet step is unstable past 2 (the margin of the node check of
#: :func:`densim.trajectories.simulate`).
BOX_MODE_LIMIT = 1.9

#: ID of the ``fix halt`` of :func:`compression_commands` that stops a run whose transverse box leaves
#: :func:`box_band`.
BOX_GUARD = "densim_box_guard"

#: How far beyond the largest transverse strain a Poisson ratio of magnitude 1 gives the box may go before the
#: run is stopped (a factor, each way).
BOX_BAND_FACTOR = 1.5


def barostat_mass(settings: MDSettings, num_nodes: int) -> float:
    """Mass of the barostat of :func:`compress`: ``fix nph`` with ``ptemp`` and ``pchain 0`` takes
    ``W = (N + 1) * barostat_temperature * pressure_damping**2`` (energy times time squared)."""
    return (num_nodes + 1) * settings.barostat_temperature * settings.pressure_damping**2


def box_stiffness(network: SpringNetwork) -> float:
    """Stiffness of the transverse box mode of :func:`compress`: ``K = d^2 E / d eps^2`` with every node moved
    affinely by the transverse log strain ``eps = ln(Ly / Ly0)``, as ``fix nph ... dilate all`` moves them within
    a step.

    ``K = sum_b [k_b r_by^4 / r_b^2 + t_b (2 r_by^2 / r_b - r_by^4 / r_b^3)]``, ``t_b = k_b (r_b - l0_b)`` the
    bond tension (zero on a stress-free network), ``r_b`` the minimum-image bond vector. It is ``V`` times the
    affine ``C_yyyy``: an upper bound of the box's stiffness, which is this one for a box mode faster than the
    nodes. The kinetic pressure is left out (negligible at the temperatures of this project).
    """
    vectors = network.bond_vectors()
    length = np.linalg.norm(vectors, axis=1)
    ry2 = vectors[:, 1] ** 2
    tension = network.stiffness * (length - network.rest_lengths)
    return float(np.sum(network.stiffness * ry2**2 / length**2 + tension * (2 * ry2 / length - ry2**2 / length**3)))


def box_mode_stability(network: SpringNetwork, settings: MDSettings) -> float:
    """``timestep * sqrt(K / W)`` of the transverse box mode of :func:`compress` on ``network``
    (:func:`box_stiffness`, :func:`barostat_mass`): its velocity Verlet step is stable below 2."""
    stiffness = max(box_stiffness(network), 0.0)
    return settings.timestep * math.sqrt(stiffness / barostat_mass(settings, network.num_nodes))


def _barostat_settings(settings: MDSettings) -> str:
    s = settings
    return f"pressure_damping={s.pressure_damping!r}, barostat_temperature={s.barostat_temperature!r}, timestep={s.timestep!r}"


def check_barostat(network: SpringNetwork, settings: MDSettings) -> None:
    """Refuse barostat settings that would make the transverse box of :func:`compress` run away on ``network``.

    Raises
    ------
    SimulationError
        If :func:`box_mode_stability` is at or above :data:`BOX_MODE_LIMIT`, naming ``pressure_damping``,
        ``barostat_temperature`` and ``timestep`` with their values, the barostat mass, the box stiffness, the
        smallest stable ``barostat_temperature * pressure_damping**2`` and the ``barostat_temperature`` at which
        this ``pressure_damping`` resolves the box mode (``timestep * sqrt(K / W) = 1``).
    """
    stability = box_mode_stability(network, settings)
    if not stability >= BOX_MODE_LIMIT:  # NaN: a malformed network, which place_network reports
        return
    n, s = network.num_nodes, settings
    stiffness, mass = box_stiffness(network), barostat_mass(settings, n)
    resolved = stiffness * s.timestep**2 / (n + 1)  # barostat_temperature * pressure_damping**2 at timestep * sqrt(K / W) = 1
    raise SimulationError(
        f"the barostat would run away: {_barostat_settings(s)} give fix nph the barostat mass "
        f"W = (N + 1) * barostat_temperature * pressure_damping**2 = {mass:.3g} (N = {n} nodes), too light for the "
        f"transverse box stiffness K = {stiffness:.4g} of this network: timestep * sqrt(K / W) = {stability:.3g}, which "
        f"must stay below {BOX_MODE_LIMIT} (the box's integration is unstable past 2: the box collapses or explodes "
        f"within a few steps and LAMMPS runs out of memory); raise trajectories.barostat_temperature * "
        f"pressure_damping**2 from {s.barostat_temperature * s.pressure_damping**2:.3g} to above "
        f"{resolved / BOX_MODE_LIMIT**2:.3g}, best to {resolved:.3g} or more (timestep * sqrt(K / W) <= 1: "
        f"barostat_temperature >= {resolved / s.pressure_damping**2:.3g} at this pressure_damping), or lower trajectories.timestep")


def box_band(settings: MDSettings) -> tuple[float, float]:
    """The band of ``Ly / Ly0`` out of which the ``fix halt`` of :func:`compression_commands` stops a compression:
    :data:`BOX_BAND_FACTOR` beyond the transverse strain ``+-strain`` (a Poisson ratio of magnitude 1)."""
    return (1.0 - settings.strain) / BOX_BAND_FACTOR, (1.0 + settings.strain) * BOX_BAND_FACTOR


def compression_commands(settings: MDSettings) -> tuple[list[str], list[str], list[str]]:
    """LAMMPS commands of the compression protocol, for a network already built.

    :func:`compress` runs them in memory; the same lists written into an input
    deck (after ``read_data``) reproduce the run with the ``lmp`` executable.

    Parameters
    ----------
    settings : MDSettings
        MD settings.

    Returns
    -------
    relax : list of str
        Zero-stress box relaxation, ending at step 0 with ``run 0`` (frame 0).
    fixes : list of str
        Timestep and fixes of the compression run.
    runs : list of str
        One ``run`` command per frame after frame 0 (``frames - 1`` of them).
    """
    s = settings
    lo, hi = box_band(s)
    relax = [
        "fix relax all box/relax x 0.0 y 0.0",
        "fix planar all enforce2d",
        f"minimize 0.0 {format_float(s.relax_force_tolerance)} 10000 100000",
        "unfix relax",
        "unfix planar",
        # fix deform and the run start/stop below count from step 0.
        "reset_timestep 0",
        "run 0",
    ]
    fixes = [
        f"timestep {format_float(s.timestep)}",
        # nph integrates the nodes (langevin only adds forces) and, with
        # dilate all, moves them affinely with Ly, so the transverse affine
        # motion carries no Langevin drag either.  pchain 0: the default
        # Nose-Hoover chain on the barostat would thermostat the box velocity
        # to ptemp and keep it ringing.  ptemp is needed because nph otherwise
        # takes the barostat mass from the current temperature, which is ~0
        # here (LAMMPS refuses it).
        f"fix baro all nph y 0.0 0.0 {format_float(s.pressure_damping)} "
        f"ptemp {format_float(s.barostat_temperature)} drag {format_float(s.barostat_drag)} "
        "pchain 0 dilate all",
        _langevin(s),
        # remap x moves the nodes affinely with the box, so the imposed
        # deformation carries no Langevin drag; only the non-affine
        # relaxation is damped.
        f"fix squeeze all deform 1 x erate {format_float(s.strain_rate)} remap x",
        # Last, so that it zeroes the z forces every fix above has added.
        "fix planar all enforce2d",
        # A runaway barostat (MDSettings.barostat_temperature) stops inside
        # LAMMPS, within 10 steps of Ly leaving the band, before a
        # collapsed box fills memory with ghost images.  $(ly) is Ly0, read
        # once, after the relaxation.
        "variable densim_ly0 equal $(ly)",
        f"variable densim_box_runaway equal (ly>{format_float(hi)}*v_densim_ly0)||(ly<{format_float(lo)}*v_densim_ly0)",
        f"fix {BOX_GUARD} all halt 10 v_densim_box_runaway != 0 error hard message no",
    ]
    # start/stop make the short runs one deformation measured from the box at
    # step 0; pre no skips the re-setup that the first run did.
    runs = [
        f"run {s.steps_per_frame} start 0 stop {s.total_steps} "
        f"pre {'yes' if f == 1 else 'no'} post no"
        for f in range(1, s.frames)
    ]
    return relax, fixes, runs


def _langevin(s: MDSettings) -> str:
    """The thermostat of every protocol (``zero yes``: the random forces add no net momentum)."""
    return (f"fix damp all langevin {format_float(s.temperature)} {format_float(s.temperature)} "
            f"{format_float(s.damping)} {s.seed} zero yes")


def release_commands(settings: MDSettings) -> tuple[list[str], list[str]]:
    """LAMMPS commands of free motion at fixed box under the regime's thermostat, for a network already built.

    Returns
    -------
    fixes : list of str
        Timestep, ``fix nve``, the Langevin thermostat and ``fix enforce2d``.
    runs : list of str
        One ``run`` command per frame after frame 0.
    """
    s = settings
    fixes = [f"timestep {format_float(s.timestep)}", "fix move all nve", _langevin(s), "fix planar all enforce2d"]
    runs = [f"run {s.steps_per_frame} pre {'yes' if f == 1 else 'no'} post no" for f in range(1, s.frames)]
    return fixes, runs


def impact_md_settings(settings: MDSettings, kick: ImpactSettings) -> MDSettings:
    """The MD settings an impact run uses: ``settings`` with the kick's damping and steps per frame.

    Its ``strain`` and barostat settings are not used (the box stays fixed).
    """
    return replace(settings, damping=kick.damping, steps_per_frame=kick.steps_per_frame)


def impact_strips(positions: np.ndarray, box: np.ndarray, kick: ImpactSettings) -> tuple[np.ndarray, np.ndarray]:
    """Nodes of the kicked strip and of the far strip of an impact.

    The kicked strip is ``|x - KICK_CENTRE * Lx| < strip * Lx / 2``, the far strip
    ``|x - (KICK_CENTRE + 1/2) * Lx| < far * Lx / 2``, with x distances under the minimum image.

    Parameters
    ----------
    positions : ndarray, shape (N, 2)
        Node positions (wrapped or not).
    box : ndarray, shape (2,)
        Box lengths ``(Lx, Ly)``.
    kick : ImpactSettings

    Returns
    -------
    kicked, far : ndarray of bool, shape (N,)

    Raises
    ------
    ValueError
        If either strip holds no node.
    """
    lx = float(box[0])
    x = np.asarray(positions, dtype=np.float64)[:, 0]
    kicked = np.abs(minimum_image(x - KICK_CENTRE * lx, lx)) < 0.5 * kick.strip * lx
    far = np.abs(minimum_image(x - (KICK_CENTRE + 0.5) * lx, lx)) < 0.5 * kick.far * lx
    for name, mask in (("strip", kicked), ("far", far)):
        if not mask.any():
            raise ValueError(f"trajectories.impact.{name}: no node lies in the strip ({name} * Lx = {getattr(kick, name) * lx:.4g} wide)")
    return kicked, far


def kick_velocities(positions: np.ndarray, box: np.ndarray, kick: ImpactSettings) -> np.ndarray:
    """x velocity of every node right after the kick, shape (N,).

    ``speed * sign(x - KICK_CENTRE * Lx)`` (minimum image) inside the kicked strip (:func:`impact_strips`),
    less the strip's mean, so the total momentum is zero to rounding and nodes outside the strip stay at
    rest (subtracting the mean over all nodes would set the far strip drifting); 0 elsewhere.
    """
    kicked, _ = impact_strips(positions, box, kick)
    lx = float(box[0])
    x = np.asarray(positions, dtype=np.float64)[:, 0]
    velocity = np.zeros(len(x))
    velocity[kicked] = kick.speed * np.sign(minimum_image(x[kicked] - KICK_CENTRE * lx, lx))
    velocity[kicked] -= velocity[kicked].mean()
    return velocity


def impact_commands(settings: MDSettings, kick: ImpactSettings, velocity_x: np.ndarray) -> tuple[list[str], list[str], list[str]]:
    """LAMMPS commands of the impact protocol, for a network already built.

    Parameters
    ----------
    settings : MDSettings
        Timestep, frames, mass, temperature and seed.
    kick : ImpactSettings
        Damping and steps per frame of the run.
    velocity_x : ndarray, shape (N,)
        x velocity of each node (:func:`kick_velocities`), row ``i`` for atom id ``i + 1``.

    Returns
    -------
    setup : list of str
        One ``set atom`` per kicked node (velocities given exactly, as round-tripping decimals), then
        ``run 0`` (frame 0: the network at rest positions, moving).
    fixes : list of str
        Timestep, ``fix nve``, the Langevin thermostat with the kick's damping, ``fix enforce2d``
        (:func:`release_commands`): no barostat, no deformation.
    runs : list of str
        One ``run`` of ``kick.steps_per_frame`` steps per frame after frame 0.
    """
    setup = [f"set atom {i + 1} vx {format_float(v)}" for i, v in enumerate(velocity_x.tolist()) if v != 0.0]
    fixes, runs = release_commands(impact_md_settings(settings, kick))
    return [*setup, "run 0"], fixes, runs


def impact(network: SpringNetwork, settings: MDSettings, kick: ImpactSettings,
           progress: Callable[[int], Any] | None = None, reseed: tuple[int, int] | None = None) -> MDRun:
    """Kick a strip of a network at rest outwards and follow the pulse at fixed box.

    Frame 0 is the network at its rest positions (wrapped into the box), with the velocities of
    :func:`kick_velocities` (the kinetic energy of the kick); then ``settings.frames - 1`` frames follow,
    ``kick.steps_per_frame`` steps of ``settings.timestep`` apart, under ``fix nve`` and ``fix langevin``
    (``settings.temperature`` and ``seed``, ``kick.damping``, ``zero yes``). The box never changes: the
    returned strain is 0 throughout, and so is the total momentum.

    Parameters
    ----------
    network : SpringNetwork
        The network at rest (stress free).
    settings : MDSettings
        Timestep, frames, mass, temperature and seed (the strain, damping, steps per frame and barostat
        settings are not used).
    kick : ImpactSettings
    progress : callable, optional
        As in :func:`compress`.
    reseed : (int, int), optional
        As in :func:`compress`.

    Returns
    -------
    MDRun
        Positions, the constant box, zero strain, potential and kinetic energy per frame.

    Raises
    ------
    ValueError
        On a malformed network, or a strip with no node.
    SimulationError
        As in :func:`compress`. The timestep is not checked here: :func:`densim.trajectories.simulate` does.

    Notes
    -----
    On a triangular lattice the front (10 % of the largest displacement of a thin strip) runs at the
    longitudinal sound speed ``c_L = sqrt(C_xxxx / rho)``, ``rho = N * mass / (Lx * Ly)``, to 2.5 %. On the
    128-node jammed networks (box ~12.7 wide) the pulse is too short to feel the non-affine relaxation: its
    front runs at about the affine speed ``sqrt(C_xxxx^affine / rho)`` (measured on three NODE-OPT networks:
    1.05-1.16 against affine 1.08-1.15 and relaxed ``c_L`` 0.56-0.70), so arrival times hardly depend on the
    Poisson ratio. At the defaults the front reaches the far strip at frame 3.2-3.7 on 10 default NODE-OPT
    networks (relaxed ``c_L`` 0.58-0.94).

    Examples
    --------
    >>> from densim.springs import triangular_lattice
    >>> run = impact(triangular_lattice(16, 4), MDSettings(frames=4), ImpactSettings())
    >>> bool((run.box == run.box[0]).all()), round(float(run.kinetic_energy[0]) / 1e-6, 3)  # 12 nodes at 1e-3
    (True, 6.0)
    """
    velocity_x = kick_velocities(network.positions, network.box, kick)
    setup, fixes, runs = impact_commands(settings, kick, velocity_x)
    twin = None if reseed is None else (reseed[0], reseed_commands(impact_md_settings(settings, kick), reseed[1]))
    return _record(network, settings.mass, setup, fixes, runs, progress, twin)


def _lammps(lmp: Any, commands: Sequence[str]) -> None:
    """Run LAMMPS commands, turning LAMMPS errors into :class:`SimulationError`."""
    try:
        lmp.commands_list(list(commands))
    except Exception as err:  # the lammps module raises bare Exception subclasses
        raise SimulationError(f"LAMMPS error: {err}") from err


def _read_frame(lmp: Any, n: int, frame: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, np.ndarray]:
    """Wrapped positions and image flags (by id), box lengths, potential energy and velocities of the current step."""
    natoms = int(lmp.get_natoms())
    if natoms != n:
        raise SimulationError(f"frame {frame}: {n - natoms} of {n} atoms lost")
    lo, hi = lmp.extract_box()[:2]
    lengths = np.array([hi[0] - lo[0], hi[1] - lo[1]], dtype=np.float64)
    wrapped = gather_xy(lmp, "x")
    # count 3 makes LAMMPS unpack the bit-packed image flags into (ix, iy, iz).
    images = np.ctypeslib.as_array(lmp.gather_atoms("image", 0, 3)).reshape(n, 3)[:, :2]
    return wrapped, images, lengths, float(lmp.get_thermo("pe")), gather_xy(lmp, "v")


def _frame(lmp: Any, n: int, frame: int, mass: float) -> tuple[np.ndarray, np.ndarray, float, float]:
    """Unwrapped positions (by id), box lengths, potential and kinetic energy, checked."""
    try:
        wrapped, images, lengths, energy, velocities = _read_frame(lmp, n, frame)
    except SimulationError:
        raise
    except Exception as err:
        raise SimulationError(f"frame {frame}: LAMMPS error: {err}") from err
    # An atom that crossed the boundary i times sits i current box lengths away.
    unwrapped = wrapped + images * lengths
    kinetic = 0.5 * mass * float(np.sum(velocities**2))
    if not (math.isfinite(energy) and math.isfinite(kinetic)):
        raise SimulationError(f"frame {frame}: non-finite energy (potential {energy}, kinetic {kinetic})")
    if not (np.isfinite(unwrapped).all() and np.isfinite(lengths).all() and (lengths > 0).all()):
        raise SimulationError(f"frame {frame}: non-finite positions or box")
    return unwrapped, lengths, energy, kinetic


def compress(
    network: SpringNetwork,
    settings: MDSettings | None = None,
    progress: Callable[[int], Any] | None = None,
    reseed: tuple[int, int] | None = None,
) -> MDRun:
    """Compress a periodic 2D spring network along x in LAMMPS.

    The protocol, in one in-memory LAMMPS instance (no files):

    1. ``units lj``, ``dimension 2``, harmonic bonds (``K = k / 2``, exact
       per-bond rest lengths), no pair interactions
       (:func:`densim.lammps.place_network`).
    2. Relax the box to zero stress: ``fix box/relax x 0 y 0`` + ``minimize``,
       then ``unfix`` (a no-op for a stress-free network).
    3. ``fix nph y 0 0 Pdamp ptemp .. drag .. pchain 0 dilate all``: the
       transverse box follows zero stress; nph integrates the nodes.
       ``fix langevin`` (``zero yes``) adds friction and a tiny noise to that
       integration; ``fix deform 1 x erate R remap x`` shrinks x at a constant
       engineering rate ``R`` so that the last frame is at ``-strain``;
       ``fix enforce2d`` last, so that it cleans every force added before it;
       ``fix halt`` stops a transverse box that runs away (:func:`box_band`).
       Settings whose barostat is unstable on the network are refused before
       (:func:`check_barostat`, see :class:`MDSettings`).
    4. A frame every ``steps_per_frame`` steps: positions gathered by atom id
       and unwrapped with the image flags, box lengths, potential energy.

    Parameters
    ----------
    network : SpringNetwork
        The network; positions in ``[0, Lx) x [0, Ly)`` (other values are
        wrapped), energy ``(k/2) (r - l0)**2`` per bond.
    settings : MDSettings, optional
        MD settings; the defaults when omitted.
    progress : callable, optional
        Called with the number of frames recorded so far after each frame
        (1 after frame 0, ``frames`` at the end), e.g. to drive a progress bar.
    reseed : (int, int), optional
        ``(frame, seed)``: after that frame the thermostat takes another seed
        (:func:`reseed_commands`), so that the run is the same run up to
        ``frame`` (bit for bit) and a thermal twin of it after: the same state
        continued under other random forces.

    Returns
    -------
    MDRun
        ``frames`` frames of unwrapped float64 positions, box, strain and energy.

    Raises
    ------
    ValueError
        On a malformed network (shapes, non-finite or negative stiffness, rest
        lengths or positions, over-long bonds), before any LAMMPS command runs.
    SimulationError
        If LAMMPS fails (an error such as a missing bond partner or a
        non-numeric pressure, lost atoms) or a frame has non-finite energy,
        positions or box.  The message names the frame; callers add the
        network's name.  Before LAMMPS runs, if the barostat settings would
        make the transverse box run away on this network
        (:func:`check_barostat`); during the run, if ``Ly`` leaves
        :func:`box_band` (the ``fix halt`` :data:`BOX_GUARD`).  Both messages
        name ``pressure_damping``, ``barostat_temperature`` and ``timestep``.

    Notes
    -----
    The result is quasi-static when the run is slow compared with the
    relaxation that the transverse box needs.  For auxetic networks that
    relaxation is a collective mode (box strain plus a large non-affine
    displacement ``u``) with stiffness ``V C22`` and friction
    ``gamma |u|**2``; with strong (overdamped) Langevin friction it lags by
    tens of per cent at 0.5 % strain, hence the weak damping of the defaults.
    Measured with the defaults on 14 networks (N = 64 and 128, jammed and
    pruned, nu from -0.94 to +0.70), the box Poisson ratio
    ``-(Ly/Ly0 - 1) / (Lx/Lx0 - 1)`` agrees with that of quasi-static energy
    minimisation at the same strain (transverse box relaxed, ``fix
    box/relax``) within 0.3 % (jammed) and 3 % (pruned) at 0.2 % strain, and
    0.1 % and 1.2 % at 0.5 %.  The lag is a fixed delay, so the relative
    error falls roughly as 1 / strain.  Pruned networks are strongly
    nonlinear: their quasi-static nu moves by up to 30 % from ``C12 / C22``
    by 0.5 % strain.

    The run is deterministic: the same inputs and settings give bitwise
    identical arrays (fixed Langevin seed, one MPI process).

    Examples
    --------
    >>> from densim.springs import triangular_lattice
    >>> run = compress(triangular_lattice(8, 8), MDSettings(dynamics="quasi_static"))
    >>> eps = run.box[-1] / run.box[0] - 1
    >>> round(float(-eps[1] / eps[0]), 2)  # nu = 1/3 at 2 % strain
    0.33
    """
    s = MDSettings() if settings is None else settings
    check_barostat(checked_network(network), s)
    relax, fixes, runs = compression_commands(s)
    twin = None if reseed is None else (reseed[0], reseed_commands(s, reseed[1]))
    try:
        return _record(network, s.mass, relax, fixes, runs, progress, twin)
    except SimulationError as err:
        if BOX_GUARD not in str(err):
            raise
        lo, hi = box_band(s)
        raise SimulationError(
            f"the barostat ran away: Ly left [{lo:.3g}, {hi:.3g}] * Ly0 ({' '.join(str(err).split())}) with {_barostat_settings(s)} "
            f"(timestep * sqrt(K / W) = {box_mode_stability(network, s):.3g} estimated, stable below 2; see "
            "densim.md.MDSettings.barostat_temperature): raise trajectories.barostat_temperature or pressure_damping, "
            "or lower trajectories.timestep") from err


def release(network: SpringNetwork, settings: MDSettings, displacement: np.ndarray,
            progress: Callable[[int], Any] | None = None) -> MDRun:
    """Displace a network at rest and let it go: free motion at fixed box under the regime's thermostat.

    Frame 0 is the displaced network (nodes at rest); every ``steps_per_frame`` steps a frame follows, as in
    :func:`compress` but with ``fix nve`` instead of the barostat and no deformation (``settings.strain`` is not
    used). In the linear regime a displacement along a Hessian eigenmode of eigenvalue ``lambda`` rings at
    ``sqrt(lambda / mass - 1 / (4 damping**2))`` and decays at the rate ``1 / (2 damping)``.

    Parameters
    ----------
    network : SpringNetwork
        The network at rest (its rest lengths are kept).
    settings : MDSettings
        Timestep, frames, steps per frame, mass, temperature, damping and seed.
    displacement : ndarray, shape (N, 2)
        Added to the node positions at frame 0.
    progress : callable, optional
        As in :func:`compress`.
    """
    displaced = replace(network, positions=network.positions + displacement)
    fixes, runs = release_commands(settings)
    return _record(displaced, settings.mass, ["run 0"], fixes, runs, progress)


def reseed_commands(settings: MDSettings, seed: int) -> list[str]:
    """LAMMPS commands that give the running thermostat of every protocol another seed (:func:`_langevin`), keeping
    ``fix enforce2d`` last: a thermal twin (:func:`compress`'s and :func:`impact`'s ``reseed``) continues the same state
    under other random forces. ``settings``: the MD settings the run uses (an impact's own damping)."""
    return ["unfix planar", "unfix damp", _langevin(replace(settings, seed=seed)), "fix planar all enforce2d"]


def _record(network: SpringNetwork, mass: float, setup: list[str], fixes: list[str], runs: list[str], progress,
            reseed: tuple[int, list[str]] | None = None) -> MDRun:
    """Place a network, run ``setup`` (ending in frame 0), then ``fixes`` and one run per further frame, recording each;
    ``reseed``: (frame, commands) run after that frame is recorded (the next run sets up again)."""
    with new_lammps() as lmp:
        version = int(lmp.version())
        n = len(place_network(lmp, network, mass=mass).positions)
        _lammps(lmp, setup)
        frames = [_frame(lmp, n, 0, mass)]
        if progress is not None:
            progress(1)
        _lammps(lmp, fixes)
        for frame, run in enumerate(runs, start=1):
            if reseed is not None and frame == reseed[0] + 1:
                _lammps(lmp, reseed[1])
                run = run.replace(" pre no", " pre yes")
            _lammps(lmp, [run])
            frames.append(_frame(lmp, n, frame, mass))
            if progress is not None:
                progress(frame + 1)
    positions, box, potential, kinetic = (np.array(column) for column in zip(*frames))
    return MDRun(positions, box, box[:, 0] / box[0, 0] - 1.0, potential, kinetic, version)
