r"""Exact NLL of the hbar-sampler family of a shipped 2-D score model, by the Fokker–Planck equation.

What.  For the shipped model ``diffedu.load_pretrained(data, schedule)`` and each hbar in
{0.1, ..., 1.0}, the sampler ``model.sde.reverse(model, hbar)`` (run from ``T`` down to
``t_min``, started from the prior N(0, I)) has marginals :math:`q_t^\hbar` that obey a
Fokker–Planck equation.  We solve it with ``diffedu.fokker_planck.solve`` on a uniform 2-D
grid and evaluate

.. math:: \mathrm{NLL}(\hbar) = -\frac1n \sum_i \log q^\hbar_{t_{\min}}(x_i)

on n = 1000 test points ``DATASETS[data](1000, make_generator(5), dtype=float64)``.  The
value at hbar = 0 (pure transport, where the grid scheme is only first-order accurate) is
*not* computed on the grid but with the probability-flow ODE,
``diffedu.likelihood.log_likelihood(model.sde, model, x)``; its entry says so.

Why.  The book's chapter on the hbar family compares samplers by their exact likelihood;
this script makes the numbers (``diffedu/weights/nll_vs_hbar.json``) that the chapter loads,
and that it recomputes with ``DIFFEDU_FULL=1`` through :func:`compute`.

How.  Run from the repository root::

    .venv/bin/python benchmarks/nll_vs_hbar.py --compare-cells 200   # what ships (about 10 min on 1 CPU core)
    .venv/bin/python benchmarks/nll_vs_hbar.py [--data swiss_roll --schedule simple --cells N --out PATH]

(``--box``, ``--max-step``, ``--hbars`` for convergence studies; ``--out -`` prints only.)

Method notes.

* Grid: cells x cells cell-centred cells on the square [-box, box]^2.  The prior is put on the
  grid by its cell-centre values and renormalised to unit mass on the box (the part of N(0, I)
  outside [-4, 4]^2 is 1.3e-4); the walls are zero-flux, so the mass stays 1 to round-off.
* Time stepping: one fixed ``max_step`` for every hbar, so all solves visit the same times
  and the score network is evaluated only once per (time, face point); the evaluations are
  memoised (exactly: the same float32 network outputs) and batched in chunks, which is
  about five times faster on a CPU than one huge batch.
* Interpolation: bilinear interpolation of the density p itself (not of log p) between cell
  centres.  For log p the interpolation error is -theta(1-theta) h^2/2 (log p)'' per axis,
  of one sign where log p is concave (across the thin Swiss-roll arm), i.e. a bias
  ~ +h^2/12 * Fisher information in the NLL; for p the relative error is
  theta(1-theta) h^2/2 p''/p, whose mean under points drawn from ~p vanishes
  (the integral of p'' is 0), leaving a much smaller O(h^4) bias.
* Depends only on torch and diffedu, so :func:`compute` can move into the package unchanged.
"""

from __future__ import annotations

import argparse
import json
import math
import time
import warnings
from pathlib import Path

import torch

import diffedu as de
from diffedu.data import DATASETS
from diffedu.fokker_planck import Grid, solve
from diffedu.likelihood import log_likelihood

HBARS = tuple(round(0.1 * k, 1) for k in range(1, 11))
DEFAULTS = dict(cells=400, box=4.0, max_step=0.004)   # the converged setting (see the report)
SEED = 5
OUT = Path(__file__).resolve().parent.parent / "diffedu" / "weights" / "nll_vs_hbar.json"


