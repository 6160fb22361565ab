"""diffedu: the tested companion package of *Diffusion models through stochastic calculus and path integrals*.

The names used in every chapter are re-exported here (``de.<name>``, listed in ``__all__``);
every public module is reachable as ``de.<module>`` (imported on first use), and each of its other
public names as ``de.<module>.<name>``.  The book's API page documents every public name under that
one path, and the notation table maps each symbol to its name in this package.
"""

from .device import default_device, make_generator, manual_seed, randn
from .schedules import Cosine, Linear, Schedule
from .sde import (SDE, AdditiveSDE, BrownianMotion, GeometricBrownianMotion, ItoSDE, OrnsteinUhlenbeck, ReverseSDE,
                  SubVPSDE, VESDE, VPSDE)
from .solvers import (brownian_increments, brownian_increments_dz, coarsen, coarsen_dz, euler_maruyama, heun, milstein,
                      srk15, time_grid)
from .data import GaussianMixture, gaussian_grid, gaussian_grid_mixture, swiss_roll
from .nets import ScoreMLP, load_pretrained, paper_sde
from .samplers import sample
from .train import train_dsm

__version__ = "0.1.0"

#: every public module of the package, reachable as ``de.<module>``
MODULES = ("bridges", "checks", "data", "device", "flows", "fokker_planck", "langevin", "likelihood", "nets", "ode",
           "path_integral", "plotting", "quadrature", "samplers", "schedules", "sde", "solvers", "stats", "train",
           "widgets", "wkb")


def __getattr__(name):
    """``de.<module>`` imports a public module on first use (``de.widgets`` need not load matplotlib early)."""
    if name in MODULES:
        import importlib

        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'diffedu' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(MODULES))

__all__ = [
    "default_device", "make_generator", "manual_seed", "randn",
    "Schedule", "Linear", "Cosine",
    "SDE", "AdditiveSDE", "ReverseSDE", "BrownianMotion", "OrnsteinUhlenbeck", "VPSDE", "SubVPSDE", "VESDE",
    "GeometricBrownianMotion", "ItoSDE",
    "euler_maruyama", "milstein", "heun", "srk15", "brownian_increments", "coarsen", "brownian_increments_dz",
    "coarsen_dz", "time_grid",
    "GaussianMixture", "swiss_roll", "gaussian_grid", "gaussian_grid_mixture",
    "ScoreMLP", "load_pretrained", "paper_sde", "train_dsm", "sample",
    *MODULES,
]
