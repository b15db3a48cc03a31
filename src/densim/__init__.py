"""densim: learned simulators of disordered elastic networks."""

__version__ = "0.1.0"