class _MemoScore:
    """``score(x, t)`` evaluated in chunks and memoised per (time, point set).

    The Fokker–Planck solver evaluates the drift on the same face points at the same times
    for every hbar when the time step is fixed, so the network runs once for all hbar.  The
    stored values are the network's own outputs (kept in its parameter dtype), hence exact.
    """

    def __init__(self, model, chunk: int = 4096):
        self.model, self.chunk = model, chunk
        params = list(model.parameters()) if isinstance(model, torch.nn.Module) else []
        self.store_dtype = params[0].dtype if params else None
        self.cache = {}
        self.hits = self.misses = 0

    def _key(self, x, t):
        n = x.shape[0]
        if t.dim() == 0:
            tv = float(t)
        else:
            t0 = t.reshape(-1)[0]
            if not bool((t == t0).all()):
                return None            # not a single time: do not memoise
            tv = float(t0)
        return (tv, tuple(x.shape), tuple(x[0].tolist()), tuple(x[n // 2].tolist()), tuple(x[-1].tolist()))

    def _evaluate(self, x, t):
        tv = t.expand(x.shape[0]) if t.dim() == 0 else t.reshape(-1)
        with torch.no_grad():
            return torch.cat([self.model(xc, tc) for xc, tc in zip(x.split(self.chunk), tv.split(self.chunk))])

    def __call__(self, x, t):
        if not isinstance(t, torch.Tensor):
            t = torch.tensor(float(t), dtype=x.dtype)
        key = self._key(x, t)
        if key is not None and key in self.cache:
            self.hits += 1
            return self.cache[key].to(x.dtype)
        self.misses += 1
        out = self._evaluate(x, t)
        if key is not None:
            self.cache[key] = out.to(self.store_dtype) if self.store_dtype is not None else out
        return out.to(x.dtype)


def _interpolate(grid: Grid, values: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Bilinear interpolation of cell-centre ``values`` at points ``x`` (n, 2) inside the centres' hull."""
    idx, theta = [], []
    for ax in range(2):
        u = (x[:, ax] - float(grid.axes[ax][0])) / grid.h[ax]
        i = torch.clamp(torch.floor(u).long(), 0, grid.shape[ax] - 2)
        idx.append(i)
        theta.append(u - i)
    i, j = idx
    a, b = theta
    v = values
    return ((1 - a) * (1 - b) * v[i, j] + a * (1 - b) * v[i + 1, j]
            + (1 - a) * b * v[i, j + 1] + a * b * v[i + 1, j + 1])


def _edge_mass(grid: Grid, p: torch.Tensor, width: float = 0.25) -> float:
    """Mass of ``p`` within ``width`` of the box's edges."""
    xs, ys = grid.mesh()
    near = ((xs - grid.lo[0] < width) | (grid.hi[0] - xs < width)
            | (ys - grid.lo[1] < width) | (grid.hi[1] - ys < width))
    return float(p[near].sum() * grid.cell_volume)


def compute(data: str = "swiss_roll", schedule: str = "simple", hbars=HBARS, cells: int = DEFAULTS["cells"],
            box: float = DEFAULTS["box"], n_points: int = 1000, *, max_step: float = DEFAULTS["max_step"],
            seed: int = SEED, include_hbar0: bool = True, verbose: bool = False) -> dict:
    r"""NLL(hbar) of the sampler family of the shipped model ``(data, schedule)``.

    Solves the sampler's Fokker–Planck equation on ``cells`` x ``cells`` cells over
    ``[-box, box]^2`` with time step ``max_step`` (the same for every hbar) and evaluates
    :math:`-\log q^\hbar_{t_{\min}}` at ``n_points`` test points (seed ``seed``) by bilinear
    interpolation of the density.  With ``include_hbar0`` the hbar = 0 entry comes first and is
    computed by the probability-flow ODE (``diffedu.likelihood.log_likelihood``), not the grid.

    Returns a JSON-ready dict (see the module docstring and :func:`main`).
    """
    torch_threads = torch.get_num_threads()
    model = de.load_pretrained(data, schedule)
    sde = model.sde
    x = DATASETS[data](n_points, de.make_generator(seed, shift=False), dtype=torch.float64)
    grid = Grid((-box, -box), (box, box), (cells, cells))
    for ax in range(2):
        lo, hi = float(grid.axes[ax][0]), float(grid.axes[ax][-1])
        if bool((x[:, ax] < lo).any() or (x[:, ax] > hi).any()):
            raise ValueError(f"test points outside the grid's cell centres on axis {ax}; enlarge box")
    p0 = grid.density(sde.prior_logp)
    prior_mass_on_grid = grid.mass(p0)
    p0 = p0 / prior_mass_on_grid
    score = _MemoScore(model)

    out = dict(data=data, schedule=schedule, hbar=[], nll=[], nll_se=[], method=[], mass=[], edge_mass=[],
               min_density=[], steps=[], seconds=[], nll_logp_interp=[])
    if include_hbar0:
        t0 = time.perf_counter()
        r = log_likelihood(sde, model, x)
        secs = time.perf_counter() - t0
        if bool(r.excluded.any()):
            raise RuntimeError(f"log_likelihood excluded {int(r.excluded.sum())} points")
        for k, v in dict(hbar=0.0, nll=r.nll, nll_se=r.nll_se, method="probability-flow ODE (log_likelihood)",
                         mass=None, edge_mass=None, min_density=None, steps=r.steps, seconds=secs,
                         nll_logp_interp=None).items():
            out[k].append(v)
        if verbose:
            print(f"hbar 0.0: NLL {r.nll:.4f} ± {r.nll_se:.4f} (probability-flow ODE, {secs:.1f} s)", flush=True)
    for hbar in hbars:
        t0 = time.perf_counter()
        rev = sde.reverse(score, float(hbar))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            res = solve(rev, p0, grid, [sde.T, sde.t_min], max_step=max_step)
        for w in caught:
            print(f"  warning at hbar={hbar:g}: {w.message}", flush=True)
        p = res.p[-1]
        q = _interpolate(grid, p, x)
        if bool((q <= 0).any()):
            raise RuntimeError(f"non-positive interpolated density at {int((q <= 0).sum())} test points (hbar={hbar})")
        logq = torch.log(q)
        logq_alt = _interpolate(grid, torch.log(p.clamp_min(1e-300)), x)
        secs = time.perf_counter() - t0
        nll = float(-logq.mean())
        se = float(logq.std() / math.sqrt(n_points))
        for k, v in dict(hbar=float(hbar), nll=nll, nll_se=se, method="Fokker-Planck grid", mass=grid.mass(p),
                         edge_mass=_edge_mass(grid, p), min_density=res.min_density, steps=res.steps, seconds=secs,
                         nll_logp_interp=float(-logq_alt.mean())).items():
            out[k].append(v)
        if verbose:
            print(f"hbar {hbar:.1f}: NLL {nll:.4f} ± {se:.4f}  (log-p interp {out['nll_logp_interp'][-1]:.4f}) "
                  f"mass {out['mass'][-1]:.12f} edge {out['edge_mass'][-1]:.1e} min {res.min_density:.1e} "
                  f"{res.steps} steps {secs:.1f} s", flush=True)
    out.update(
        grid=dict(lo=grid.lo, hi=grid.hi, cells=list(grid.shape)),
        max_step=max_step, prior_mass_on_grid=prior_mass_on_grid, n_points=n_points, seed=seed,
        torch=torch.__version__, threads=torch_threads, total_seconds=sum(out["seconds"]),
        score_evaluations=dict(computed=score.misses, reused=score.hits),
        notes=("NLL(hbar) = -mean log q_{t_min}^hbar(x) over the test points; nll_se = std/sqrt(n). "
               "hbar > 0: diffedu.fokker_planck.solve of model.sde.reverse(model, hbar) from T to t_min, "
               "p0 = prior N(0, I) at cell centres renormalised to unit mass on the box, fixed max_step; "
               "log q at the points by bilinear interpolation of q (nll_logp_interp: of log q instead, "
               "for comparison). hbar = 0: probability-flow ODE likelihood "
               "(diffedu.likelihood.log_likelihood, rtol = atol = 1e-5), not the grid. "
               "seconds: wall time per hbar on the CPU; the score network runs during the first grid "
               "solve only (its values are reused by the others)."),
    )
    del score
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default="swiss_roll")
    ap.add_argument("--schedule", default="simple")
    ap.add_argument("--cells", type=int, default=DEFAULTS["cells"])
    ap.add_argument("--box", type=float, default=DEFAULTS["box"], help="half-width of the square box")
    ap.add_argument("--max-step", type=float, default=DEFAULTS["max_step"])
    ap.add_argument("--hbars", type=str, default=None, help="comma-separated, default 0.1,...,1.0")
    ap.add_argument("--no-hbar0", action="store_true", help="skip the probability-flow hbar = 0 entry")
    ap.add_argument("--compare-cells", type=int, default=None,
                    help="also solve on this coarser grid and store it under 'coarse' (grid-convergence check)")
    ap.add_argument("--out", default=str(OUT), help="JSON path, or - to print only")
    args = ap.parse_args(argv)
    hbars = HBARS if args.hbars is None else tuple(float(v) for v in args.hbars.split(","))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {args.data}/{args.schedule}, "
          f"{args.cells}^2 cells on [-{args.box:g}, {args.box:g}]^2, max_step {args.max_step:g}", flush=True)
    res = compute(args.data, args.schedule, hbars, args.cells, args.box, max_step=args.max_step,
                  include_hbar0=not args.no_hbar0, verbose=True)
    print(f"total {res['total_seconds']:.1f} s; score evaluations {res['score_evaluations']}")
    if args.compare_cells:
        coarse = compute(args.data, args.schedule, hbars, args.compare_cells, args.box, max_step=args.max_step,
                         include_hbar0=False, verbose=True)
        res["coarse"] = {k: coarse[k] for k in ("hbar", "nll", "grid")}
    if args.out != "-":
        path = Path(args.out)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(res, indent=1) + "\n")
        print(f"wrote {path}")
    return res


if __name__ == "__main__":
    main()
