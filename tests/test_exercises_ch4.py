"""The public and hidden checks of the exercises added to Chapter 4 with issue 17 (ex-ddim-point-mass,
ex-cov-linear-flow): the solution passes both, named wrong answers fail with a hint (public) or a reason (hidden) for
several grading salts, and answers of the wrong kind are refused clearly."""

import math
import sys
import zlib

import pytest
import torch
from conftest import load_hidden_checks

import diffedu as de
import diffedu.checks as checks

hidden = load_hidden_checks("hidden_checks_ch4")
Wrong = hidden.Wrong


def _step(variant=None):
    """The solution (variant None) and wrong answers."""
    def ddim_step(sde, score, x, t, t_next, eta=0.0, xi=None):
        (a, s), (a2, s2) = [[float(v) for v in sde.marginal(tt)] for tt in (t, t_next)]
        if variant == "vp1 only":
            (a, s), (a2, s2) = [[float(v) for v in de.VPSDE(de.Linear(0.1, 20.0)).marginal(tt)] for tt in (t, t_next)]
        s_used = s2 if variant == "sigma at t_next" else s
        z_hat = -s_used * score(x, torch.full((x.shape[0],), float(t), dtype=x.dtype))
        if variant == "sign":
            z_hat = -z_hat
        x0_hat = (x - s * z_hat) / a
        var = eta**2 * (s2**2 / s**2) * (1 - a**2 / a2**2)
        if variant == "ancestral variance":
            var = eta**2 * (1 - a**2 / a2**2)
        keep = s2 if variant == "keep sigma'" else math.sqrt(s2**2 - var)
        x_next = a2 * x0_hat + keep * z_hat
        return x_next if var == 0 else x_next + math.sqrt(var) * xi
    return ddim_step


WRONG = ["ancestral variance", "keep sigma'", "sign", "sigma at t_next", "vp1 only"]


def test_ddim_public_check_accepts_the_solution(capsys):
    assert checks.check_ddim_point_mass(_step()) is True
    assert "correct" in capsys.readouterr().out


@pytest.mark.parametrize("variant", WRONG)
def test_ddim_public_check_rejects_wrong_answers_with_a_hint(variant):
    with pytest.raises(AssertionError, match="Hint"):
        checks.check_ddim_point_mass(_step(variant))


def test_ddim_public_check_names_the_ancestral_variance():
    with pytest.raises(AssertionError, match="ancestral"):
        checks.check_ddim_point_mass(_step("ancestral variance"))


def test_ddim_public_check_bad_input():
    with pytest.raises(TypeError):
        checks.check_ddim_point_mass(3.0)
    with pytest.raises(ValueError):
        checks.check_ddim_point_mass(lambda sde, score, x, t, t_next, eta=0.0, xi=None: x[:, :1])
    with pytest.raises(AssertionError, match="raised"):
        checks.check_ddim_point_mass(lambda sde, score, x, t, t_next, eta=0.0, xi=None: 1 / 0)


def _grade(answer, salt):
    rng = torch.Generator().manual_seed(zlib.crc32(f"ex-ddim-point-mass/{salt}".encode()))
    return hidden.ddim_point_mass({"ddim_step": answer}.__getitem__, rng)


@pytest.mark.parametrize("salt", [0, 1, 31337, 2027])
def test_ddim_hidden_check_accepts_the_solution(salt):
    assert "DDIM" in _grade(_step(), salt)


@pytest.mark.parametrize("salt", [0, 31337])
@pytest.mark.parametrize("variant", WRONG)
def test_ddim_hidden_check_rejects_wrong_answers(variant, salt):
    with pytest.raises(Wrong):
        _grade(_step(variant), salt)


def test_ddim_hidden_check_reports_a_crashing_answer():
    with pytest.raises(Wrong, match="ZeroDivisionError"):
        _grade(lambda *args: 1 / 0, 0)


# --- ex-cov-linear-flow ---
def cov_solution(x, t, B):                                   # the notebook's solution cell
    c = t + t**2 / 2
    x0 = x @ torch.linalg.matrix_exp(-c * B).T
    d = x.shape[1]
    return -0.5 * (x0**2).sum(1) - 0.5 * d * math.log(2 * math.pi) - c * torch.diagonal(B).sum()


