"""The shipped flow-matching model of Chapter 7 against the shipped score model, on Table 1's test points.

For the Swiss-roll flow-matching model (linear path, `diffedu.nets.load_flow`) this computes, on the
1000 test points of `benchmarks/wkb.py` (the same points, seed 5):

* its probability-flow NLL, -log q^{hbar=0}_{t_min}(x_0), with the exact divergence (`log_likelihood` with
  the score recovered from the velocity, s = ((alpha'/alpha) x - v) / (g^2/2): the ODE's drift is then
  the network's velocity, to round-off);
* its first-order hbar correction (`first_order_correction`, exact method): the slope of NLL(hbar) at 0
  for the hbar family of the linear path, whose sampler drift is (1 + hbar) v - hbar (alpha'/alpha) x;
* the paired difference of NLLs per point against the Swiss-roll/simple score model (`wkb_table.json`).

Writes `diffedu/weights/flow_likelihood.json`; Chapter 7 shows it and recomputes the first points live.
Run: .venv/bin/python benchmarks/flow_likelihood.py --threads 1   (about 10 minutes on one core)
"""

import argparse
import json
import math
import time
from pathlib import Path

import torch

import diffedu as de
from diffedu.data import DATASETS
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
    x = DATASETS["swiss_roll"](1000, de.make_generator(SEED, shift=False), dtype=torch.float64)[:args.points]
    score = flow_score(model)
    t0 = time.perf_counter()
    ll = log_likelihood(path, score, x, rtol=1e-5, atol=1e-5)
    t_nll = time.perf_counter() - t0
    t0 = time.perf_counter()
    first = first_order_correction(path, score, x, rtol=1e-5, atol=1e-5)
    t_first = time.perf_counter() - t0
    keep = ~(ll.excluded | first.excluded)
    nll = -ll.logp[keep]
    phi = first.correction[keep]
    table = json.loads((WEIGHTS / "wkb_table.json").read_text())["models"]["swiss_roll/simple"]
    score_logp = torch.tensor(table["logp"], dtype=torch.float64)[:args.points][keep]
    diff = nll - (-score_logp)
    n = int(keep.sum())
    se = lambda v: float(v.std() / math.sqrt(v.numel()))          # noqa: E731
    blob = {"seed": SEED, "points": args.points, "used": n, "torch": torch.__version__, "threads": args.threads,
            "path": repr(path), "rtol": 1e-5, "atol": 1e-5,
            "nll": float(nll.mean()), "nll_se": se(nll),
            "score_model_nll_same_points": float(-score_logp.mean()),
            "nll_minus_score_model": float(diff.mean()), "nll_minus_score_model_se": se(diff),
            "first_corr": float(-phi.mean()), "first_corr_se": se(phi),
            "first_corr_median": float(-phi.median()),
            "seconds_nll": round(t_nll, 1), "seconds_first": round(t_first, 1),
            "logp": [round(float(v), 6) for v in ll.logp], "correction": [round(float(v), 6) for v in first.correction],
            "logp_from_first": [round(float(v), 6) for v in first.logp]}
    OUT.write_text(json.dumps(blob, indent=1) + "\n")
    print({k: v for k, v in blob.items() if not isinstance(v, list)})


if __name__ == "__main__":
    main()
