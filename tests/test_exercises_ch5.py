"""The public and hidden checks of the exercises added to Chapter 5 with issue 17 (ex-fluctuation-gaussian,
ex-schrodinger-quartic): the solution passes both, named wrong answers fail with a hint (public) or a reason (hidden)
for several grading salts, and answers of the wrong kind are refused clearly."""

import math
import sys

import pytest
import torch
from conftest import answers, load_hidden_checks

from diffedu.checks import _birth_death_gap, check_fluctuation_gauss, check_schrodinger_quartic

hidden = load_hidden_checks("hidden_checks_ch5")
Wrong = hidden.Wrong
fluctuation_gauss, schrodinger_quartic, _fp_gap_reference = (hidden.fluctuation_gauss, hidden.schrodinger_quartic,
                                                             hidden._fp_gap_reference)


def _right(t, v0):
    B = lambda s: 0.1 * s + 9.95 * s**2
    v = torch.exp(-B(t)) * v0 + 1 - torch.exp(-B(t))
    vT = math.exp(-B(1.0)) * v0 + 1 - math.exp(-B(1.0))
    return v * (-B(t) - torch.log(v) + B(1.0) + math.log(vT))


def _no_J(t, v0):                                                # int_t^T beta: the free Brownian spread
    return 0.1 * (1 - t) + 9.95 * (1 - t**2)


def _two_J(t, v0):                                               # dC/dt = 4 J C - beta: C = v_t^2 int_t^T beta / v_s^2
    B = lambda s: 0.1 * s + 9.95 * s**2
    v = lambda s: torch.exp(-B(s)) * v0 + 1 - torch.exp(-B(s))
    out = []
    for tk in t.reshape(-1).tolist():
        s = torch.linspace(tk, 1.0, 4001, dtype=torch.float64)
        out.append(float(v(torch.tensor(tk, dtype=torch.float64)) ** 2 * torch.trapezoid((0.1 + 19.9 * s) / v(s) ** 2, s)))
    return torch.tensor(out, dtype=torch.float64).reshape(t.shape)


def _no_v(t, v0):                                                # the factor v_t dropped
    return _right(t, v0) / (torch.exp(-(0.1 * t + 9.95 * t**2)) * v0 + 1 - torch.exp(-(0.1 * t + 9.95 * t**2)))


def _flat(t, v0):                                                # right values, wrong shape
    return _right(t, v0).reshape(-1)


_GRID = torch.linspace(0.0, 1.0, 41, dtype=torch.float64)


def _fixed_grid(t, v0):                                          # right only on the public check's grid and v0
    if t.shape == _GRID.shape and v0 in (0.04, 0.5, 2.5, 1.0):
        return _right(t, v0)
    return _no_J(t, v0)


WRONG = [_no_J, _two_J, _no_v]


def test_fluct_public_check_accepts_the_closed_form(capsys):
    assert check_fluctuation_gauss(_right) is True
    assert "correct" in capsys.readouterr().out


@pytest.mark.parametrize("fn", WRONG, ids=lambda f: f.__name__)
def test_fluct_public_check_rejects_wrong_answers(fn):
    with pytest.raises(AssertionError, match="Hint"):
        check_fluctuation_gauss(fn)


def test_fluct_public_check_names_the_free_spread():
    with pytest.raises(AssertionError, match="free Brownian"):
        check_fluctuation_gauss(_no_J)


def test_fluct_public_check_rejects_bad_input():
    with pytest.raises(TypeError):
        check_fluctuation_gauss(1.0)
    with pytest.raises(ValueError):
        check_fluctuation_gauss(lambda t, v0: _right(t, v0)[:-1])


def _grade(fn, salt):
    return hidden.grade("ex-fluctuation-gaussian", {"fluct_var_gauss": fn}, salt)


@pytest.mark.parametrize("salt", [0, 7, 2027, 31])
def test_fluct_hidden_check_accepts_the_closed_form(salt):
    r = _grade(_right, salt)
    assert r["passed"], r["reason"]


@pytest.mark.parametrize("salt", [0, 7, 2027])
@pytest.mark.parametrize("fn", WRONG + [_flat, _fixed_grid], ids=lambda f: f.__name__)
def test_fluct_hidden_check_rejects_wrong_answers(fn, salt):
    r = _grade(fn, salt)
    assert not r["passed"] and r["reason"]


def test_fluct_public_check_lets_the_fixed_grid_answer_through_but_the_hidden_one_does_not():
    assert check_fluctuation_gauss(_fixed_grid) is True
    assert not _grade(_fixed_grid, 0)["passed"]


