"""Which initialisation and which time draw should the shipped models use, and how much does a retraining move the
NLL? Evidence for the training recipe (issue: the 25 Gaussians / cosine NLL sits 0.09 nats from the paper's).

For each configuration -- the initialisation (PyTorch's default or Flax's, the paper's) and the draw of t (uniform on
[t_min, T], or on the paper's 1000-point grid) -- this trains R replicates of all four models with the paper's recipe
(80 000 steps; replicate r uses data seed 2024 + r, initial weights from seed r, batches from seed 1 + r: a fresh
training set and training run, as each run of the paper's unseeded code is), then measures on Table 1's 1000 test
points (seed 5, `benchmarks/wkb.py`):

* the probability-flow NLL (`log_likelihood`, exact divergence) and its standard error over the test points;
* the DSM loss on 100 000 fixed (x0, t, z) (the same for every model, so differences are paired);
* the final training loss.

The spread of the NLL over replicates is the part of the model-to-model difference that the test points' standard
error does not contain: the paper's table comes from one training run, so a comparison with it must add that spread.
Writes `diffedu/weights/training_choices.json` (read by Chapter 4).

Run: .venv/bin/python benchmarks/training_choices.py [--replicates 3] [--steps 80000] [--workers 2]
     (about 45 minutes on two cores for the three default configurations)
"""

import argparse
import json
import math
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch

import diffedu as de
from diffedu.data import DATASETS
from diffedu.likelihood import log_likelihood
from diffedu.nets import DATA_NAMES, SCHEDULE_NAMES, ScoreMLP, paper_sde
from diffedu.train import dsm_loss, train_dsm_many

OUT = Path(de.__file__).resolve().parent / "weights" / "training_choices.json"
TEST_SEED, VALID_SEED = 5, 77
CONFIGS = {"torch": ("torch", None), "flax": ("flax", None), "flax+grid": ("flax", 1000), "torch+grid": ("torch", 1000)}
COMBOS = [(d, s) for d in DATA_NAMES for s in SCHEDULE_NAMES]


def job(config: str, replicate: int, steps: int) -> list:
    """Train the four models of one replicate of one configuration together; their NLLs and losses."""
    torch.set_num_threads(1)
    init, t_grid = CONFIGS[config]
    models, data, sdes = [], [], []
    for data_name, schedule in COMBOS:
        torch.manual_seed(replicate)
        models.append(ScoreMLP(2, init=init))
        data.append(DATASETS[data_name](3000, de.make_generator(2024 + replicate, shift=False)))
        sdes.append(paper_sde(schedule))
    start = time.perf_counter()
    losses = train_dsm_many(models, data, sdes, steps, batch_size=512, lr=1e-3, t_grid=t_grid,
                            generators=[de.make_generator(1 + replicate, shift=False) for _ in COMBOS], progress=False)
    seconds = time.perf_counter() - start
    rows = []
    for (data_name, schedule), model, sde, loss in zip(COMBOS, models, sdes, losses):
        model.eval()
        for p in model.parameters():
            p.requires_grad_(False)
        x = DATASETS[data_name](1000, de.make_generator(TEST_SEED, shift=False), dtype=torch.float64)
        r = log_likelihood(sde, model, x)
        gen = de.make_generator(VALID_SEED, shift=False)
        xv = DATASETS[data_name](100_000, gen)
        tv = sde.t_min + (sde.T - sde.t_min) * torch.rand(100_000, generator=gen, dtype=torch.float64)
        zv = de.randn(xv.shape, generator=gen)
        with torch.no_grad():
            valid = float(dsm_loss(model, xv, sde, tv, zv))
        rows.append(dict(config=config, replicate=replicate, data=data_name, schedule=schedule, nll=r.nll,
                         nll_se=r.nll_se, excluded=int(r.excluded.sum()), valid_loss=valid,
                         final_loss=float(loss[-1000:].mean()), seconds=round(seconds, 1)))
    print(f"{config} replicate {replicate}: " + ", ".join(f"{row['data']}/{row['schedule']} {row['nll']:.3f}"
                                                         for row in rows) + f"  ({seconds:.0f} s)", flush=True)
    return rows


def summary(rows: list) -> dict:
    """Per configuration and model: mean and spread over replicates of the NLL and the validation loss."""
    out = {}
    for config in dict.fromkeys(r["config"] for r in rows):
        for data_name, schedule in COMBOS:
            sel = [r for r in rows if r["config"] == config and r["data"] == data_name and r["schedule"] == schedule]
            nll = [r["nll"] for r in sel]
            valid = [r["valid_loss"] for r in sel]
            out[f"{config}|{data_name}|{schedule}"] = dict(
                replicates=len(sel), nll_mean=statistics.fmean(nll), nll_sd=statistics.stdev(nll) if len(nll) > 1 else None,
                nll_se_test=statistics.fmean(r["nll_se"] for r in sel), valid_mean=statistics.fmean(valid),
                valid_sd=statistics.stdev(valid) if len(valid) > 1 else None)
    for data_name, schedule in COMBOS:       # the training spread, pooled over the configurations (within each)
        groups = [[r["nll"] for r in rows if r["config"] == c and r["data"] == data_name and r["schedule"] == schedule]
                  for c in dict.fromkeys(r["config"] for r in rows)]
        dof = sum(len(g) - 1 for g in groups)
        ss = sum(sum((v - statistics.fmean(g)) ** 2 for v in g) for g in groups if len(g) > 1)
        out[f"pooled|{data_name}|{schedule}"] = dict(runs=sum(len(g) for g in groups), dof=dof,
                                                    nll_sd=math.sqrt(ss / dof) if dof else None)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--configs", nargs="*", choices=list(CONFIGS), default=["torch", "flax", "flax+grid"])
    ap.add_argument("--replicates", type=int, default=3)
    ap.add_argument("--steps", type=int, default=80_000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--summarize", action="store_true", help="recompute the summary of the rows in --out, no training")
    args = ap.parse_args()
    if args.summarize:
        result = json.loads(args.out.read_text())
        result["summary"] = summary(result["rows"])
    else:
        start = time.perf_counter()
        jobs = [(c, r, args.steps) for r in range(args.replicates) for c in args.configs]
        with ProcessPoolExecutor(args.workers) as pool:
            rows = [row for result in pool.map(job, *zip(*jobs)) for row in result]
        result = {"steps": args.steps, "replicates": args.replicates, "test_seed": TEST_SEED, "valid_seed": VALID_SEED,
                  "seconds": round(time.perf_counter() - start), "workers": args.workers, "torch": torch.__version__,
                  "rows": rows, "summary": summary(rows)}
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    for key, v in result["summary"].items():
        if key.startswith("pooled"):
            print(f"{key:<36} training spread (s.d. of the NLL over runs, pooled, {v['dof']} d.o.f.) {v['nll_sd']:.3f}")
            continue
        print(f"{key:<36} NLL {v['nll_mean']:7.3f} (s.d. over replicates {v['nll_sd'] or 0:.3f}, test s.e. "
              f"{v['nll_se_test']:.3f})   valid loss {v['valid_mean']:.4f} (s.d. {v['valid_sd'] or 0:.4f})")
    print(f"wrote {args.out} in {result['seconds']} s")


if __name__ == "__main__":
    main()
