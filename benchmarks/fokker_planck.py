"""Speed and accuracy of diffedu.fokker_planck.solve (a benchmark, not a test).

Targets (issue: Chapter 2): 1-D grid of 1000 cells over the VP SDE on [0, 1] in < 1 s;
2-D 256 x 256 in < 30 s on a CPU.  Run: .venv/bin/python benchmarks/fokker_planck.py
"""

import time

import torch

import diffedu as de
from diffedu.fokker_planck import Grid, solve


def run(grid, mix, sde, repeats=3):
    p0 = grid.density(mix.log_prob)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        r = solve(sde, p0, grid, [0.0, 1.0])
        best = min(best, time.perf_counter() - t0)
    err = grid.l1(r.p[-1], grid.density(lambda x: mix.log_prob(x, 1.0, sde)))
    return best, r.steps, err, r.mass_drift


def main():
    torch.set_num_threads(max(1, torch.get_num_threads()))
    sde = de.VPSDE(de.Linear(0.1, 20.0))
    mix1 = de.GaussianMixture([0.3, 0.7], [[-1.5], [1.0]], [0.3, 0.2])
    mix2 = de.GaussianMixture([0.5, 0.3, 0.2], [[-1.0, -0.5], [1.0, 0.8], [0.2, 1.5]],
                              [[0.3, 0.3], [0.25, 0.25], [0.4, 0.15]])
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device cpu")
    for name, grid, mix in [("1-D, 1000 cells", Grid(-6.0, 6.0, 1000), mix1),
                            ("2-D, 256 x 256", Grid((-5.0, -5.0), (5.0, 5.0), (256, 256)), mix2)]:
        secs, steps, err, mass = run(grid, mix, sde)
        print(f"{name:>16}: {secs:6.2f} s (best of 3), {steps} steps, L1 error at t = 1: {err:.1e}, "
              f"mass drift {mass:.1e}")


if __name__ == "__main__":
    main()
