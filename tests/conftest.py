"""Shared fixtures: small jammed networks made once per session."""

import numpy as np
import pytest

from densim.packing import contact_network, jammed_packing


@pytest.fixture(scope="session")
def packing():
    return jammed_packing(64, 0.92, 1.4, np.random.default_rng(7), force_tolerance=1e-12)


@pytest.fixture(scope="session")
def jammed(packing):
    """A rigid, stress-free contact network of a 64-disk jammed packing."""
    network, _ = contact_network(packing)
    return network
