"""The first-order (WKB) likelihood correction: speed of the two methods, and Table 1 of the paper.

Two jobs (a benchmark, not a test; Chapter 6 loads the table it writes):

``--timing``  times ``first_order_correction`` with the exact method (score/Hessian ODEs, autograd
    derivatives of the network) and with the paper's finite-difference method (inner
    log-likelihood solves, spacing 0.01, error bound) on the same Swiss-roll/simple test
    points, prints the ratio, and measures the accuracy of both against a tight exact
    reference (rtol = atol = 1e-8) on the first ``--ref-points`` points.
``--table``   Table 1 for the four shipped models: NLL and 1ST-CORR (exact method, 1000 test
    points) and, on the first ``--fd-points`` of them, the finite-difference value with its
    error bound (ERRORS) next to the exact value on the same points.  Writes
    ``diffedu/weights/wkb_table.json``.

``--mixture-spectral`` Chapter 6's 1-D mixture: the hbar-tangent of the spectral Fokker–Planck solver
    against the WKB correction, by number of grid points (seconds).
``--tangent-2d N [N ...]`` Swiss roll / simple: the 2-D Fokker–Planck tangent and second derivative, finest grid
    N x N, in four nested boxes (``tangent_2d``), Fourier-interpolated to the 1000 test points, against the
    table's WKB slopes; adds ``tangent_2d`` to the JSON.  NOT CONVERGED on a CPU.  Measured on the
    first box alone (t from 1 to 0.45 on [-6.4, 6.4)^2, prior cut smoothly at radius 4.6, the network's score
    blended into the zero-velocity reference at 5.6, sink rate 30 beyond 5.3): the network's reverse flow
    carries prior mass outward (radial velocity up to +9 at radius 5.5, t = 0.6) and gathers it at radius
    3.5-4 (up to 6e-3 of the peak density, where the prior has 1e-3); the negative lobes inside radius 4 shrink
    only algebraically, -1.5e-5, -7.2e-6, -2.4e-6 of the peak at 128^2, 192^2, 256^2 points (-6.9e-5 to
    -4.8e-5 at the sink's edge), and 256^2 took 202 s for that box alone on two cores.  Without the sink the
    mass piles up where the velocity is blended to zero (3e-3 of the peak at radius 5.5-6, lobes of -4e-4).
    A converged run needs finer grids than a two-core CPU affords; ``--device cuda`` moves the network
    to a GPU, while the FFTs and the Dormand–Prince steps stay on the CPU.
``--dx-study`` the finite-difference method at spacings 0.01, 0.005, 0.0025 on the four 25-Gaussian/simple
    points where it differs most from the exact method; adds ``dx_study`` to the JSON.

Test points: ``DATASETS[data](1000, make_generator(5))``, the points of benchmarks/likelihood.py.
Run: .venv/bin/python benchmarks/wkb.py --table --dx-study --mixture-spectral --timing --threads 1
"""

import argparse
import json
import math
import time
from pathlib import Path

import torch

import diffedu as de
from diffedu.data import DATASETS
from diffedu.wkb import first_order_correction

OUT = Path(de.__file__).resolve().parent / "weights" / "wkb_table.json"
MODELS = [("swiss_roll", "simple"), ("swiss_roll", "cosine"), ("gaussian_grid", "simple"),
          ("gaussian_grid", "cosine")]
#: Table 1 of Hirono, Tanaka & Fukushima (ICML 2024): NLL, 1ST-CORR at t_ol 1e-3 and 1e-5, ERRORS
PAPER = {
    "swiss_roll/simple": {"nll": [1.39, 0.05], "first_corr": [[-0.31, 0.21], [-0.44, 0.38]], "errors": [0.13, 0.13]},
    "swiss_roll/cosine": {"nll": [1.42, 0.02], "first_corr": [[-1.59, 0.57], [-3.27, 1.11]], "errors": [0.35, 0.37]},
    "gaussian_grid/simple": {"nll": [-1.22, 0.01], "first_corr": [[-3.64, 0.49], [-3.61, 0.64]], "errors": [0.31, 0.32]},
    "gaussian_grid/cosine": {"nll": [-1.71, 0.02], "first_corr": [[-17.57, 5.56], [-19.65, 17.46]],
                             "errors": [0.70, 0.67]},
}
SEED = 5


