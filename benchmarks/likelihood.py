"""Speed and accuracy of the probability-flow log-likelihood (a benchmark, not a test).

Target (issue: Chapter 4): the NLL of 1000 points for one shipped model in <= 10 s on a CPU.
Also reports how the NLL moves when the tolerance is tightened from the paper's 1e-5 to 1e-7.
Run: .venv/bin/python benchmarks/likelihood.py
"""

import time

import torch

import diffedu as de
from diffedu.data import DATASETS
from diffedu.likelihood import log_likelihood


def main():
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device cpu")
    for data in ("swiss_roll", "gaussian_grid"):
        for schedule in ("simple", "cosine"):
            model = de.load_pretrained(data, schedule)
            x = DATASETS[data](1000, de.make_generator(5, shift=False), dtype=torch.float64)
            t0 = time.perf_counter()
            r = log_likelihood(model.sde, model, x)
            secs = time.perf_counter() - t0
            tight = log_likelihood(model.sde, model, x, rtol=1e-7, atol=1e-7)
            shift = float((r.logp - tight.logp).abs().max())
            print(f"{data:>14}/{schedule:<6}: NLL {r.nll:+.4f} ± {r.nll_se:.4f} in {secs:5.2f} s "
                  f"({r.nfe} evaluations, {r.rejected} rejected); max |change| at 1e-7: {shift:.1e}")


if __name__ == "__main__":
    main()
