"""Training speed: steps per second per model of `train_dsm` / `train_dsm_many`, one thread, the paper's recipe.

The paper's recipe (Swiss roll, 3000 points, batch 512, Adam 1e-3) on one CPU thread, for

* `autograd`: the network wrapped in a plain module, so `train_dsm` takes its generic engine (the network's own
  forward pass, autograd, torch's fused Adam) -- what every module other than a ScoreMLP gets;
* `fast x1`: `train_dsm` on a ScoreMLP (the backward pass written out, Adam on one flat tensor);
* `fast x2`, `fast x4`: `train_dsm_many` on 2 or 4 ScoreMLPs trained as one batched network (rate per model).

The machine's speed drifts (a shared virtual machine), so the configurations run in interleaved rounds and the
median and range over rounds are printed.  The reference is the official JAX/Flax code of Hirono, Tanaka & Fukushima
(2024) on the same recipe: 437 steps/s on one core where our old autograd loop ran 423 (the figure the training issue
quotes). For a ratio on this machine, give `--reference-command CMD`: a shell command that times the JAX code on
one core and prints a line with "steps/s <number>" (the JAX code is not part of this repository; any such script
will do). It runs once per round, between our configurations, and the per-round ratios are printed too: the rounds
pair the two programs in time, which the machine's drift would otherwise confound.

Run: .venv/bin/python benchmarks/train.py [--steps 2000] [--rounds 5] [--reference-command CMD]
"""

import argparse
import re
import statistics
import subprocess
import time

import torch
from torch import nn

import diffedu as de
from diffedu.nets import ScoreMLP, paper_sde
from diffedu.train import train_dsm, train_dsm_many

JAX_REFERENCE = 437.0        # steps/s, the official JAX code on one core (the measurement)


class Wrapped(nn.Module):
    """A ScoreMLP behind a plain module: train_dsm trains it with autograd and torch.optim.Adam."""

    def __init__(self, net):
        super().__init__()
        self.net, self.dim = net, net.dim

    def forward(self, x, t):
        return self.net(x, t)


def run(config: str, steps: int, data, sde) -> float:
    """Per-model steps per second of one configuration (after 100 warm-up steps)."""
    count = {"autograd": 1, "fast x1": 1, "fast x2": 2, "fast x4": 4}[config]
    torch.manual_seed(0)
    nets = [ScoreMLP(2) for _ in range(count)]

    def train(n):
        gens = [de.make_generator(1 + i, shift=False) for i in range(count)]
        if config == "autograd":
            train_dsm(Wrapped(nets[0]), data, sde, n, generator=gens[0], progress=False)
        elif count == 1:
            train_dsm(nets[0], data, sde, n, generator=gens[0], progress=False)
        else:
            train_dsm_many(nets, [data] * count, [sde] * count, n, generators=gens, progress=False)

    train(100)
    start = time.perf_counter()
    train(steps)
    return count * steps / (time.perf_counter() - start)


def reference(command: str) -> float:
    """The steps/s that ``command`` prints (a line with "steps/s <number>")."""
    out = subprocess.run(command, shell=True, capture_output=True, text=True, check=True).stdout
    match = re.search(r"steps/s\s+([0-9.]+)", out)
    if not match:
        raise RuntimeError(f"--reference-command printed no 'steps/s <number>': {out[-300:]!r}")
    return float(match.group(1))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--configs", nargs="*", default=["autograd", "fast x1", "fast x2", "fast x4"])
    ap.add_argument("--reference-command", default=None,
                    help="a shell command that prints the JAX code's 'steps/s <number>' on one core of this machine")
    args = ap.parse_args()
    torch.set_num_threads(1)
    data = de.swiss_roll(3000, de.make_generator(2024, shift=False))
    sde = paper_sde("simple")
    names = (["JAX"] if args.reference_command else []) + list(args.configs)
    rates = {c: [] for c in names}
    for r in range(args.rounds):
        if args.reference_command:
            rates["JAX"].append(reference(args.reference_command))
        for c in args.configs:
            rates[c].append(run(c, args.steps, data, sde))
        print(f"round {r + 1}: " + ", ".join(f"{c} {rates[c][-1]:.0f}" for c in names), flush=True)
    print(f"\nsteps/s per model, one thread, {args.steps} steps, median / best (range) of {args.rounds} rounds:")
    for c in names:
        med, best = statistics.median(rates[c]), max(rates[c])
        line = (f"  {c:<9} {med:6.0f} / {best:4.0f}  ({min(rates[c]):.0f}-{best:.0f})   "
                f"{med / JAX_REFERENCE:.2f} x the JAX reference {JAX_REFERENCE:.0f}")
        if args.reference_command and c != "JAX":
            ratios = [a / b for a, b in zip(rates[c], rates["JAX"])]
            line += (f";  x JAX here: {med / statistics.median(rates['JAX']):.2f} (medians), "
                     f"{best / max(rates['JAX']):.2f} (bests), {statistics.median(ratios):.2f} (median of round ratios)")
        print(line)


if __name__ == "__main__":
    main()
