r"""Port-Hamiltonian graph simulators: IGNS and IGNS-ti (seed 000), as processors of the acceleration family.

The latent state of each node is :math:`x_i = (q_i, p_i)`, :math:`q_i, p_i \in \mathbb{R}^m`. The learned
Hamiltonian is a sum of the seed's form over a position and a momentum part,

.. math::

    H(q, p) = \sum_i \mathbf{1}^\top s\Big(W_q q_i + \sum_{j \in \mathcal{N}(i)} V_q q_j + b_q\Big)
            + \sum_i \mathbf{1}^\top s\Big(W_p p_i + \sum_{j \in \mathcal{N}(i)} V_p p_j + b_p\Big),
    \qquad s(z) = \log\cosh z,

which is the seed's :math:`H = \sum_i s(W x_i + \sum_j V x_j)` with block-diagonal :math:`W, V`: separable, so
that the explicit symplectic Euler step below is exactly symplectic. Its gradient is exact for any degrees
(sums, not the official code's mean):

.. math::

    \nabla_{q_k} H = W_q^\top \tanh(z_k) + V_q^\top \sum_{i \in \mathcal{N}(k)} \tanh(z_i).

One step of size :math:`\varepsilon` (symplectic Euler, then damping and forcing):

.. math::

    q \leftarrow q + \varepsilon \nabla_p H(p), \qquad
    p \leftarrow p - \varepsilon \nabla_q H(q) - \varepsilon D \odot \nabla_p H(p) + \varepsilon\, r(q, e),

with a learned non-negative damping :math:`D = \mathrm{softplus}(d)` per channel and a forcing
:math:`r_i = \sum_{j \in \mathcal{N}(i)} \phi(q_i, q_j, e_{ij})` that sees the encoded geometric edge features
(dx, dy, |r|, 1/l0) of the current frame. IGNS has time-varying weights :math:`W(t), V(t), b(t)`; IGNS-ti shares
one set.

Both run in :class:`densim.simulator.LatentSimulator`, as the seed and its code do: the ``h + 1`` input frames are
encoded once into :math:`(q, p)`, ``warmup`` latent steps follow without output (latent times
:math:`0 \ldots l - 1`), and then every frame is one latent step at the next latent time, decoded into the
normalised acceleration that the acceleration family integrates; the forcing of each step sees the geometry of the
last decoded frame. The latent flow, not a re-encoding, carries information across frames. IGNS keeps
``warmup + num_layers`` weight sets: latent time :math:`t` uses set :math:`\min(t, l + \text{num\_layers} - 1)`, so
the frames after the first ``num_layers`` of a rollout, in training and beyond the training window, share the last
set. :meth:`IGNS.forward` runs the same chain on one frame (encode, warmup, ``num_layers`` latent steps, decode).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from densim.models.blocks import MLP, GraphInputs, LatentDynamicsNetwork
from densim.simulator import LatentSimulator


def neighbour_sum(x: Tensor, edge_index: Tensor) -> Tensor:
    """``sum_{j in N(i)} x_j`` for every node ``i`` (``edge_index[0]`` senders, ``[1]`` receivers), shape of ``x``."""
    return torch.zeros_like(x).index_add_(0, edge_index[1], x[edge_index[0]])


def log_cosh(z: Tensor) -> Tensor:
    """``log cosh z``, stable for large ``|z|`` (an antiderivative of tanh)."""
    return z.abs() + F.softplus(-2.0 * z.abs()) - torch.log(torch.tensor(2.0, dtype=z.dtype))


def _preactivation(x: Tensor, edge_index: Tensor, w: Tensor, v: Tensor, b: Tensor) -> Tensor:
    return x @ w.T + neighbour_sum(x, edge_index) @ v.T + b


def hamiltonian(x: Tensor, edge_index: Tensor, w: Tensor, v: Tensor, b: Tensor) -> Tensor:
    r"""One part of the Hamiltonian, :math:`\sum_i \mathbf{1}^\top \log\cosh(W x_i + \sum_{j \in N(i)} V x_j + b)`.

    Parameters
    ----------
    x : Tensor, shape [N, m]
    edge_index : LongTensor, shape [2, E]
        Both directions of every bond.
    w, v : Tensor, shape [n, m]
    b : Tensor, shape [n]

    Returns
    -------
    Tensor, scalar
    """
    return log_cosh(_preactivation(x, edge_index, w, v, b)).sum()


def hamiltonian_gradient(x: Tensor, edge_index: Tensor, w: Tensor, v: Tensor, b: Tensor) -> Tensor:
    r"""The gradient of :func:`hamiltonian` in closed form, exact for any degrees, shape [N, m].

    .. math::

        \nabla_{x_k} H = W^\top \tanh(z_k) + V^\top \sum_{i \in \mathcal{N}(k)} \tanh(z_i)

    (the graph is undirected, so :math:`\{i : k \in \mathcal{N}(i)\} = \mathcal{N}(k)`).
    """
    sigma = torch.tanh(_preactivation(x, edge_index, w, v, b))
    return sigma @ w + neighbour_sum(sigma, edge_index) @ v


class HamiltonianWeights(nn.Module):
    """``W``, ``V``, ``b`` of one part of the Hamiltonian (width ``m`` to ``n``)."""

    def __init__(self, m: int, n: int) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.empty(n, m))
        self.v = nn.Parameter(torch.empty(n, m))
        self.b = nn.Parameter(torch.empty(n))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.xavier_uniform_(self.w)
        nn.init.xavier_uniform_(self.v, gain=0.1)  # neighbour sums grow with the degree
        nn.init.zeros_(self.b)

    def gradient(self, x: Tensor, edge_index: Tensor) -> Tensor:
        return hamiltonian_gradient(x, edge_index, self.w.to(x.dtype), self.v.to(x.dtype), self.b.to(x.dtype))

    def energy(self, x: Tensor, edge_index: Tensor) -> Tensor:
        return hamiltonian(x, edge_index, self.w.to(x.dtype), self.v.to(x.dtype), self.b.to(x.dtype))


class PortHamiltonianStep(nn.Module):
    """One step of the latent dynamics (module docstring): symplectic Euler, damping ``D >= 0``, forcing ``r``.

    Parameters
    ----------
    m : int
        Width of ``q`` and of ``p``.
    step_size : float
        :math:`\\varepsilon`.
    damping, forcing : bool
        Include the damping and the forcing terms.
    """

    def __init__(self, m: int, step_size: float, damping: bool, forcing: bool, mlp_layers: int, activation: str) -> None:
        super().__init__()
        self.step_size = step_size
        self.position = HamiltonianWeights(m, m)
        self.momentum = HamiltonianWeights(m, m)
        self.damping = nn.Parameter(torch.full((m,), -2.0)) if damping else None  # softplus(-2) = 0.13
        self.forcing = MLP(3 * m, m, m, mlp_layers, activation) if forcing else None

    def energy(self, q: Tensor, p: Tensor, edge_index: Tensor) -> Tensor:
        """The learned Hamiltonian :math:`H(q, p)`."""
        return self.position.energy(q, edge_index) + self.momentum.energy(p, edge_index)

    def forward(self, q: Tensor, p: Tensor, edge_index: Tensor, e: Tensor | None) -> tuple[Tensor, Tensor]:
        velocity = self.momentum.gradient(p, edge_index)  # grad_p H at the old p
        q = q + self.step_size * velocity
        p = p - self.step_size * self.position.gradient(q, edge_index)  # grad_q H at the new q
        if self.damping is not None:
            p = p - self.step_size * F.softplus(self.damping).to(p.dtype) * velocity
        if self.forcing is not None:
            messages = self.forcing(torch.cat([q[edge_index[1]], q[edge_index[0]], e], dim=-1))
            p = p + self.step_size * torch.zeros_like(p).index_add_(0, edge_index[1], messages)
        return q, p


class IGNS(LatentDynamicsNetwork):
    r"""IGNS: port-Hamiltonian latent dynamics between an encoder and a decoder (module docstring).

    Parameters
    ----------
    node_in, edge_in, out : int
        Feature and output widths (given by the simulator family).
    hidden : int, optional
        Width of the latent state :math:`(q, p)`, even; q and p take half each (default 64).
    num_layers : int, optional
        Latent steps after the warmup with weights of their own; later steps share the last set (default 4).
    warmup : int, optional
        Steps before them, l in the seed (default 0).
    step_size : float, optional
        :math:`\varepsilon` (default 0.1, the official code's).
    damping, forcing : bool, optional
        Learned non-negative damping and the edge-aware forcing (default both ``True``).
    mlp_layers : int, optional
        Hidden layers of the encoders, decoder and forcing MLPs (default 2).
    activation : str, optional
        Their nonlinearity (default ``"tanh"``).

    Shapes
    ------
    input ``x`` [|V|, node_in], ``edge_index`` [2, |E|], ``edge_attr`` [|E|, edge_in]; output [|V|, out].
    """

    #: The latent state is carried through the rollout (encode once, warm up once, one step per frame).
    simulator = LatentSimulator
    #: One set of Hamiltonian weights per step (IGNS) or one for all steps (IGNS-ti).
    time_varying = True
    #: The seed's multi-step loss: MSE over the whole training window with gradients through it.
    training_defaults = {"loss_steps": "window"}

    def __init__(self, node_in: int, edge_in: int, out: int, hidden: int = 64, num_layers: int = 4, warmup: int = 0,
                 step_size: float = 0.1, damping: bool = True, forcing: bool = True, mlp_layers: int = 2,
                 activation: str = "tanh") -> None:
        super().__init__(node_in, edge_in, out, hidden=hidden, num_layers=num_layers, warmup=warmup, step_size=step_size,
                         damping=damping, forcing=forcing, mlp_layers=mlp_layers, activation=activation)
        if hidden % 2:
            raise ValueError(f"hidden must be even (q and p take half each), got {hidden}")
        if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
            raise ValueError(f"warmup must be a non-negative integer, got {warmup!r}")
        if not step_size > 0:
            raise ValueError(f"step_size must be positive, got {step_size!r}")
        for name, value in (("damping", damping), ("forcing", forcing)):
            if not isinstance(value, bool):
                raise ValueError(f"{name} must be a bool, got {value!r}")
        m = hidden // 2
        count = warmup + num_layers if self.time_varying else 1
        self.steps = nn.ModuleList(PortHamiltonianStep(m, step_size, damping, forcing, mlp_layers, activation) for _ in range(count))
        self.node_encoder = MLP(node_in, hidden, hidden, mlp_layers, activation)
        self.edge_encoder = MLP(edge_in, m, m, mlp_layers, activation) if forcing else None
        self.decoder = MLP(hidden, hidden, out, mlp_layers, activation)

    @property
    def receptive_field(self) -> float:
        """In a rollout one latent step per frame after the warmup, and a symplectic Euler step reads four bonds: the
        gradient of H at a node reads two (its neighbours' preactivations, which sum over their neighbours), ``q`` takes
        it of ``p``, then ``p`` of the new ``q``. The latent state carries what it gathered before
        (:class:`densim.simulator.LatentSimulator`)."""
        return 4.0

    @property
    def uses_edges(self) -> bool:
        """Edge features enter through the forcing only."""
        return self._hyperparameters["forcing"]

    @property
    def warmup(self) -> int:
        """Latent steps between the encoding and the first output (l in the seed)."""
        return self._hyperparameters["warmup"]

    def step(self, t: int) -> PortHamiltonianStep:
        """The step module of latent time ``t``: its own set up to the last one, which later times share (IGNS);
        the shared one (IGNS-ti)."""
        return self.steps[min(t, len(self.steps) - 1)]

    def encode(self, graph: Any) -> tuple[Tensor, Tensor]:
        """The latent state ``(q, p)`` of a graph's node features."""
        inputs = GraphInputs.from_graph(graph, self.node_in, self.edge_in, False, False)
        return self.node_encoder(inputs.x).chunk(2, dim=-1)

    def edges(self, graph: Any) -> Tensor | None:
        """The encoded edge features of a graph's frame (what the forcing sees), None without forcing."""
        if self.edge_encoder is None:
            return None
        return self.edge_encoder(GraphInputs.from_graph(graph, self.node_in, self.edge_in, True, False).edge_attr)

    def advance(self, q: Tensor, p: Tensor, edge_index: Tensor, e: Tensor | None, t: int) -> tuple[Tensor, Tensor]:
        """One latent step at latent time ``t``."""
        return self.step(t)(q, p, edge_index, e)

    def decode(self, q: Tensor, p: Tensor) -> Tensor:
        """The output (a normalised acceleration per node) of a latent state."""
        return self.decoder(torch.cat([q, p], dim=-1))

    def forward(self, graph: Any) -> Tensor:
        """The chain on one frame: encode, ``warmup`` steps, ``num_layers`` steps, decode."""
        q, p = self.encode(graph)
        e = self.edges(graph)
        for t in range(self.warmup + self._hyperparameters["num_layers"]):
            q, p = self.advance(q, p, graph.edge_index, e, t)
        return self.decode(q, p)


class IGNSTimeInvariant(IGNS):
    """IGNS-ti: IGNS with one set of Hamiltonian, damping and forcing weights for every step."""

    time_varying = False
