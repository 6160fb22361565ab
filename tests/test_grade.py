"""The batch grader (scripts/grade.py) and the instructor's hidden checks (grading/hidden_checks.py).

The slow test walks the instructor's path: a folder of synthetic Chapter 1 submissions made from the book's
notebooks (all solutions; the unmodified student edition; one wrong answer plus a cell that deletes the files of
its working directory; an infinite loop; malformed JSON; Chapter 2's notebook under Chapter 1's name) is graded by
`scripts/grade.py` as `make grade` runs it, and grades.csv, the feedback files and the untouched submissions are
read back. The fast tests run the hidden checks in-process on right and wrong answers.
"""

import ast
import csv
import hashlib
import importlib.util
import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import diffedu as de

ROOT = Path(__file__).resolve().parent.parent
CHAPTERS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def _load(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module                    # dataclasses look their module up while it is executed
    spec.loader.exec_module(module)
    return module


hidden = _load(ROOT / "grading" / "hidden_checks.py", "hidden_checks_under_test")
grade = _load(ROOT / "scripts" / "grade.py", "grade_under_test")
make_student = _load(ROOT / "scripts" / "make_student.py", "make_student_for_grade")
EX = grade.Exercises()


def _src(cell):
    s = cell["source"]
    return "".join(s) if isinstance(s, list) else s


def _run(ns, label, salt=0):
    return hidden.grade(label, ns, salt)


# --- the grader and the book agree ------------------------------------------------------------------
def test_every_exercise_has_a_hidden_check_and_no_other():
    assert set(hidden.EXERCISES) == set(EX.number), "add a hidden check to grading/hidden_checks.py for every exercise"
    assert len(EX.number) == 39


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_student_edition_headings_and_names_agree_with_the_grader(path):
    nb = json.loads(path.read_text())
    student = make_student.student_notebook(nb, path.name)
    chapter = int(path.name[:2])
    for form in (nb, student):
        found = [lab for _, lab in EX.headings(form["cells"])]
        assert found == EX.of_chapter(chapter), f"{path.name}: exercises found {found}"
    spans = grade.spans(student["cells"], EX.headings(student["cells"]))
    for label, (start, end) in spans.items():
        statement = _src(student["cells"][start])
        for name in hidden.EXERCISES[label][1]:
            assert f"`{name}" in statement, f"{label}: the statement never names `{name}`, which the grader reads"
        stubs = [c for c in student["cells"][start:end] if c["cell_type"] == "code" and grade._is_stub(_src(c))]
        assert len(stubs) == 1, f"{label}: one stub per exercise span, found {len(stubs)}"


# Names an exercise's check reads that the chapter's own (non-solution) cells may define: the input the statement
# hands the student (Chapter 2's `grid` is the grid the exercise asks them to use).
INPUT_NAMES = {("02_fokker_planck.ipynb", "grid")}


def _bound_names(code):
    """Names a code cell binds at module level (assignments, loops, defs, imports, with-as, walrus)."""
    names = set()
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.alias):
            names.add((node.asname or node.name).split(".")[0])
    return names


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_no_cell_but_a_solution_defines_a_name_the_grader_reads(path):
    """An untouched student notebook must be graded 'not attempted': if a section of the chapter defines a name an
    exercise's check reads (Chapter 1's 4000-path `x_em` once did), the grader grades that object instead."""
    nb = json.loads(path.read_text())
    chapter = int(path.name[:2])
    read = {name: label for label in EX.of_chapter(chapter) for name in hidden.EXERCISES[label][1]}
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] != "code" or "solution" in cell.get("metadata", {}).get("tags", []):
            continue
        code = "\n".join(line for line in _src(cell).splitlines() if not line.lstrip().startswith(("%", "!")))
        clash = {n for n in _bound_names(code) & set(read) if (path.name, n) not in INPUT_NAMES}
        assert not clash, f"{path.name} cell {i} defines {sorted(clash)}, read by {[read[n] for n in sorted(clash)]}"


