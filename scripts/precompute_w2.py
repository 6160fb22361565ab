"""Sample quality against hbar for the four shipped models (the paper's Fig. 4 setting, reduced).

For hbar in linspace(0, 0.2, 10) and 5 trials, draw 2000 samples with 1000 reverse Euler–Maruyama
steps from T to t_min and compute the squared W2 distance to 2000 fresh data points by exact
optimal transport.  Trial k uses the same prior draws, Brownian increments and data points for
every hbar (common random numbers), so differences between hbar values are paired.
Writes diffedu/weights/w2_vs_hbar.json, which Chapter 4 plots (and partly recomputes).

Usage: python scripts/precompute_w2.py [--n 2000] [--trials 5] [--steps 1000]
"""

import argparse
import json
import time


import diffedu as de
from diffedu.nets import DATA_NAMES, SCHEDULE_NAMES, WEIGHTS
from diffedu.samplers import w2_trial

HBARS = [round(0.2 * k / 9, 6) for k in range(10)]


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--trials", type=int, default=5)
    ap.add_argument("--steps", type=int, default=1000)
    args = ap.parse_args()
    out = {"hbar": HBARS, "n": args.n, "trials": args.trials, "steps": args.steps, "results": {}}
    start = time.perf_counter()
    for data_name in DATA_NAMES:
        for schedule in SCHEDULE_NAMES:
            model = de.load_pretrained(data_name, schedule)
            table = [[w2_trial(model, data_name, h, k, n=args.n, steps=args.steps, shift=False) for k in range(args.trials)] for h in HBARS]
            out["results"][f"{data_name}_{schedule}"] = [[round(v, 6) for v in row] for row in table]
            print(f"{data_name}/{schedule}: " + " ".join(f"{sum(r) / len(r):.4f}" for r in table)
                  + f"  ({time.perf_counter() - start:.0f} s)", flush=True)
    out["seconds"] = round(time.perf_counter() - start, 1)
    (WEIGHTS / "w2_vs_hbar.json").write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