def test_points(data, n=1000):
    return DATASETS[data](1000, de.make_generator(SEED, shift=False), dtype=torch.float64)[:n]


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def timing(points=1000, ref_points=50):
    model = de.load_pretrained("swiss_roll", "simple")
    x = test_points("swiss_roll", points)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, cpu; {points} Swiss-roll/simple points")
    runs = {}
    for tol in (1e-5, 1e-4, 1e-3):
        runs[f"exact {tol:g}"] = timed(lambda: first_order_correction(model.sde, model, x, rtol=tol, atol=tol))
    runs["finite difference"] = timed(lambda: first_order_correction(model.sde, model, x, method="finite_difference"))
    ref = first_order_correction(model.sde, model, x[:ref_points], rtol=1e-8, atol=1e-8)
    fd_s = runs["finite difference"][1]
    report = {"points": points, "ref_points": ref_points}
    for name, (r, secs) in runs.items():
        err = (r.correction[:ref_points] - ref.correction).abs()
        line = (f"{name:>18}: {secs:8.1f} s  ({fd_s / secs:6.1f}x faster than finite differences)  "
                f"1ST-CORR {r.first_corr:+.3f} ± {r.first_corr_se:.3f}  |error| vs reference: "
                f"mean {float(err.mean()):.2e}, max {float(err.max()):.2e}")
        if r.error is not None:
            line += f"; its own bound (ERRORS) {r.errors:.3f}"
        print(line, flush=True)
        report[name] = {"seconds": secs, "ratio": fd_s / secs, "first_corr": r.first_corr,
                        "first_corr_se": r.first_corr_se, "mean_abs_error": float(err.mean()),
                        "max_abs_error": float(err.max()), "nfe": r.nfe, "inner_nfe": r.inner_nfe}
    return report


def table(fd_points=25, out=OUT):
    rows = {}
    for data, schedule in MODELS:
        model = de.load_pretrained(data, schedule)
        x = test_points(data)
        r, secs = timed(lambda: first_order_correction(model.sde, model, x))
        fd, fd_secs = timed(lambda: first_order_correction(model.sde, model, x[:fd_points], method="finite_difference"))
        keep = ~(fd.excluded | r.excluded[:fd_points])
        diff = (fd.correction - r.correction[:fd_points])[keep]
        key = f"{data}/{schedule}"
        rows[key] = {
            "n": int((~r.excluded).sum()), "excluded": int(r.excluded.sum()),
            "nll": r.nll, "nll_se": r.nll_se, "first_corr": r.first_corr, "first_corr_se": r.first_corr_se,
            "correction_quantiles": [float(q) for q in torch.quantile(r.correction[~r.excluded],
                                     torch.tensor([0.01, 0.1, 0.5, 0.9, 0.99], dtype=torch.float64))],
            "seconds": secs,
            "logp": [round(float(v), 6) for v in r.logp],            # per point (NaN if excluded)
            "correction": [round(float(v), 6) for v in r.correction],
            "fd_points": int(keep.sum()), "fd_seconds": fd_secs,
            "fd_first_corr": float(-fd.correction[keep].mean()),
            "exact_first_corr_same_points": float(-r.correction[:fd_points][keep].mean()),
            "fd_errors": float(fd.error[keep].mean()), "fd_errors_se": float(fd.error[keep].std() / keep.sum() ** 0.5),
            "fd_mean_abs_diff": float(diff.abs().mean()), "fd_max_abs_diff": float(diff.abs().max()),
            "fd_correction": [round(float(v), 6) for v in fd.correction],
            "fd_error": [round(float(v), 6) for v in fd.error],
            "fd_within_bound": float(((fd.correction - r.correction[:fd_points]).abs() <= fd.error)[keep].float().mean()),
            "paper": PAPER[key],
        }
        row = rows[key]
        print(f"{key:>22}: NLL {row['nll']:+.3f} ± {row['nll_se']:.3f}  1ST-CORR {row['first_corr']:+.3f} ± "
              f"{row['first_corr_se']:.3f} ({secs:.0f} s) | FD on {row['fd_points']}: {row['fd_first_corr']:+.3f} vs exact "
              f"{row['exact_first_corr_same_points']:+.3f}, ERRORS {row['fd_errors']:.3f}, mean |diff| "
              f"{row['fd_mean_abs_diff']:.3f}, within bound {row['fd_within_bound']:.0%} ({fd_secs:.0f} s)", flush=True)
    blob = {"seed": SEED, "points": 1000, "torch": torch.__version__, "rtol": 1e-5, "atol": 1e-5,
            "fd": {"dx": 0.01, "inner_tol": 1e-5, "outer_tol": 1e-3}, "models": rows}
    out.write_text(json.dumps(blob, indent=1) + "\n")
    print(f"wrote {out.name}")
    return blob