def test_empty_folders_and_two_notebooks_of_one_chapter(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "dup").mkdir()
    for name in ("01_a.ipynb", "01_b.ipynb"):
        (tmp_path / "dup" / name).write_text("{}")
    pairs = grade.submissions(tmp_path)
    assert ("empty", None) in pairs and sum(s == "dup" for s, _ in pairs) == 2
    rows = [grade.Row("dup", 1, "1.1", "ex-ito-w3", p, 1, "r") for p in (0, 1)]
    kept, notes = grade.keep_best(rows)
    assert [r.points for r in kept] == [1] and notes and "more than one notebook" in notes[0]


def test_student_zip_holds_no_hidden_check(tmp_path):
    subprocess.run([sys.executable, str(ROOT / "scripts" / "make_student.py"), "--out", str(tmp_path)], check=True,
                   capture_output=True)
    import zipfile
    with zipfile.ZipFile(tmp_path / make_student.ZIP_NAME) as z:
        names = z.namelist()
        assert names and all(n.endswith((".ipynb", ".md")) for n in names), names
        assert not any("hidden_checks" in z.read(n).decode() for n in names)


# --- hidden checks on right and wrong answers, in-process --------------------------------------------
def _vp_v(t, v0=0.04):
    B = 0.1 * t + 9.95 * t * t
    return math.exp(-B) * v0 + 1 - math.exp(-B)


def _heun(x0, dw, dt, mu, sigma, ito=False):
    x = x0
    for d in dw:
        drift = (lambda y: mu * y - (0.5 * sigma**2 * y if ito else 0))
        pred = x + drift(x) * dt + sigma * x * d
        x = x + 0.5 * (drift(x) + drift(pred)) * dt + 0.5 * sigma * (x + pred) * d
    return x


def _upwind(p, v, D, h, central=False):
    if central:
        J = v * 0.5 * (p[:-1] + p[1:]) - D * (p[1:] - p[:-1]) / h
    else:
        J = torch.relu(v) * p[:-1] - torch.relu(-v) * p[1:] - D * (p[1:] - p[:-1]) / h
    J = torch.cat([J.new_zeros(1), J, J.new_zeros(1)])
    return -(J[1:] - J[:-1]) / h


def _drift(x, t, sign=1.0):
    beta = 0.1 + 19.9 * t
    return beta * x * (sign / _vp_v(t) - 0.5)


def _logq(x0, logdet=True):
    r = _vp_v(1.0) / _vp_v(0.01)
    return -0.5 * x0**2 * r - 0.5 * math.log(2 * math.pi) + (0.5 * math.log(r) if logdet else 0)


def _ito_sums(seed, copy=False):
    g = torch.Generator().manual_seed(seed)
    M, N = 2000, 2**12
    dw = torch.randn(N, M, generator=g, dtype=torch.float64) / math.sqrt(N)
    w = torch.cat([torch.zeros(1, M, dtype=torch.float64), dw.cumsum(0)])
    lhs = (w[:-1] ** 2 * dw).sum(0)
    rhs = lhs.clone() if copy else w[-1] ** 3 / 3 - (w[:-1] / N).sum(0)
    return lhs, rhs


def _probes(seed, gaussian=False):
    A = torch.tensor([[1.0, 2.0, 0.0], [0.5, -1.0, 1.0], [0.0, -3.0, 2.0]], dtype=torch.float64)
    g = torch.Generator().manual_seed(seed)
    eps = (torch.randn(100000, 3, generator=g, dtype=torch.float64) if gaussian else
           torch.randint(0, 2, (100000, 3), generator=g).double() * 2 - 1)
    return ((eps @ A) * eps).sum(1)


