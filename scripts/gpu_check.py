"""One command for a machine with a GPU: the unit tests and every chapter on CUDA, and CPU-vs-CUDA numbers.

    make gpu-check                     # on the GPU machine: python3 (with a CUDA build of torch), nothing to install
    python3 scripts/gpu_check.py --only numbers --devices cpu cpu   # a dry run of the comparison on a CPU

Three steps, each printed as a table, and the exit status is non-zero if any fails:

1. **unit tests** of the package with ``DIFFEDU_DEVICE=cuda`` (the modules that need only torch,
   numpy and matplotlib; the tests of the book build, the wheel and the browser stay on the CPU CI);
2. **notebooks**: every chapter's code cells executed in order in one namespace, as a kernel would,
   with ``DIFFEDU_DEVICE=cuda`` and ``DIFFEDU_STATIC=1`` (so no Jupyter kernel or ipywidgets is
   needed there); every check cell is an ``assert``, so a chapter that runs through passes;
3. **numbers**: a fixed set of results computed on both devices in this process. Random numbers are
   drawn on the CPU from seeded generators and moved to the device (``diffedu.device.randn``), so both
   devices see the same noise and differ only by floating-point rounding; each row has a tolerance.

It needs no network: on the lent machines ``python3`` already holds PyTorch, pytest and matplotlib,
and the repository is imported from its working tree.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: unit-test modules that need only what the GPU image has (torch, numpy, matplotlib, pytest)
UNIT_TESTS = ["test_checks.py", "test_data.py", "test_device.py", "test_fokker_planck.py", "test_likelihood.py",
              "test_nets_train.py", "test_path_integral.py", "test_samplers.py", "test_schedules.py", "test_sde.py",
              "test_solvers.py", "test_stats.py", "test_wkb.py", "test_api.py"]


def _env(device: str) -> dict:
    env = dict(os.environ, DIFFEDU_DEVICE=device, DIFFEDU_STATIC="1", MPLBACKEND="Agg", PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.pop("DIFFEDU_FRAMES_DIR", None)
    return env


def unit_tests(device: str) -> list[tuple[str, bool, str]]:
    files = [str(ROOT / "tests" / f) for f in UNIT_TESTS if (ROOT / "tests" / f).exists()]
    t0 = time.time()
    out = subprocess.run([sys.executable, "-m", "pytest", *files, "-q", "-p", "no:cacheprovider", "-m", "not site and not lab and not slow"],
                         cwd=ROOT, env=_env(device), capture_output=True, text=True)
    last = (out.stdout.strip().splitlines() or ["(no output)"])[-1]
    if out.returncode != 0:
        print(out.stdout[-6000:], out.stderr[-2000:], sep="\n")
    return [("unit tests", out.returncode == 0, f"{last} ({time.time() - t0:.0f} s)")]


_RUNNER = r"""
import json, sys, time, traceback
import matplotlib
matplotlib.use("Agg")
cells = json.load(open(sys.argv[1]))["cells"]
ns = {"__name__": "__main__"}
t0 = time.time()
for i, cell in enumerate(cells):
    if cell["cell_type"] != "code":
        continue
    src = "\n".join(l for l in "".join(cell["source"]).splitlines() if not l.lstrip().startswith(("%", "!")))
    try:
        exec(compile(src, f"cell {i}", "exec"), ns)
    except Exception:
        traceback.print_exc()
        print(f"FAILED in cell {i}")
        sys.exit(1)
    finally:
        import matplotlib.pyplot as plt
        plt.close("all")
