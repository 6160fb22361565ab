"""Train the four shipped score models with the paper's recipe (run by `make weights`), and the flow-matching
model of Chapter 7 with the same recipe (`--flow`).

Recipe (Hirono, Tanaka & Fukushima 2024): 3000 training points, ScoreMLP (3 x 128 swish),
g^2-weighted denoising score matching, Adam lr 1e-3, batch 512 (5 batches per epoch, the
remainder dropped), 80 000 steps, no EMA; t uniform on [0.01, T].

The flow-matching model: the same data, network, seeds, optimiser, batches and steps, trained with
`train_flow_matching` on the linear path (alpha = 1 - t, sigma = t) with t uniform on [0.001, 0.999]; it
outputs the velocity. Saved as <data>_flow.pt / .json and loaded by `diffedu.nets.load_flow(data)`.

Usage: python scripts/train_weights.py [--only swiss_roll_simple ...] [--steps N] [--out DIR]
       python scripts/train_weights.py --flow swiss_roll [--steps N] [--out DIR]
Each model is trained with one CPU thread (run two processes side by side on two cores).
"""

import argparse
import json
import time
from pathlib import Path

import torch

import diffedu as de
from diffedu.data import DATASETS
from diffedu.nets import DATA_NAMES, SCHEDULE_NAMES, WEIGHTS, ScoreMLP, flow_path, paper_sde
from diffedu.train import train_dsm, train_flow_matching

DATA_SEED, INIT_SEED, TRAIN_SEED = 2024, 0, 1


def _train(data_name: str, stem: str, steps: int, out: Path, what: str, fit, extra: dict) -> dict:
    """The recipe shared by the score and flow models: one thread, the seeds, 3000 points, batch 512, Adam 1e-3;
    ``fit(model, data, generator)`` runs the training loop and returns the losses; writes ``<stem>.pt/.json``."""
    torch.set_num_threads(1)
    torch.manual_seed(INIT_SEED)
    model = ScoreMLP(dim=2)
    data = DATASETS[data_name](3000, de.make_generator(DATA_SEED, shift=False))
    print(f"training {what} for {steps} steps")
    start = time.perf_counter()
    losses = fit(model, data, de.make_generator(TRAIN_SEED, shift=False))
    seconds = time.perf_counter() - start
    info = {"data": data_name, **extra, "steps": steps, "batch_size": 512, "lr": 1e-3,
            "train_points": 3000, "data_seed": DATA_SEED, "init_seed": INIT_SEED, "train_seed": TRAIN_SEED,
            "seconds": round(seconds, 1), "threads": 1, "torch": torch.__version__,
            "final_loss": round(float(losses[-1000:].mean()), 5),
            "loss_curve": [round(float(x), 5) for x in losses.reshape(-1, steps // 100).mean(1)] if steps >= 100 else []}
    out.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": model.state_dict()}, out / f"{stem}.pt")
    (out / f"{stem}.json").write_text(json.dumps(info, indent=1) + "\n")
    print(f"  done in {seconds:.0f} s, final loss {info['final_loss']}")
    return info


def train_one(data_name: str, schedule: str, steps: int, out: Path) -> dict:
    sde = paper_sde(schedule)
    return _train(data_name, f"{data_name}_{schedule}", steps, out, f"{data_name} / {schedule}",
                  lambda model, data, gen: train_dsm(model, data, sde, steps, batch_size=512, lr=1e-3, generator=gen,
                                                     log_every=1000),
                  {"schedule": schedule})


def train_flow(data_name: str, steps: int, out: Path) -> dict:
    path = flow_path()
    return _train(data_name, f"{data_name}_flow", steps, out, f"the flow-matching model on {data_name} ({path!r})",
                  lambda model, data, gen: train_flow_matching(model, data, path, steps, batch_size=512, lr=1e-3,
                                                               generator=gen, log_every=1000),
                  {"path": "linear", "T": path.T, "t_min": path.t_min, "loss": "flow matching"})


def main():
    names = [f"{d}_{s}" for d in DATA_NAMES for s in SCHEDULE_NAMES]
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--only", nargs="*", choices=names, default=names)
    ap.add_argument("--steps", type=int, default=80_000)
    ap.add_argument("--out", type=Path, default=WEIGHTS)
    ap.add_argument("--flow", choices=DATA_NAMES, help="train the flow-matching model on this data set instead")
    args = ap.parse_args()
    if args.flow:
        train_flow(args.flow, args.steps, args.out)
        return
    for name in args.only:
        data_name, schedule = name.rsplit("_", 1)
        train_one(data_name, schedule, args.steps, args.out)


if __name__ == "__main__":
    main()