def _rel_errors(seed, minus_one=True):
    z = torch.randn(400, 20000, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return (z**2).mean(1) - (1.0 if minus_one else 0.0)


def _bridge_cov(v0, v1, eps, naive=False):
    if naive:
        return (-eps + math.sqrt(eps * eps + 4 * v0 * v1)) / 2
    return 2 * v0 * v1 / (eps + math.sqrt(eps * eps + 4 * v0 * v1))


def _sinkhorn(mu, nu, x, eps, sweeps, kernel_eps=None):
    K = torch.exp(-(x[None, :] - x[:, None]) ** 2 / (2 * (kernel_eps or eps)))
    b = torch.ones_like(nu)
    for _ in range(sweeps):
        a = mu / (K @ b)
        b = nu / (K.T @ a)
    return a[:, None] * K * b[None, :]


def _em_cov(A, G, dt, variant="right"):
    """Euler-Maruyama's stationary covariance, S = B S B^T + dt G G^T with B = I + dt A, by a Kronecker solve;
    variant: "continuous" (the SDE's A S + S A^T + G G^T = 0), "B^T" (S = B^T S B + ...), "no dt" (S = B S B^T + G G^T)."""
    d = A.shape[0]
    eye = torch.eye(d, dtype=A.dtype)
    if variant == "continuous":
        K = torch.kron(A.contiguous(), eye) + torch.kron(eye, A.contiguous())
        return torch.linalg.solve(K, -(G @ G.T).reshape(d * d)).reshape(d, d)
    B = (eye + dt * A).contiguous()
    K = torch.kron(B.T.contiguous(), B.T.contiguous()) if variant == "B^T" else torch.kron(B, B)
    rhs = (G @ G.T).reshape(d * d) * (1.0 if variant == "no dt" else dt)
    return torch.linalg.solve(torch.eye(d * d, dtype=A.dtype) - K, rhs).reshape(d, d)


_A_LYAP = torch.tensor([[-1.0, 2.0], [-1.0, -0.5]], dtype=torch.float64)
_G_LYAP = torch.tensor([[1.0, 0.0], [0.6, 0.5]], dtype=torch.float64)
_J = torch.tensor([[0.0, -1.0], [1.0, 0.0]], dtype=torch.float64)


def _rot_answer(seed, c=-0.5, noise="right"):
    """ex-strat-to-ito's names from 20 000 Euler-Maruyama paths of dx = c x dt + (noise) dw from (1, 0), dt = 0.01:
    c = -1/2 with noise J x and one scalar dw is the right answer; noise="pair" gives each coordinate its own dw,
    noise="x" uses x dw (no turn), noise="exact" replaces the scheme by the exact rotation by w_T."""
    g = torch.Generator().manual_seed(seed)
    x = torch.tensor([1.0, 0.0], dtype=torch.float64).repeat(20000, 1)
    if noise == "exact":
        w = torch.randn(20000, generator=g, dtype=torch.float64)
        x = torch.stack([torch.cos(w), torch.sin(w)], 1)
    else:
        for _ in range(100):
            dw = torch.randn(20000, 2 if noise == "pair" else 1, generator=g, dtype=torch.float64) * 0.1
            x = x + c * x * 0.01 + (x if noise == "x" else x @ _J.T) * dw
    return {"ito_drift": lambda y: -0.5 * y, "x_T": x, "mean_T": x.mean(0)}


def _fk(x, T, theta, sigma, c, steps=None, drift=1.0):
    """E[exp(-c int_0^T x_s^2 ds) | x_0 = x] for dx = -theta x dt + sigma dw: the closed form, or (steps given) RK4 on
    a' = c - 2 drift theta a - 2 sigma^2 a^2, b' = sigma^2 a; drift = -1 flips the sign of the drift term."""
    if steps is None:
        gam = math.sqrt(theta**2 + 2 * sigma**2 * c)
        th = math.tanh(gam * T)
        a = c * th / (gam + theta * th)
        b = 0.5 * math.log(math.cosh(gam * T) * (1 + theta / gam * th)) - 0.5 * theta * T
        return torch.exp(-a * x**2 - b)
    a = b = 0.0
    h = T / steps
    f = lambda a: (c - 2 * drift * theta * a - 2 * sigma**2 * a * a, sigma**2 * a)
    for _ in range(steps):
        k1 = f(a)
        k2 = f(a + h / 2 * k1[0])
        k3 = f(a + h / 2 * k2[0])
        k4 = f(a + h * k3[0])
        a, b = a + h / 6 * (k1[0] + 2 * k2[0] + 2 * k3[0] + k4[0]), b + h / 6 * (k1[1] + 2 * k2[1] + 2 * k3[1] + k4[1])
    return torch.exp(-a * x**2 - b)


_RATE_FK = (math.sqrt(5.0) - 1) / 2


def _power_tails(x, theta, s0, s1, lam, ignore_lam=False, dtype=torch.float64):
    """The normalised stationary density (s0^2 + s1^2 x^2)^(-nu), nu = 1 - lam + theta / s1^2 (nu = 1 + theta / s1^2
    with ignore_lam); dtype=torch.float32 computes it in single precision."""
    nu = 1 + theta / s1**2 - (0.0 if ignore_lam else lam)
    log_z = math.log(s0 / s1) + 0.5 * math.log(math.pi) + math.lgamma(nu - 0.5) - math.lgamma(nu)
    return torch.exp(-nu * torch.log1p((s1 * x.to(dtype) / s0) ** 2) - log_z).double()


_P_FAR = 1 - (2 / math.pi) * (math.atan(10.0) + 10.0 / 101.0)


def _ancestral(a, s, a2, s2, ddim=False):
    if ddim:                                       # DDIM's eta = 1 variance: right on the VP path only
        return (s2**2 / s**2) * (1 - a**2 / a2**2)
    return s2**2 * (s**2 - (a / a2) ** 2 * s2**2) / s**2


RIGHT_AND_WRONG = [
    ("ex-linear-velocity", {"linear_velocity": lambda x, t, s: -x / (1 - t) - t / (1 - t) * s},
     {"linear_velocity": lambda x, t, s: -x / (1 - t) - 2 * t / (1 - t) * s}),
    ("ex-bridge-covariance", {"bridge_cov": _bridge_cov}, {"bridge_cov": lambda *a: _bridge_cov(*a, naive=True)}),
    ("ex-sinkhorn-plain", {"sinkhorn_plain": _sinkhorn},
     {"sinkhorn_plain": lambda mu, nu, x, eps, sweeps: _sinkhorn(mu, nu, x, eps, sweeps, kernel_eps=2 * eps)}),
    ("ex-ancestral-step", {"ancestral_var": _ancestral, "ratio_linear": 1.0},
     {"ancestral_var": lambda *a: _ancestral(*a, ddim=True), "ratio_linear": 1.0}),
    ("ex-heun-strat", {"heun_plain": _heun}, {"heun_plain": lambda *a: _heun(*a, ito=True)}),
    ("ex-fv-mass", {"fv_rhs": _upwind}, {"fv_rhs": lambda *a: _upwind(*a, central=True)}),
    ("ex-reverse-gaussian", {"reverse_drift": _drift}, {"reverse_drift": lambda x, t: _drift(x, t, -1.0)}),
    ("ex-likelihood-gaussian", {"logq": _logq}, {"logq": lambda x: _logq(x, logdet=False)}),
    ("ex-ve-variance", {"t_half": math.log(math.sqrt(1 + 1e-4) / 0.01) / math.log(5000)},
     {"t_half": 2 * math.log(math.sqrt(1 + 1e-4) / 0.01) / math.log(5000)}),
    ("ex-hbar-coefficient", {"hbar_star": 1.0005}, {"hbar_star": 1.01}),          # LBFGS in float32 is 5e-4 off
    ("ex-subvp-gap", {"t_star": float(torch.tensor((-0.1 + math.sqrt(0.01 + 4 * 9.95 * math.log(2))) / 19.9,
                                                    dtype=torch.float32))}, {"t_star": 0.5}),
    ("ex-perrin-budget", {"K_needed": 20000, "rel_errors": _rel_errors(1)},
     {"K_needed": 20000, "rel_errors": _rel_errors(1, minus_one=False)}),
    ("ex-lyapunov-2d", {"em_stationary_cov": _em_cov, "Sigma_dt": _em_cov(_A_LYAP, _G_LYAP, 0.1)},
     {"em_stationary_cov": lambda A, G, dt: _em_cov(A, G, dt, "B^T"), "Sigma_dt": _em_cov(_A_LYAP, _G_LYAP, 0.1)}),
    ("ex-strat-to-ito", _rot_answer(1), dict(_rot_answer(1), ito_drift=lambda x: 0.5 * x)),
    ("ex-feynman-kac-ou", {"fk_quadratic": _fk, "rate_fk": _RATE_FK},
     {"fk_quadratic": lambda *a: _fk(*a, steps=400, drift=-1.0), "rate_fk": _RATE_FK}),
    ("ex-multiplicative-tails", {"stationary_density": _power_tails, "p_far": _P_FAR},
     {"stationary_density": lambda *a: _power_tails(*a, ignore_lam=True), "p_far": _P_FAR}),
]


@pytest.mark.parametrize("label, right, wrong", RIGHT_AND_WRONG, ids=[r[0] for r in RIGHT_AND_WRONG])
@pytest.mark.parametrize("salt", [0, 7, 2027])
def test_hidden_check_accepts_the_right_answer_and_rejects_a_wrong_one(label, right, wrong, salt):
    ok = _run(dict(right), label, salt)
    assert ok["passed"], ok["reason"]
    bad = _run(dict(wrong), label, salt)
    assert not bad["passed"] and bad["reason"]


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_monte_carlo_hidden_checks_hold_for_any_seed_and_catch_what_the_public_check_misses(seed):
    lhs, rhs = _ito_sums(seed)
    assert _run({"lhs": lhs, "rhs": rhs}, "ex-ito-w3")["passed"]
    copied = _run(dict(zip(("lhs", "rhs"), _ito_sums(seed, copy=True))), "ex-ito-w3")
    assert not copied["passed"] and "copied" in copied["reason"]
    assert _run({"est": _probes(seed)}, "ex-hutchinson-variance")["passed"]
    assert "Rademacher" in _run({"est": _probes(seed, gaussian=True)}, "ex-hutchinson-variance")["reason"]
    x = torch.randn(20000, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    assert _run({"x_em": x * math.sqrt(2 / 3)}, "ex-em-stationary")["passed"]
    assert not _run({"x_em": x * math.sqrt(0.5)}, "ex-em-stationary")["passed"]        # the exact OU variance
    assert _run(_rot_answer(seed), "ex-strat-to-ito", seed)["passed"]
    ito_reading = _run(_rot_answer(seed, 0.0), "ex-strat-to-ito", seed)                # right drift, paths without it
    assert not ito_reading["passed"] and "average" in ito_reading["reason"]
    doubled = _run(_rot_answer(seed, -1.0), "ex-strat-to-ito", seed)
    assert not doubled["passed"] and "average" in doubled["reason"]
    for noise in ("pair", "x"):              # the right mean and E|x_T|^2, which the public check cannot tell apart
        r = _run(_rot_answer(seed, noise=noise), "ex-strat-to-ito", seed)
        assert not r["passed"] and "|x_T|^" in r["reason"], noise
    exact = _run(_rot_answer(seed, noise="exact"), "ex-strat-to-ito", seed)      # not Euler-Maruyama: |x_T| = 1
    assert not exact["passed"] and "|x_T|^4" in exact["reason"]
    right = _rot_answer(seed)
    r = _run(dict(right, mean_T=right["mean_T"] + torch.tensor([1e-3, 0.0], dtype=torch.float64)), "ex-strat-to-ito", seed)
    assert not r["passed"] and "not the mean of x_T" in r["reason"]


@pytest.mark.parametrize("salt", [0, 7, 2027, 31])
def test_em_stationary_cov_hidden_check_catches_what_a_fixed_size_check_may_miss(salt):
    """The grader calls em_stationary_cov on random stable A, G of other sizes and random stable steps: the continuous
    Lyapunov answer, a transposed B, a missing dt, a solver written for d = 2, one that uses G^T G and a float32 solve
    all fail, and so do a wrong Sigma_dt and a float32 one."""
    S = _em_cov(_A_LYAP, _G_LYAP, 0.1)
    assert _run({"em_stationary_cov": _em_cov, "Sigma_dt": S}, "ex-lyapunov-2d", salt)["passed"]
    wrong = {"continuous": lambda A, G, dt: _em_cov(A, G, dt, "continuous"),
             "B^T": lambda A, G, dt: _em_cov(A, G, dt, "B^T"),
             "no dt": lambda A, G, dt: _em_cov(A, G, dt, "no dt"),
             "d = 2 only": lambda A, G, dt: _em_cov(A[:2, :2].contiguous(), G[:2], dt),
             "G^T G": lambda A, G, dt: _em_cov(A, G.T.contiguous(), dt),
             "float32": lambda A, G, dt: _em_cov(A.float(), G.float(), dt)}
    for name, fn in wrong.items():
        r = _run({"em_stationary_cov": fn, "Sigma_dt": S}, "ex-lyapunov-2d", salt)
        assert not r["passed"] and "em_stationary_cov" in r["reason"], name
    for name, bad in {"continuous": _em_cov(_A_LYAP, _G_LYAP, 0.1, "continuous"),
                      "B^T": _em_cov(_A_LYAP, _G_LYAP, 0.1, "B^T"),
                      "no dt": _em_cov(_A_LYAP, _G_LYAP, 0.1, "no dt"),
                      "float32": _em_cov(_A_LYAP.float(), _G_LYAP.float(), 0.1)}.items():
        r = _run({"em_stationary_cov": _em_cov, "Sigma_dt": bad}, "ex-lyapunov-2d", salt)
        assert not r["passed"] and "Sigma_dt" in r["reason"], name


@pytest.mark.parametrize("salt", [0, 7, 2027, 31])
def test_chapter2_hidden_checks_catch_what_the_public_checks_let_through(salt):
    """ex-feynman-kac-ou and ex-multiplicative-tails: the public checks compare with a grid solution (2e-5) and at a
    relative 1e-6 / 1e-5; the grader uses closed forms at random parameters and the 1e-8 the statements ask for. RK4 with
    400 steps passes both; RK4 with 40 steps, a float32 answer and six-digit numbers pass only the public checks."""
    from diffedu import checks
    assert _run({"fk_quadratic": lambda *a: _fk(*a, steps=400), "rate_fk": _RATE_FK}, "ex-feynman-kac-ou", salt)["passed"]
    for name, fn in {"RK4, 40 steps": lambda *a: _fk(*a, steps=40),
                     "float32": lambda x, *a: _fk(x.float(), *a).double()}.items():
        assert checks.check_fk_quadratic(fn, _RATE_FK), name
        r = _run({"fk_quadratic": fn, "rate_fk": _RATE_FK}, "ex-feynman-kac-ou", salt)
        assert not r["passed"] and "fk_quadratic differs" in r["reason"], name
    r = _run({"fk_quadratic": _fk, "rate_fk": float(f"{_RATE_FK:.6g}")}, "ex-feynman-kac-ou", salt)
    assert not r["passed"] and "rate_fk" in r["reason"]
    assert checks.check_multiplicative_tails(_power_tails, float(f"{_P_FAR:.6g}"))
    r = _run({"stationary_density": _power_tails, "p_far": float(f"{_P_FAR:.6g}")}, "ex-multiplicative-tails", salt)
    assert not r["passed"] and "p_far" in r["reason"]
    for name, fn in {"lam ignored": lambda *a: _power_tails(*a, ignore_lam=True),
                     "float32": lambda *a: _power_tails(*a, dtype=torch.float32)}.items():
        r = _run({"stationary_density": fn, "p_far": _P_FAR}, "ex-multiplicative-tails", salt)
        assert not r["passed"] and "stationary_density differs" in r["reason"], name


def test_hidden_check_reasons_for_missing_names_wrong_types_and_crashing_functions():
    r = _run({"lhs": torch.zeros(2000)}, "ex-ito-w3")
    assert not r["passed"] and "`rhs`" in r["reason"] and "not defined" in r["reason"]
    r = _run({"t_star": "0.25"}, "ex-subvp-gap")
    assert not r["passed"] and "`t_star` must be one finite real number" in r["reason"]
    r = _run({"x_end": torch.zeros(4, 1)}, "ex-pf-map")
    assert not r["passed"] and "shape (5, 1)" in r["reason"]

    def broken(x, t):
        raise ZeroDivisionError("oops")
    r = _run({"reverse_drift": broken}, "ex-reverse-gaussian")
    assert not r["passed"] and "ZeroDivisionError: oops" in r["reason"]


# --- the whole path: a folder of submissions through scripts/grade.py -------------------------------
def _filled(student_nb, instructor_nb, replace=None):
    """The student edition with every stub replaced by the instructor's solution (or by `replace[label]`)."""
    solutions = {c["id"]: _src(c) for c in instructor_nb["cells"] if "solution" in c.get("metadata", {}).get("tags", [])}
    nb = json.loads(json.dumps(student_nb))
    spans = grade.spans(nb["cells"], EX.headings(nb["cells"]))
    for label, (start, end) in spans.items():
        for cell in nb["cells"][start:end]:
            if "stub" in cell.get("metadata", {}).get("tags", []):
                cell["source"] = (replace or {}).get(label, solutions[cell["id"]])
    return nb


def _tree_digest(folder):
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    base = tmp_path_factory.mktemp("grading")
    subs, out = base / "submissions", base / "out"
    ch1, ch2 = CHAPTERS[0], CHAPTERS[1]
    inst1 = json.loads(ch1.read_text())
    stud1 = make_student.student_notebook(inst1, ch1.name)
    stud2 = make_student.student_notebook(json.loads(ch2.read_text()), ch2.name)
    wrong = next(_src(c) for c in inst1["cells"] if "solution" in c.get("metadata", {}).get("tags", [])
                 and "ou_ex" in _src(c)).replace("time_grid(0, 20.0, 40)", "time_grid(0, 20.0, 400)")
    carol = _filled(stud1, inst1, {"ex-em-stationary": wrong})
    # ordinary student edits: a heading of their own inside an exercise, an answer written in a new cell below a
    # stub left in place, and a cell that replaces sys.stdout (the hidden checks must still report)
    cells = carol["cells"]
    spans = grade.spans(cells, EX.headings(cells))
    s1, s4 = spans["ex-ito-w3"][0], spans["ex-perrin-budget"][0]
    k4 = next(i for i in range(s4, len(cells)) if "stub" in cells[i].get("metadata", {}).get("tags", []))
    answer4 = cells[k4]["source"]
    cells[k4] = dict(cells[k4], source="# YOUR CODE HERE\nraise NotImplementedError()")
    cells.insert(k4 + 1, {"cell_type": "code", "execution_count": None, "id": "mine4", "metadata": {}, "outputs": [],
                          "source": answer4})
    k1 = next(i for i in range(s1, len(cells)) if "stub" in cells[i].get("metadata", {}).get("tags", []))
    cells.insert(k1, {"cell_type": "markdown", "id": "myhead", "metadata": {},
                      "source": "### My answer to (b)\n\n**Exercise 1.1 (b)**: the sums below."})
    cells.insert(k1 + 2, {"cell_type": "code", "execution_count": None, "id": "quiet", "metadata": {}, "outputs": [],
                          "source": "import io, sys\nsys.stdout = io.StringIO()"})
    carol["cells"].append({"cell_type": "code", "execution_count": None, "id": "big", "metadata": {}, "outputs": [],
                           "source": "huge = torch.empty(6 * 2**30, dtype=torch.uint8)   # 6 GB > the 4 GB limit"})
    carol["cells"].append({"cell_type": "code", "execution_count": None, "id": "wipe", "metadata": {}, "outputs": [],
                           "source": "import os\nfor f in os.listdir('.'):\n    os.remove(f)\nprint(os.listdir('.'))"})
    submissions = {
        "alice": json.dumps(inst1),                                            # the book's own notebook: all solutions
        "bob": json.dumps(stud1),                                              # the student edition, untouched
        "carol": json.dumps(carol),                                            # one wrong answer, a cell wiping its cwd
        "dave": json.dumps(_filled(stud1, inst1, {"ex-heun-strat": "while True:\n    pass"})),  # an infinite loop
        "erin": '{"cells": [ {"cell_type": "code", ',                           # malformed JSON
        "frank": json.dumps(stud2),                                            # Chapter 2 under Chapter 1's name
    }
    for student, text in submissions.items():
        (subs / student).mkdir(parents=True)
        (subs / student / ch1.name).write_text(text)
    before = _tree_digest(subs)
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "grade.py"), str(subs), "--out", str(out),
                           "--timeout", "25", "--salt", "5", "--memory-gb", "4"], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(out / "grades.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return {"rows": rows, "out": out, "subs": subs, "before": before, "stdout": proc.stdout}


def _rows(graded, student):
    return {r["label"]: r for r in graded["rows"] if r["student"] == student}


@pytest.mark.slow
def test_grades_csv_has_one_row_per_student_and_exercise(graded):
    assert list(graded["rows"][0]) == ["student", "chapter", "exercise", "label", "points", "max_points", "reason"]
    labels = EX.of_chapter(1)
    for student in ("alice", "bob", "carol", "dave", "erin", "frank"):
        rows = _rows(graded, student)
        assert sorted(rows) == sorted(labels), student
        assert all(r["chapter"] == "1" and r["max_points"] == "1" for r in rows.values())


@pytest.mark.slow
def test_all_solutions_get_full_marks(graded):
    rows = _rows(graded, "alice")
    assert all(r["points"] == "1" and r["reason"].startswith("correct") for r in rows.values()), rows


@pytest.mark.slow
def test_untouched_student_edition_gets_zero_not_attempted(graded):
    rows = _rows(graded, "bob")
    assert all(r["points"] == "0" and r["reason"].startswith("not attempted") for r in rows.values()), rows


@pytest.mark.slow
def test_one_wrong_answer_loses_only_its_points_and_a_wiping_cell_harms_nothing(graded):
    rows = _rows(graded, "carol")
    assert rows["ex-em-stationary"]["points"] == "0"
    assert "variance" in rows["ex-em-stationary"]["reason"]
    assert all(rows[lab]["points"] == "1" for lab in rows if lab != "ex-em-stationary"), rows
    assert _tree_digest(graded["subs"]) == graded["before"], "a submission was modified"


@pytest.mark.slow
def test_an_infinite_loop_times_out_and_the_rest_is_graded(graded):
    rows = _rows(graded, "dave")
    assert rows["ex-heun-strat"]["points"] == "0" and "interrupted" in rows["ex-heun-strat"]["reason"]
    assert all(rows[lab]["points"] == "1" for lab in rows if lab != "ex-heun-strat"), rows


@pytest.mark.slow
def test_malformed_json_and_the_wrong_chapter_get_zero_with_a_reason(graded):
    assert all(r["points"] == "0" and "not a valid notebook" in r["reason"] for r in _rows(graded, "erin").values())
    assert all(r["points"] == "0" and "Chapter 2's notebook" in r["reason"] for r in _rows(graded, "frank").values())


@pytest.mark.slow
def test_feedback_file_per_student(graded):
    n = len(EX.of_chapter(1))
    for student, total in (("alice", n), ("bob", 0), ("carol", n - 1), ("dave", n - 1), ("erin", 0), ("frank", 0)):
        text = (graded["out"] / "feedback" / f"{student}.md").read_text()
        assert f"Total: **{total} / {n}** points." in text, (student, text)
    carol = (graded["out"] / "feedback" / "carol.md").read_text()
    assert re.search(r"\| 1\.2 \| 0 / 1 \| .*variance", carol)
    # the cell allocating 6 GB ran under the 4 GB limit: refused, listed, and grading went on
    assert re.search(r"## Other cells that raised an error\n\n\* 01_ito_processes.ipynb, cell \d+: RuntimeError: .*allocate", carol), carol
    dave = (graded["out"] / "feedback" / "dave.md").read_text()
    assert re.search(r"\| 1\.3 \| 0 / 1 \| cell \d+ raised Timeout: the cell ran for more than 25 s", dave), dave


def test_grader_refuses_bad_arguments(tmp_path):
    for args, needle in (([str(tmp_path / "missing")], "SUBMISSIONS must be a folder"),
                         ([str(tmp_path), "--timeout", "0"], "--timeout must be >= 1")):
        proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "grade.py"), *args], capture_output=True, text=True)
        assert proc.returncode == 2 and needle in proc.stderr, proc.stderr
