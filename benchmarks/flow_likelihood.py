"""The shipped flow-matching model of Chapter 7 against the shipped score model, on Table 1's test points.

For the Swiss-roll flow-matching model (linear path, `diffedu.nets.load_flow`) this computes, on the
1000 test points of `benchmarks/wkb.py` (the same points, seed 5):

* its probability-flow NLL, -log q^{hbar=0}_{t_min}(x_0), with the exact divergence (`log_likelihood` with
  the score recovered from the velocity, s = ((alpha'/alpha) x - v) / (g^2/2): the ODE's drift is then
  the network's velocity, to round-off);
* at the score model's t_min = 0.01, for both models: the NLL, its paired difference, and each model's excess
  over the exact density pushed along its own path (`swiss_roll_mixture`), which removes the paths' different
  blur at the same t;
* at t_min = 0.01, its first-order hbar correction (`first_order_correction`, exact method): the slope of
  NLL(hbar) at 0 for the hbar family of the linear path, whose sampler drift is (1 + hbar) v - hbar (alpha'/alpha) x,
  with the median, the spread and the fraction of points whose log q rises, beside the score model's
  (`wkb_table.json`, also at t_min = 0.01).

Writes `diffedu/weights/flow_likelihood.json`; Chapter 7 shows it and recomputes the first points live.
Run: .venv/bin/python benchmarks/flow_likelihood.py --threads 1   (about 4 minutes on one core)
"""

import argparse
import json
import math
import time
from pathlib import Path

import torch

import diffedu as de
from diffedu.data import DATASETS, swiss_roll_mixture
from diffedu.flows import Interpolant
from diffedu.likelihood import log_likelihood
from diffedu.nets import load_flow
from diffedu.wkb import first_order_correction

WEIGHTS = Path(de.__file__).resolve().parent / "weights"
OUT = WEIGHTS / "flow_likelihood.json"
SEED = 5                    # the test points of benchmarks/wkb.py


def flow_score(model):
    """The score of the flow model's marginals, from its velocity (the conversion of Chapter 7)."""
    path = model.path

    def score(x, t):
        return path.score_from_velocity(model(x, t), x, t)

    return score


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--points", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model = load_flow("swiss_roll")
    path = model.path
    score_model = de.load_pretrained("swiss_roll", "simple")
    x = DATASETS["swiss_roll"](1000, de.make_generator(SEED, shift=False), dtype=torch.float64)[:args.points]
    score = flow_score(model)
    exact = swiss_roll_mixture()
    se = lambda v: float(v.std() / math.sqrt(v.numel()))          # noqa: E731
    blob = {"seed": SEED, "points": args.points, "torch": torch.__version__, "threads": args.threads,
            "path": repr(path), "rtol": 1e-5, "atol": 1e-5}
    t0 = time.perf_counter()
    ll = log_likelihood(path, score, x, rtol=1e-5, atol=1e-5)
    blob.update(nll=float(-ll.logp.mean()), nll_se=se(ll.logp), seconds_nll=round(time.perf_counter() - t0, 1),
                logp=[round(float(v), 6) for v in ll.logp])
    # the comparison with the score model: the same points and the same t_min (the score model's 0.01), each model
    # against the exact density pushed along its own path (its blur at 0.01 differs: sigma/alpha 0.0101 vs 0.0316)
    t_cmp = score_model.sde.t_min
    nll_flow = -log_likelihood(path, score, x, t_min=t_cmp).logp
    nll_score = -log_likelihood(score_model.sde, score_model, x).logp
    nll_exact_flow = -exact.log_prob(x, t_cmp, path)
    nll_exact_score = -exact.log_prob(x, t_cmp, score_model.sde)
    blob.update(t_min_compared=t_cmp, nll_flow=float(nll_flow.mean()), nll_score=float(nll_score.mean()),
                nll_flow_minus_score=float((nll_flow - nll_score).mean()), nll_flow_minus_score_se=se(nll_flow - nll_score),
                excess_flow=float((nll_flow - nll_exact_flow).mean()), excess_flow_se=se(nll_flow - nll_exact_flow),
                excess_score=float((nll_score - nll_exact_score).mean()), excess_score_se=se(nll_score - nll_exact_score))
    t0 = time.perf_counter()
    path_cmp = Interpolant.linear(T=path.T, t_min=t_cmp)                # the same path, cut at the score model's t_min
    first = first_order_correction(path_cmp, score, x, rtol=1e-5, atol=1e-5)
    phi = first.correction[~first.excluded]
    blob.update(first_corr=float(-phi.mean()), first_corr_se=se(phi), first_corr_median=float(-phi.median()),
                correction_sd=float(phi.std()), fraction_rising=float((phi > 0).double().mean()),
                first_excluded=int(first.excluded.sum()), seconds_first=round(time.perf_counter() - t0, 1),
                correction=[round(float(v), 6) for v in first.correction])
    table = json.loads((WEIGHTS / "wkb_table.json").read_text())["models"]["swiss_roll/simple"]
    phi_s = torch.tensor(table["correction"], dtype=torch.float64)[:args.points]
    blob.update(score_first_corr=float(-phi_s.mean()), score_first_corr_se=se(phi_s),
                score_first_corr_median=float(-phi_s.median()), score_correction_sd=float(phi_s.std()),
                score_fraction_rising=float((phi_s > 0).double().mean()))
    OUT.write_text(json.dumps(blob, indent=1) + "\n")
    print({k: v for k, v in blob.items() if not isinstance(v, list)})


if __name__ == "__main__":
    main()
