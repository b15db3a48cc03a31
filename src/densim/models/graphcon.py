r"""GraphCON (Rusch et al. 2022): graph-coupled oscillators, the oscillator baseline of the port-Hamiltonian models.

Node latents :math:`X` and their velocities :math:`Y` follow a second-order system of damped oscillators coupled
through a graph convolution :math:`F` (PyG's ``GCNConv``, shared by all steps), integrated with step
:math:`\Delta t`:

.. math::

    Y \leftarrow Y + \Delta t\,\big(\sigma(F(X)) - \gamma X - \alpha Y\big), \qquad X \leftarrow X + \Delta t\, Y.

The node features are encoded into :math:`X = Y`, ``num_layers`` steps are taken, and :math:`X` is decoded into the
normalised acceleration that :class:`densim.simulator.AccelerationSimulator` integrates. Edge features are not
read (GCN weights come from the degrees).

References
----------
T. K. Rusch, B. P. Chamberlain, J. Rowbottom, S. Mishra, M. M. Bronstein, "Graph-Coupled Oscillator Networks",
ICML 2022.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor
from torch_geometric.nn import GCNConv

from densim.models.blocks import ACTIVATIONS, MLP, GraphInputs, LatentDynamicsNetwork


class GraphCON(LatentDynamicsNetwork):
    r"""Graph-coupled oscillators between an encoder and a decoder (module docstring).

    Parameters
    ----------
    node_in, edge_in, out : int
        Feature and output widths (given by the simulator family; ``edge_in`` is not read).
    hidden : int, optional
        Width of :math:`X` and :math:`Y` (default 64).
    num_layers : int, optional
        Oscillator steps (default 4).
    dt, alpha, gamma : float, optional
        Step, damping and stiffness of the oscillators (default 1, 1, 1, as the paper's).
    mlp_layers : int, optional
        Hidden layers of the encoder and decoder (default 2).
    activation : str, optional
        Nonlinearity of the MLPs and :math:`\sigma` (default ``"relu"``).

    Shapes
    ------
    input ``x`` [|V|, node_in], ``edge_index`` [2, |E|]; output [|V|, out].
    """

    uses_edges = False

    def __init__(self, node_in: int, edge_in: int, out: int, hidden: int = 64, num_layers: int = 4, dt: float = 1.0,
                 alpha: float = 1.0, gamma: float = 1.0, mlp_layers: int = 2, activation: str = "relu") -> None:
        super().__init__(node_in, edge_in, out, hidden=hidden, num_layers=num_layers, dt=dt, alpha=alpha, gamma=gamma,
                         mlp_layers=mlp_layers, activation=activation)
        for name, value in (("dt", dt), ("alpha", alpha), ("gamma", gamma)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f"{name} must be a positive number, got {value!r}")
        self.node_encoder = MLP(node_in, hidden, hidden, mlp_layers, activation)
        self.coupling = GCNConv(hidden, hidden)
        self.sigma = ACTIVATIONS[activation]()
        self.decoder = MLP(hidden, hidden, out, mlp_layers, activation)

    def forward(self, graph: Any) -> Tensor:
        inputs = GraphInputs.from_graph(graph, self.node_in, self.edge_in, False, False)
        settings = self._hyperparameters
        x = self.node_encoder(inputs.x)
        y = x
        for _ in range(settings["num_layers"]):
            y = y + settings["dt"] * (self.sigma(self.coupling(x, inputs.edge_index)) - settings["gamma"] * x - settings["alpha"] * y)
            x = x + settings["dt"] * y
        return self.decoder(x)