def dx_study(points=(2, 16, 21, 23), dxs=(0.01, 0.005, 0.0025), out=OUT):
    """The finite-difference bias: 25 Gaussians / simple, the test points where FD and exact differ most
    (indices ``points`` of the table's first 25), FD at several spacings against a tight exact reference."""
    model = de.load_pretrained("gaussian_grid", "simple")
    x = test_points("gaussian_grid")[list(points)]
    ref = first_order_correction(model.sde, model, x, rtol=1e-8, atol=1e-8)
    exact = first_order_correction(model.sde, model, x)
    study = {"points": list(points), "reference_1e-8": ref.correction.tolist(), "exact": exact.correction.tolist(),
             "dx": list(dxs), "fd": [], "fd_error": []}
    for dx in dxs:
        fd = first_order_correction(model.sde, model, x, method="finite_difference", dx=dx)
        study["fd"].append(fd.correction.tolist())
        study["fd_error"].append(fd.error.tolist())
        print(f"dx {dx:g}: FD - reference {[round(v, 3) for v in (fd.correction - ref.correction).tolist()]}, "
              f"ERRORS {[round(v, 3) for v in fd.error.tolist()]}", flush=True)
    blob = json.loads(out.read_text())
    blob["dx_study"] = study
    out.write_text(json.dumps(blob, indent=1) + "\n")
    print(f"added dx_study to {out.name}")
    return study


def mixture_spectral(cells=(64, 128, 256, 512)):
    """Chapter 6's 1-D mixture: the hbar-tangent of the spectral Fokker-Planck solver against the WKB
    correction, by number of grid points (error relative to the largest slope on -2, -1.5, ..., 2, and
    seconds).  Prints only; the chapter computes its own comparison live (256 points)."""
    from diffedu.fokker_planck import sampler_marginal_spectral
    from diffedu.wkb import mixture_example

    sde, _, score = mixture_example(0.05)
    x = torch.linspace(-2.0, 2.0, 9, dtype=torch.float64)[:, None]
    wkb = first_order_correction(sde, score, x, rtol=1e-10, atol=1e-10).correction
    for n in cells:
        t0 = time.perf_counter()
        r = sampler_marginal_spectral(sde, score, 0.0, tangent=True, cells=n)
        seconds = time.perf_counter() - t0
        at = torch.isclose(r.x[:, None], x[:, 0][None, :], atol=1e-12).any(1)
        rel = float((r.slope[at] - wkb).abs().max() / wkb.abs().max())
        print(f"cells {n:4d}: |tangent - WKB| / max|WKB| = {rel:.1e}   {seconds:.2f} s   nfe {r.nfe}", flush=True)


def fourier_at(w, x_axis, pts):
    """The trigonometric interpolant of the periodic grid function ``w`` (n, n) at the rows of ``pts``
    (P, 2): exact for band-limited ``w``, and spectrally accurate for the smooth densities here."""
    n = w.shape[0]
    L = -float(x_axis[0])
    k = 2.0 * math.pi * torch.fft.fftfreq(n, d=2.0 * L / n, dtype=torch.float64)
    c = torch.fft.fft2(w.to(torch.complex128)) / (n * n)
    e0 = torch.exp(1j * (pts[:, :1] + L) * k[None, :])                  # (P, n)
    e1 = torch.exp(1j * (pts[:, 1:] + L) * k[None, :])
    return ((e0 @ c) * e1).sum(1).real


