"""IGNS's port-Hamiltonian step: exact gradient, symplectic energy behaviour, and the sensitivity of Theorem 2."""

import pytest
import torch

from densim.models.igns import IGNS, PortHamiltonianStep, hamiltonian, hamiltonian_gradient


def unequal_degree_graph():
    """A 6-node graph with degrees 1 to 4: a triangle with a tail and a pendant pair."""
    bonds = torch.tensor([[0, 1], [1, 2], [2, 0], [2, 3], [3, 4], [2, 5], [1, 5]])
    return torch.cat([bonds.T, bonds.T.flip(0)], dim=1)


def dynamics(seed=0, m=3, damping=False, step_size=0.1, scale=1.0):
    """A step with well-conditioned weights (orthogonal W, small V: H has no flat direction) and a random state."""
    torch.manual_seed(seed)
    step = PortHamiltonianStep(m, step_size, damping=damping, forcing=False, mlp_layers=1, activation="tanh").double()
    with torch.no_grad():
        for part in (step.position, step.momentum):
            part.w.copy_(torch.linalg.qr(torch.randn(m, m, dtype=torch.float64))[0])
            part.v.mul_(0.3)
    q, p = scale * torch.randn(6, m, dtype=torch.float64), scale * torch.randn(6, m, dtype=torch.float64)
    return step, q, p


def test_the_closed_form_gradient_equals_autograd_on_unequal_degrees():
    edge_index = unequal_degree_graph()
    assert len(set(torch.bincount(edge_index[1]).tolist())) > 2  # the degrees really differ
    torch.manual_seed(1)
    x = torch.randn(6, 4, dtype=torch.float64, requires_grad=True)
    w, v, b = (torch.randn(5, 4, dtype=torch.float64), torch.randn(5, 4, dtype=torch.float64), torch.randn(5, dtype=torch.float64))
    (autograd,) = torch.autograd.grad(hamiltonian(x, edge_index, w, v, b), x)
    torch.testing.assert_close(hamiltonian_gradient(x, edge_index, w, v, b), autograd, rtol=0, atol=1e-10)


def explicit_euler(step, q, p, edge_index):
    """Both updates from the old state: not symplectic."""
    return q + step.step_size * step.momentum.gradient(p, edge_index), p - step.step_size * step.position.gradient(q, edge_index)


@torch.no_grad()
def test_symplectic_euler_keeps_the_hamiltonian_bounded_while_explicit_euler_drifts():
    edge_index = unequal_degree_graph()
    step, q0, p0 = dynamics()
    energies = {}
    for name, update in (("symplectic", lambda q, p: step(q, p, edge_index, None)), ("explicit", lambda q, p: explicit_euler(step, q, p, edge_index))):
        q, p, trace = q0, p0, []
        for _ in range(1000):
            q, p = update(q, p)
            trace.append(float(step.energy(q, p, edge_index)))
        energies[name] = torch.tensor(trace) - float(step.energy(q0, p0, edge_index))
    symplectic, explicit = energies["symplectic"].abs(), energies["explicit"].abs()
    # bounded: the error of the last 500 steps is no larger than that of the first 500 (no secular drift)
    assert symplectic[500:].max() <= 1.5 * symplectic[:500].max()
    assert explicit[-1] > 10 * symplectic.max() and explicit[500:].max() > 1.5 * explicit[:500].max()


def flow_jacobian_norm(step, q, p, edge_index, steps):
    """Spectral norm of d x(t) / d x(0) for x = (q, p) after ``steps`` steps."""
    def flow(state):
        q, p = state.chunk(2, dim=1)
        for _ in range(steps):
            q, p = step(q, p, edge_index, None)
        return torch.cat([q, p], dim=1).flatten()

    state = torch.cat([q, p], dim=1)
    jacobian = torch.autograd.functional.jacobian(flow, state).reshape(state.numel(), state.numel())
    return float(torch.linalg.matrix_norm(jacobian, ord=2))


@pytest.mark.parametrize("steps", [1, 10, 100])
def test_without_damping_the_sensitivity_never_falls_below_one(steps):
    edge_index = unequal_degree_graph()
    step, q, p = dynamics(seed=2)
    assert flow_jacobian_norm(step, q, p, edge_index, steps) >= 1 - 1e-10


def test_with_damping_the_sensitivity_decays():
    edge_index = unequal_degree_graph()
    step, q, p = dynamics(seed=2, damping=True, scale=0.3)
    with torch.no_grad():
        step.damping.fill_(0.0)  # D = softplus(0) = 0.69
    norms = [flow_jacobian_norm(step, q, p, edge_index, steps) for steps in (10, 100, 300)]
    assert norms[0] > norms[1] > norms[2] and norms[2] < 0.5


def test_damping_is_never_negative_and_igns_ti_shares_one_step():
    with torch.no_grad():
        model = IGNS(4, 4, 2, hidden=8, num_layers=3, warmup=2)
        model.steps[0].damping.fill_(-50.0)
    assert len(model.steps) == 5
    assert float(torch.nn.functional.softplus(model.steps[0].damping.detach()).min()) >= 0
    from densim.models import build_model

    assert len(build_model("igns_ti", 4, 4, 2, hidden=8, num_layers=3, warmup=2).steps) == 1
    with pytest.raises(ValueError, match="hidden must be even"):
        IGNS(4, 4, 2, hidden=7)