def cov_wrong(*, sign=-1.0, volume=True, pull=-1.0, cfun=lambda t: t + t**2 / 2, fixed_d=None):
    def fn(x, t, B):
        c = cfun(t)
        d = fixed_d or x.shape[1]
        x0 = x @ torch.linalg.matrix_exp(pull * c * B).T
        out = -0.5 * (x0**2).sum(1) - 0.5 * d * math.log(2 * math.pi)
        return out + (sign * c * torch.diagonal(B).sum() if volume else 0.0)
    return fn


COV_WRONG = {
    "sign flipped": (cov_wrong(sign=+1.0), "wrong sign"),
    "no volume term": (cov_wrong(volume=False), "missing"),
    "pulled back with e^{+cB}": (cov_wrong(pull=+1.0), "wrong way"),
    "c = t": (cov_wrong(cfun=lambda t: t), "time integral"),
    "c = t (1 + t)": (cov_wrong(cfun=lambda t: t * (1 + t)), "time integral"),
    "sign flipped and c = t": (cov_wrong(sign=+1.0, cfun=lambda t: t), "not log q_t"),
}


def test_cov_public_check_accepts_the_solution(capsys):
    assert checks.check_cov_linear_flow(cov_solution)
    assert "correct" in capsys.readouterr().out


@pytest.mark.parametrize("name", list(COV_WRONG))
def test_cov_public_check_rejects_wrong_answers_with_a_hint(name):
    fn, words = COV_WRONG[name]
    with pytest.raises(AssertionError, match="Hint") as err:
        checks.check_cov_linear_flow(fn)
    assert words in str(err.value), str(err.value)


@pytest.mark.parametrize("bad, exc", [
    (3.0, TypeError),                                               # not a function
    (lambda x, t, B: x.sum(1).numpy(), TypeError),                  # not a tensor
    (lambda x, t, B: x[:, 0:2], ValueError),                        # wrong shape
    (lambda x, t, B: torch.full((x.shape[0],), float("nan"), dtype=x.dtype), ValueError),
])
def test_cov_public_check_refuses_answers_of_the_wrong_kind(bad, exc):
    with pytest.raises(exc):
        checks.check_cov_linear_flow(bad)


def test_cov_public_check_reports_a_crashing_answer():
    with pytest.raises(AssertionError, match="raised"):
        checks.check_cov_linear_flow(lambda x, t, B: 1 / 0)


@pytest.mark.parametrize("salt", [0, 7, 2027, 31, 123456])
def test_cov_hidden_check_accepts_the_solution(salt):
    r = hidden.grade("ex-cov-linear-flow", {"logq_linear": cov_solution}, salt)
    assert r["passed"], r["reason"]


@pytest.mark.parametrize("salt", [0, 7, 2027])
@pytest.mark.parametrize("name", list(COV_WRONG) + ["two dimensions hard-coded", "crashes"])
def test_cov_hidden_check_rejects_wrong_answers(salt, name):
    fn = {"two dimensions hard-coded": cov_wrong(fixed_d=2), "crashes": lambda x, t, B: x @ B[:2]}.get(name)
    fn = fn or COV_WRONG[name][0]
    r = hidden.grade("ex-cov-linear-flow", {"logq_linear": fn}, salt)
    assert not r["passed"] and r["reason"], r


def test_cov_hidden_check_catches_what_the_fixed_public_check_cannot():
    """An answer that hard-codes d = 3 passes the public check (its B is 3 x 3) but not the hidden one."""
    cheat = cov_wrong(fixed_d=3)
    assert checks.check_cov_linear_flow(cheat)
    results = [hidden.grade("ex-cov-linear-flow", {"logq_linear": cheat}, salt)["passed"] for salt in range(5)]
    assert not any(results)


def test_cov_hidden_check_missing_name_and_wrong_type():
    assert "not defined" in hidden.grade("ex-cov-linear-flow", {}, 0)["reason"]
    assert not hidden.grade("ex-cov-linear-flow", {"logq_linear": 1.0}, 0)["passed"]