def _stage_plan(cells):
    """The nested boxes of the 2-D Swiss-roll solve at finest resolution ``cells`` (see ``tangent_2d``), one
    ``(t_from, t_to, half_width, grid sizes, refine_at, blend, window, sink)`` per stage, each of the last three a
    smooth step ``(centre, width)``: the score is the network's inside the blend and the zero-velocity reference
    outside it; the window multiplies the prior (first stage) or the fields moved in from the previous stage; the
    sink removes mass outside its step at rate ``SINK``."""
    return [(1.0, 0.45, 6.4, [cells // 2], [], (5.6, 0.15), (4.6, 0.17), (5.3, 0.15)),
            (0.45, 0.1, 4.8, [cells // 2], [], (4.1, 0.12), (4.0, 0.12), (4.3, 0.1)),
            (0.1, 0.03, 3.8, [cells // 2], [], (3.2, 0.1), (3.15, 0.1), (3.4, 0.08)),
            (0.03, None, 3.3, [cells], [], (2.7, 0.06), (2.6, 0.06), (2.85, 0.06))]


SINK = 30.0


def _smooth_step(r, centre, width):
    """1 well inside ``centre``, 0 well outside: ``erfc((r - centre) / width) / 2``."""
    return 0.5 * torch.special.erfc((r - centre) / width)


def fourier_regrid(w, x_axis, new_axis):
    """The trigonometric interpolant of the periodic grid function ``w`` (n, n) on the tensor grid
    ``new_axis`` x ``new_axis`` (separable: two matrix products instead of ``fourier_at``'s (P, n) table)."""
    n = w.shape[0]
    L = -float(x_axis[0])
    k = 2.0 * math.pi * torch.fft.fftfreq(n, d=2.0 * L / n, dtype=torch.float64)
    c = torch.fft.fft2(w.to(torch.complex128)) / (n * n)
    e = torch.exp(1j * (new_axis[:, None] + L) * k[None, :])             # (m, n)
    return (e @ c @ e.T).real


def tangent_2d(cells=(384, 512), data="swiss_roll", schedule="simple", device="cpu", out=OUT):
    """A shipped 2-D model: the hbar-tangent (and second derivative) of the sampler's density from the 2-D
    Fokker-Planck equation, Fourier-interpolated to the table's test points, against the table's WKB slopes.

    At hbar = 0 the equations for q, its tangent u and second derivative v are transport equations along the
    probability-flow characteristics: their values at a test point depend only on the fields along that point's
    characteristic.  The characteristics of the 1000 test points stay inside radius 3.73 for all t, 3.4 for
    t <= 0.45, 2.61 for t <= 0.1, 2.27 for t <= 0.03 (traced here, and asserted), while the network's velocity far
    from the data is wild (|F| up to 600 at radius 8) and would set the explicit step on the prior's box
    [-8, 8)^2.  So the solve runs in four nested boxes (``_stage_plan``): in each, the score is the network's inside
    a blend radius beyond the characteristics' reach and turns smoothly into s_ref = 2 f / g^2 (zero velocity)
    outside it, a sink removes the mass the network's flow carries out there, the prior is cut off smoothly, and
    at each move to a smaller box the fields are Fourier-interpolated and multiplied by a smooth window; every
    step is 1 to 1e-12 where the characteristics run.  None of this changes q, u, v at the test points (domain of
    dependence); the grid error is the difference between the two finest ``cells``.  See the module docstring for
    why the result is not converged yet.
    Adds ``tangent_2d`` to the JSON.
    """
    import copy

    from diffedu.fokker_planck import SpectralFP, _grid_points, sampler_marginal_spectral
    from diffedu.ode import dopri5

    key = f"{data}/{schedule}"
    blob = json.loads(out.read_text())
    row = blob["models"][key]
    wkb = torch.tensor(row["correction"], dtype=torch.float64)
    logp = torch.tensor(row["logp"], dtype=torch.float64)
    x = test_points(data, len(wkb))
    model = de.load_pretrained(data, schedule)
    sde = model.sde
    net = copy.deepcopy(model).double().to(device)
    plan = _stage_plan(max(cells))

    def velocity(z, t):
        with torch.no_grad():
            s = net(z.to(device), torch.full((z.shape[0],), t, dtype=torch.float64, device=device)).cpu()
        tt = torch.tensor(t, dtype=torch.float64)
        return sde._f(z, tt) - 0.5 * float(sde._g(tt)) ** 2 * s

    # the reach of the test points' characteristics in each stage's time window
    reach = []
    y = (x.clone(),)
    for t_from, t_to, *_ in reversed(plan):
        r = y[0].norm(dim=1).clone()

        def on_step(t, yy, r=r):
            torch.maximum(r, yy[0].norm(dim=1), out=r)

        y, _ = dopri5(lambda t, yy: (velocity(yy[0], t),), t_to or sde.t_min, t_from, y, rtol=1e-7, atol=1e-9,
                      on_step=on_step)
        reach.insert(0, float(r.max()))
    for (t_from, _, _, _, _, *steps), got in zip(plan, reach):        # 1 - 1e-12 or closer there
        for centre, width in steps:
            assert got < centre - 5 * width, \
                f"characteristics reach {got:.2f} for t <= {t_from}: beyond {centre, width}"
    print("characteristics reach (per stage, from t = T):", [round(v, 2) for v in reach], flush=True)

    def stage_score(blend):
        def score(z, t):
            w = _smooth_step(z.norm(dim=1), *blend)            # 1 to 1e-12 where the characteristics run
            w[w < 1e-12] = 0.0                                 # beyond centre + 5 width: the reference alone
            tt = torch.tensor(t[0].item(), dtype=torch.float64)
            s = 2.0 * sde._f(z, tt) / float(sde._g(tt)) ** 2   # the stationary reference: velocity 0
            inside = w > 0.0
            if bool(inside.any()):
                with torch.no_grad():
                    sn = net(z[inside].to(device), t[inside].to(device)).cpu()
                s[inside] = w[inside, None] * sn + (1.0 - w[inside, None]) * s[inside]
            return s
        return score

    keep = torch.isfinite(wkb) & torch.isfinite(logp)
    study = {"model": key, "device": str(device), "torch": torch.__version__, "threads": torch.get_num_threads(),
             "reach": reach, "stages": [list(p[:3]) + list(p[5:]) for p in plan], "sink_rate": SINK,
             "cells": [], "seconds": [],
             "nfe": [],
             "first_corr_wkb": float(-wkb[keep].mean()), "first_corr_tangent": [], "median_abs_diff": [],
             "max_abs_diff": [], "median_rel_diff": [], "max_logq_diff": [], "second_coefficient": [],
             "second_coefficient_se": []}
    results = []
    for n in cells:
        t0 = time.perf_counter()
        state, nfe = None, []
        for t_from, t_to, L, sizes, refine_at, blend, window, sink in _stage_plan(n):
            prior = None
            if state is None:
                prior = lambda z, w=window: sde.prior_logp(z) + torch.log(_smooth_step(z.norm(dim=1), *w))
            else:                                # move the fields to this stage's box
                g = -L + 2.0 * L / sizes[0] * torch.arange(sizes[0], dtype=torch.float64)
                win = _smooth_step(_grid_points(g, 2).norm(dim=1), *window).reshape(sizes[0], sizes[0])
                move = lambda w: fourier_regrid(w, state.x, g) * win
                state = SpectralFP(x=g, q=move(state.q), dq_dhbar=move(state.dq_dhbar), nfe=0,
                                   d2q_dhbar2=move(state.d2q_dhbar2), t=t_from)
            state = sampler_marginal_spectral(sde, stage_score(blend), 0.0, dim=2, half_width=L, cells=sizes,
                                              refine_at=refine_at, second=True, initial=state, until=t_to,
                                              prior_logp=prior, rtol=1e-6, atol=1e-10, batch=1 << 16,
                                              sink=lambda z, k=sink: SINK * (1.0 - _smooth_step(z.norm(dim=1), *k)))
            edge = max(float(state.q[i].abs().max()) for i in (0, -1)) + max(float(state.q[:, i].abs().max())
                                                                                for i in (0, -1))
            print(f"  {n}: stage to t = {state.t:g} on [-{L:g}, {L:g})^2, cells {sizes}: nfe {state.nfe}, "
                  f"{time.perf_counter() - t0:.0f} s; density at the edge {edge / float(state.q.max()):.1e} "
                  f"of the peak, "
                  f"min {float(state.q.min()) / float(state.q.max()):.1e}", flush=True)
            nfe.append(state.nfe)
        seconds = time.perf_counter() - t0
        q = fourier_at(state.q, state.x, x)
        u = fourier_at(state.dq_dhbar, state.x, x)
        v = fourier_at(state.d2q_dhbar2, state.x, x)
        slope = u / q
        curv = v / q - slope ** 2                                  # d^2 log q / d hbar^2 at hbar = 0
        results.append((slope, curv, q))
        diff = (slope - wkb)[keep].abs()
        rel = diff / wkb[keep].abs().clamp_min(1.0)
        c2 = -curv[keep]                                            # d^2 NLL / d hbar^2 per point
        for name, value in (("cells", n), ("seconds", seconds), ("nfe", nfe), ("max_abs_diff", float(diff.max())),
                            ("median_abs_diff", float(diff.median())), ("median_rel_diff", float(rel.median())),
                            ("first_corr_tangent", float(-slope[keep].mean())),
                            ("max_logq_diff", float((q.log() - logp)[keep].abs().max())),
                            ("second_coefficient", float(c2.mean())),
                            ("second_coefficient_se", float(c2.std() / keep.sum() ** 0.5))):
            study[name].append(value)
        print(f"{key} {n}: |tangent - WKB| median {float(diff.median()):.2e} max {float(diff.max()):.2e}; "
              f"1ST-CORR tangent {-float(slope[keep].mean()):+.4f} vs WKB {study['first_corr_wkb']:+.4f}; "
              f"max |log q0 - ODE log q| {study['max_logq_diff'][-1]:.1e}; d2 NLL/dhbar2 {float(c2.mean()):+.3f} "
              f"+- {study['second_coefficient_se'][-1]:.3f}; {seconds:.0f} s, nfe {nfe}", flush=True)
    if len(results) > 1:
        grid = (results[-1][0] - results[-2][0])[keep].abs()
        grid2 = (results[-1][1] - results[-2][1])[keep].abs()
        study["grid_error_median"], study["grid_error_max"] = float(grid.median()), float(grid.max())
        study["grid_error_second_median"], study["grid_error_second_max"] = float(grid2.median()), float(grid2.max())
        print(f"grid error (two finest): slope median {float(grid.median()):.2e} max {float(grid.max()):.2e}; "
              f"second derivative median {float(grid2.median()):.2e} max {float(grid2.max()):.2e}")
    slope, curv, q = results[-1]
    study["slope"] = [round(float(v), 7) for v in slope]
    study["curvature"] = [round(float(v), 6) for v in curv]
    study["q"] = [float(f"{float(v):.9g}") for v in q]
    blob = json.loads(out.read_text())
    blob["tangent_2d"] = study
    out.write_text(json.dumps(blob, indent=1) + "\n")
    print(f"added tangent_2d to {out.name}")
    return study


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--timing", action="store_true")
    ap.add_argument("--points", type=int, default=1000)
    ap.add_argument("--ref-points", type=int, default=50)
    ap.add_argument("--table", action="store_true")
    ap.add_argument("--fd-points", type=int, default=25)
    ap.add_argument("--dx-study", action="store_true", help="FD spacing study on 25 Gaussians / simple")
    ap.add_argument("--mixture-spectral", action="store_true", help="Chapter 6's 1-D mixture: spectral tangent vs WKB")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    ap.add_argument("--tangent-2d", type=int, nargs="+", metavar="CELLS", default=None,
                    help="Swiss roll / simple: the 2-D Fokker-Planck tangent at these grid sizes vs the table's WKB slopes")
    ap.add_argument("--device", default="cpu", help="where the score network runs for --tangent-2d (cpu, cuda)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if not (args.timing or args.table or args.dx_study or args.mixture_spectral or args.tangent_2d):
        args.timing = True
    if args.table:
        table(args.fd_points)
    if args.dx_study:
        dx_study()
    if args.mixture_spectral:
        mixture_spectral()
    if args.tangent_2d:
        tangent_2d(args.tangent_2d, device=args.device)
    if args.timing:
        timing(args.points, args.ref_points)


if __name__ == "__main__":
    main()