print(f"ran in {time.time() - t0:.1f} s")
"""


def notebooks(device: str) -> list[tuple[str, bool, str]]:
    rows = []
    for path in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        out = subprocess.run([sys.executable, "-c", _RUNNER, path.name], cwd=path.parent, env=_env(device),
                             capture_output=True, text=True)
        ok = out.returncode == 0
        lines = (out.stdout + out.stderr).strip().splitlines()
        if not ok:
            print(f"--- {path.name} on {device}:", *lines[-25:], sep="\n")
        rows.append((path.name, ok, lines[-1] if lines else ""))
    return rows


def numbers(devices: tuple[str, str]) -> list[tuple[str, bool, str]]:
    """The same computations on two devices; each row: (name, |difference| <= tolerance, details)."""
    sys.path.insert(0, str(ROOT))
    import torch
    import diffedu as de
    from diffedu.likelihood import log_likelihood
    from diffedu.wkb import first_order_correction

    def em_moments(dev):
        sde = de.VPSDE(de.Linear(0.1, 20.0))
        mix = de.GaussianMixture([0.3, 0.7], [[-1.5], [1.0]], [0.3, 0.2])
        x0 = mix.sample(20000, de.make_generator(0), dtype=torch.float64, device=dev)
        x = de.euler_maruyama(sde, x0, de.time_grid(0.0, 0.5, 200), generator=de.make_generator(1))
        return torch.stack([x.mean(), x.var()]).cpu()

    def model(dev):
        return de.load_pretrained("swiss_roll", "simple", device=dev)

    def samples(dev):
        m = model(dev)
        return de.sample(m.sde, m, 500, hbar=1.0, steps=100, generator=de.make_generator(2), device=dev).cpu()

    def pf_samples(dev):
        m = model(dev)
        return de.sample(m.sde, m, 500, hbar=0.0, steps=100, generator=de.make_generator(3), device=dev).cpu()

    def likelihood(dev):
        m = model(dev)
        x = de.swiss_roll(10, de.make_generator(4), dtype=torch.float64).to(dev)
        return log_likelihood(m.sde, m, x).logp.cpu()

    def wkb(dev):
        m = model(dev)
        x = de.swiss_roll(3, de.make_generator(5), dtype=torch.float64).to(dev)
        return first_order_correction(m.sde, m, x).correction.cpu()

    #: (name, function, tolerance on max |a - b| relative to 1 + max |a|)
    cases = [("EM, VP SDE, 20 000 paths, float64: mean, var", em_moments, 1e-10),
             ("reverse SDE samples, 500 x 100 steps, float32", samples, 1e-3),
             ("probability-flow samples, 500 x 100 steps, float32", pf_samples, 1e-3),
             ("log-likelihood, 10 points, float64", likelihood, 1e-6),
             ("first-order correction, 3 points, float64", wkb, 1e-5)]
    rows = []
    for name, fn, tol in cases:
        try:
            t0 = time.time()
            a = fn(torch.device(devices[0]))
            t1 = time.time()
            b = fn(torch.device(devices[1]))
            t2 = time.time()
            diff = float((a.double() - b.double()).abs().max())
            scale = 1.0 + float(a.double().abs().max())
            ok = math.isfinite(diff) and diff <= tol * scale
            rows.append((name, ok, f"max |{devices[0]} - {devices[1]}| = {diff:.1e} (tolerance {tol * scale:.1e}); "
                                   f"{t1 - t0:.1f} s / {t2 - t1:.1f} s"))
        except Exception as err:
            traceback.print_exc()
            rows.append((name, False, f"{type(err).__name__}: {err}"))
    return rows


def _print(title: str, rows) -> None:
    print(f"\n## {title}\n")
    width = max(len(r[0]) for r in rows)
    for name, ok, detail in rows:
        print(f"{'ok  ' if ok else 'FAIL'}  {name:<{width}}  {detail}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", choices=["unit", "notebooks", "numbers"], action="append",
                    help="run only these steps (repeatable); default: all three")
    ap.add_argument("--devices", nargs=2, default=["cpu", "cuda"], metavar=("A", "B"),
                    help="the two devices compared in the numbers step (default: cpu cuda)")
    args = ap.parse_args(argv)
    steps = args.only or ["unit", "notebooks", "numbers"]
    import torch

    wants_cuda = "cuda" in args.devices or steps != ["numbers"]
    info = {"torch": torch.__version__, "cuda available": torch.cuda.is_available(),
            "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}
    print("environment:", json.dumps(info))
    if wants_cuda and not torch.cuda.is_available():
        print("gpu-check: torch sees no CUDA device here; run it on a GPU machine (or --only numbers --devices cpu cpu)",
              file=sys.stderr)
        return 2
    rows_all = []
    if "unit" in steps:
        rows = unit_tests("cuda")
        _print("unit tests on cuda", rows)
        rows_all += rows
    if "notebooks" in steps:
        rows = notebooks("cuda")
        _print("notebooks on cuda (every check cell an assert)", rows)
        rows_all += rows
    if "numbers" in steps:
        rows = numbers(tuple(args.devices))
        _print(f"the same numbers on {args.devices[0]} and {args.devices[1]}", rows)
        rows_all += rows
    failed = [r[0] for r in rows_all if not r[1]]
    print(f"\ngpu-check: {len(rows_all) - len(failed)} of {len(rows_all)} passed" + (f"; failed: {failed}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