# --- ex-schrodinger-quartic ---
def _solution():
    def quartic_vs(x, D):
        return x**6 / (4 * D) - 1.5 * x**2

    gaps = []
    for n in (401, 801):
        x = torch.linspace(-4.0, 4.0, n, dtype=torch.float64)
        h = float(x[1] - x[0])
        off = torch.full((n - 1,), -0.5 / h**2, dtype=torch.float64)
        H = torch.diag(1.0 / h**2 + quartic_vs(x, 0.5)) + torch.diag(off, 1) + torch.diag(off, -1)
        lam = torch.linalg.eigvalsh(H)
        gaps.append(float(lam[1] - lam[0]))
    return quartic_vs, (4 * gaps[1] - gaps[0]) / 3, gaps, float(lam[1])


QV, GAP, GAPS, LAM1_FINE = _solution()
WRONG_VS = {
    "sign of U''/2": lambda x, D: x**6 / (4 * D) + 1.5 * x**2,
    "missing 1/4": lambda x, D: x**6 / D - 1.5 * x**2,
    "no U''/2 term": lambda x, D: x**6 / (4 * D),
    "D fixed at 1/2": lambda x, D: x**6 / 2 - 1.5 * x**2,
}
WRONG_GAP = {
    "coarse grid (h = 0.02), no extrapolation": GAPS[0],
    "fine grid (h = 0.01), no extrapolation": GAPS[1],           # 5e-5 off: both reject it (the exercise asks for 1e-5)
    "lambda_1 of the fine grid, lambda_0 not subtracted": LAM1_FINE,
    "OU of the same variance": 1.0460496,
    "one-way (half) rate": GAP / 2,
}


def _get(ns):
    return answers(ns, Wrong)


def test_schr_reference_is_right():
    # two independent discretisations agree: the Schrodinger matrix (solution) and the detailed-balance chain
    ref = (4 * _birth_death_gap(lambda y: y**4 / 4, 0.5, 4.0, 801) - _birth_death_gap(lambda y: y**4 / 4, 0.5, 4.0, 401)) / 3
    assert abs(GAP - ref) < 1e-7 * ref
    assert abs(GAP - 1.3685925 * math.sqrt(0.5)) < 1e-6      # the sqrt(D) scaling of part (c)


def test_schr_public_accepts_solution(capsys):
    assert check_schrodinger_quartic(QV, GAP)
    assert "correct" in capsys.readouterr().out


@pytest.mark.parametrize("name", list(WRONG_VS))
def test_schr_public_rejects_wrong_potential(name):
    with pytest.raises(AssertionError, match="Hint"):
        check_schrodinger_quartic(WRONG_VS[name], GAP)


PUBLIC_LENIENT = ("lambda_1 of the fine grid, lambda_0 not subtracted",)   # 1e-5 off: only the hidden check sees it


@pytest.mark.parametrize("name", [k for k in WRONG_GAP if k not in PUBLIC_LENIENT])
def test_schr_public_rejects_wrong_gap(name):
    with pytest.raises(AssertionError, match="Hint"):
        check_schrodinger_quartic(QV, WRONG_GAP[name])


def test_schr_public_rejects_wrong_kinds():
    with pytest.raises(TypeError):
        check_schrodinger_quartic(1.0, GAP)
    with pytest.raises((TypeError, ValueError)):
        check_schrodinger_quartic(QV, "0.97")
    with pytest.raises((TypeError, ValueError)):
        check_schrodinger_quartic(lambda x, D: x[:1], GAP)


@pytest.mark.parametrize("salt", [0, 1, 2, 12345])
def test_schr_hidden_accepts_solution(salt):
    rng = torch.Generator().manual_seed(salt)
    assert "gap_quartic" in schrodinger_quartic(_get({"quartic_vs": QV, "gap_quartic": GAP}), rng)


@pytest.mark.parametrize("name", list(WRONG_VS))
def test_schr_hidden_rejects_wrong_potential(name):
    with pytest.raises(Wrong):
        schrodinger_quartic(_get({"quartic_vs": WRONG_VS[name], "gap_quartic": GAP}), torch.Generator().manual_seed(3))


@pytest.mark.parametrize("name", list(WRONG_GAP))
def test_schr_hidden_rejects_wrong_gap(name):
    # stricter than the public check: it also rejects lambda_1 - (its own small lambda_0 error)
    with pytest.raises(Wrong):
        schrodinger_quartic(_get({"quartic_vs": QV, "gap_quartic": WRONG_GAP[name]}), torch.Generator().manual_seed(4))


def test_schr_hidden_reports_missing_and_raising():
    with pytest.raises(Wrong, match="not defined"):
        schrodinger_quartic(_get({"gap_quartic": GAP}), torch.Generator().manual_seed(0))

    def boom(x, D):
        raise RuntimeError("nope")
    with pytest.raises(Wrong, match="RuntimeError"):
        schrodinger_quartic(_get({"quartic_vs": boom, "gap_quartic": GAP}), torch.Generator().manual_seed(0))
