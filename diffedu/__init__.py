"""diffedu: the tested companion package of *Diffusion models through stochastic calculus and path integrals*.

Everything public is re-exported here; the book's notation table maps each symbol
to its name in this package.
"""

from .device import default_device, make_generator, manual_seed, randn
from .schedules import Cosine, Linear, Schedule
from .sde import (SDE, AdditiveSDE, BrownianMotion, GeometricBrownianMotion, ItoSDE, OrnsteinUhlenbeck, ReverseSDE,
                  SubVPSDE, VESDE, VPSDE)
from .solvers import brownian_increments, coarsen, euler_maruyama, heun, milstein, time_grid
from .data import GaussianMixture, gaussian_grid, gaussian_grid_mixture, swiss_roll
from .nets import ScoreMLP, load_pretrained, paper_sde
from .samplers import sample
from .train import train_dsm
from . import checks, fokker_planck, samplers, stats, train

__version__ = "0.1.0"

__all__ = [
    "default_device", "make_generator", "manual_seed", "randn",
    "Schedule", "Linear", "Cosine",
    "SDE", "AdditiveSDE", "ReverseSDE", "BrownianMotion", "OrnsteinUhlenbeck", "VPSDE", "SubVPSDE", "VESDE",
    "GeometricBrownianMotion", "ItoSDE",
    "euler_maruyama", "milstein", "heun", "brownian_increments", "coarsen", "time_grid",
    "GaussianMixture", "swiss_roll", "gaussian_grid", "gaussian_grid_mixture",
    "ScoreMLP", "load_pretrained", "paper_sde", "train_dsm", "sample",
    "checks", "fokker_planck", "samplers", "stats", "train",
]