# The latent family: one encoding per rollout, one latent step per frame, Theorem 2 across frames.


def latent_simulator(graphs, model="igns", **hyperparameters):
    from densim.models import build_simulator
    from densim.training import TrainingConfig, compute_statistics

    settings = {"hidden": 8, "num_layers": 3, "warmup": 2, "mlp_layers": 1, **hyperparameters}
    return build_simulator(model, 2, compute_statistics(graphs[:3], TrainingConfig(horizon=12)), seed=0, hyperparameters=settings)


def test_a_rollout_encodes_once_warms_up_once_and_takes_one_latent_step_per_frame(graphs, monkeypatch):
    from densim.rollout import rollouts
    from densim.simulator import LatentSimulator

    simulator = latent_simulator(graphs)
    assert isinstance(simulator, LatentSimulator)
    calls = {"encode": 0, "advance": []}
    encode, advance = simulator.network.encode, simulator.network.advance

    def counted_encode(graph):
        calls["encode"] += 1
        return encode(graph)

    def counted_advance(q, p, edge_index, e, t):
        calls["advance"].append((t, q.shape[0]))
        return advance(q, p, edge_index, e, t)

    monkeypatch.setattr(simulator.network, "encode", counted_encode)
    monkeypatch.setattr(simulator.network, "advance", counted_advance)
    frames = rollouts(simulator, graphs[:2])
    nodes = graphs[0].positions.shape[0] + graphs[1].positions.shape[0]
    predicted = graphs[0].frames - 3
    assert calls["encode"] == 1  # both trajectories in one batch
    # the warmup once (latent times 0, 1), then one batched step per frame at latent times 2, 3, ...
    assert calls["advance"] == [(t, nodes) for t in range(2 + predicted)]
    assert all(torch.isfinite(f).all() for f in frames) and frames[0].shape == graphs[0].positions.shape


def latent_flow_norm(simulator, trajectory, frames: int, scale: float = 1.0) -> float:
    """Spectral norm of d z(s + frames) / d z(s), z = (q, p), through ``frames`` rollout steps of the simulator."""
    from densim.simulator import LatentState

    torch.manual_seed(1)
    m = simulator.network.hyperparameters["hidden"] // 2
    z = scale * torch.randn(trajectory.positions.shape[0], 2 * m, dtype=torch.float64)

    def flow(z):
        q, p = z.chunk(2, dim=1)
        current = LatentState(trajectory.positions[:, :3], q, p, simulator.network.warmup)
        for _ in range(frames):
            (current,), _ = simulator.step([trajectory], [current], [2])
        return torch.cat([current.q, current.p], dim=1).flatten()

    jacobian = torch.autograd.functional.jacobian(flow, z).reshape(z.numel(), z.numel())
    return float(torch.linalg.matrix_norm(jacobian, ord=2))


@pytest.mark.parametrize("model", ["igns", "igns_ti"])
def test_theorem_2_across_frames_without_damping_the_sensitivity_never_falls_below_one(graphs, model):
    """Across 1 to 40 frames of a rollout, past the last time-varying weight set: the latent flow is symplectic."""
    simulator = latent_simulator(graphs, model, damping=False, forcing=False).double()
    for frames in (1, 10, 40):
        assert latent_flow_norm(simulator, graphs[0], frames) >= 1 - 1e-10


def test_theorem_2_across_frames_with_damping_the_sensitivity_decays(graphs):
    simulator = latent_simulator(graphs, damping=True, forcing=False).double()
    torch.manual_seed(2)
    with torch.no_grad():
        for step in simulator.network.steps:  # well-conditioned weights, as in dynamics()
            step.damping.fill_(0.0)  # D = softplus(0) = 0.69
            for part in (step.position, step.momentum):
                part.w.copy_(torch.linalg.qr(torch.randn(part.w.shape, dtype=torch.float64))[0])
                part.v.mul_(0.3)
    norms = [latent_flow_norm(simulator, graphs[0], frames, scale=0.3) for frames in (10, 50, 150)]
    assert norms[0] > norms[1] > norms[2] and norms[2] < 0.5


def test_latent_training_unrolls_the_window_and_its_checkpoint_rolls_out_the_same(graphs, tmp_path):
    import dataclasses

    from densim.models import load_simulator
    from densim.rollout import rollouts
    from densim.training import TrainingConfig, describe_run, train

    config = dataclasses.replace(TrainingConfig(horizon=12, steps=6, batch_size=2, validate_every=3), loss_steps="window")
    simulator = latent_simulator(graphs)
    history = train(simulator, graphs[:3], graphs[3:], config, tmp_path, describe_run("igns", simulator, 0, config, {}))
    assert len(history["loss"]) == 6 and all(torch.isfinite(torch.tensor(history["loss"])))
    reloaded, _ = load_simulator(tmp_path / "best.pt")
    best = read_checkpoint_step(tmp_path / "best.pt")
    if best == 6:  # the last step was the best: the reloaded weights are the trained ones
        for mine, theirs in zip(rollouts(simulator, graphs[3:]), rollouts(reloaded, graphs[3:])):
            assert torch.equal(mine, theirs)
    assert all(torch.isfinite(f).all() for f in rollouts(reloaded, graphs[3:]))


def read_checkpoint_step(path):
    from densim.io import read_checkpoint

    return read_checkpoint(path)["step"]
