"""The public and hidden checks of the exercises added to Chapter 3 with issue 17 (ex-kramers, ex-ism-fit, ex-importance-t): the
solution passes both, named wrong answers fail with a hint (public) or a reason (hidden) for several grading salts,
and answers of the wrong kind are refused clearly."""

import math
import sys
import zlib

import pytest
import torch
from conftest import answers, load_hidden_checks

import diffedu
import diffedu.langevin
from diffedu import checks
from diffedu.checks import _kramers_parts, _mixture_potential, check_importance_t, check_ism_fit, check_kramers

hidden = load_hidden_checks("hidden_checks_ch3")
_kramers_exact = hidden._kramers_exact
Wrong = hidden.Wrong
importance_t = hidden.importance_t
ns_hidden = vars(hidden)


def _run(ns, label, salt=0):
    return hidden.grade(label, ns, salt)


_KRAMERS_LIMIT = math.sqrt(math.pi / 2)


def _hop_times(m, *, ends="modes", lower=None, noise=1.0, prefactor=True, curvature="exact", barrier="exact",
               points=4001, swap=False):
    """The exercise's answer, and its wrong variants."""
    xs, dU, u2_min, u2_top = _kramers_parts(m)
    a = -m if ends == "means" else -xs
    b = -a
    low = None if lower is None else a
    tau = (1 / noise) * diffedu.langevin.mean_first_passage_time(_mixture_potential(m, 1 / noise), a, b, lower=low,
                                                                  points=points)
    if barrier != "exact":
        dU = m * m / 2 - math.log(2)
    u2 = 1.0 if curvature != "exact" else u2_min
    tk = (2 * math.pi / math.sqrt(u2 * abs(u2_top)) if prefactor else 1.0) * math.exp(dU / noise)
    return (tk, tau) if swap else (tau, tk)


def _coarse(m):
    """A quadrature that is right to about 4e-6: enough for the public check (1e-5), not for the grader (1e-6)."""
    tau, tk = _hop_times(m)
    return tau * (1 + 4e-6), tk


def test_kramers_check_accepts_the_solution_and_the_closed_form_inner_integral(capsys):
    assert check_kramers(_hop_times, _KRAMERS_LIMIT) is True
    assert check_kramers(lambda m: _kramers_exact(m), _KRAMERS_LIMIT) is True
    assert check_kramers(lambda m: [float(v) for v in _hop_times(m)], torch.tensor(_KRAMERS_LIMIT)) is True
    assert capsys.readouterr().out.count("✔") == 3


@pytest.mark.parametrize("answer, limit, message", [
    (lambda m: _hop_times(m, prefactor=False), _KRAMERS_LIMIT, "e^dU alone"),
    (lambda m: _hop_times(m, curvature="one"), _KRAMERS_LIMIT, "takes U''(x_*) = 1"),
    (lambda m: _hop_times(m, barrier="approx"), _KRAMERS_LIMIT, "dU = m^2/2 - log 2"),
    (lambda m: _hop_times(m, noise=0.5), _KRAMERS_LIMIT, "noise dw"),
    (lambda m: _hop_times(m, ends="means"), _KRAMERS_LIMIT, "goes from -m to m"),
    (lambda m: _hop_times(m, lower="a"), _KRAMERS_LIMIT, "reflecting wall"),
    (lambda m: _hop_times(m, swap=True), _KRAMERS_LIMIT, "Kramers' approximation"),
    (lambda m: (_hop_times(m)[0], _hop_times(m)[0]), _KRAMERS_LIMIT, "equals tau"),
    (lambda m: (_hop_times(m)[0] * (1 + 1e-4), _hop_times(m)[1]), _KRAMERS_LIMIT, "not the exact mean first-passage"),
    (_hop_times, 1.0, "does not tend to 1"),
    (_hop_times, math.sqrt(2 * math.pi) / math.pi * 1.0001, "not the limit"),
])
def test_kramers_check_names_the_mistake(answer, limit, message):
    with pytest.raises(AssertionError, match="Hint") as info:
        check_kramers(answer, limit)
    assert message in str(info.value), str(info.value)


def test_kramers_check_refuses_answers_of_the_wrong_kind():
    with pytest.raises(TypeError, match="hop_times must be a function"):
        check_kramers(3.0, _KRAMERS_LIMIT)
    with pytest.raises(ValueError, match="must return a pair"):
        check_kramers(lambda m: _hop_times(m)[0], _KRAMERS_LIMIT)
    with pytest.raises(TypeError, match="kramers_limit must be a single finite number"):
        check_kramers(_hop_times, "1.2533")
    with pytest.raises(AssertionError, match="hop_times raised ZeroDivisionError"):
        check_kramers(lambda m: 1 / 0, _KRAMERS_LIMIT)


@pytest.mark.parametrize("salt", [0, 7, 2027, 31337])
def test_kramers_hidden_check_accepts_the_solution_and_catches_what_the_public_check_lets_through(salt):
    assert _run({"hop_times": _hop_times, "kramers_limit": _KRAMERS_LIMIT}, "ex-kramers", salt)["passed"]
    assert check_kramers(_coarse, _KRAMERS_LIMIT)                     # 4e-6 passes the public check ...
    r = _run({"hop_times": _coarse, "kramers_limit": _KRAMERS_LIMIT}, "ex-kramers", salt)
    assert not r["passed"] and "the exact tau" in r["reason"]         # ... not the grader's 1e-6
    table = {m: _hop_times(m) for m in (2.0, 3.0, 4.5)}               # a lookup table of the public check's m
    assert check_kramers(lambda m: table[m], _KRAMERS_LIMIT)
    r = _run({"hop_times": lambda m: table[m], "kramers_limit": _KRAMERS_LIMIT}, "ex-kramers", salt)
    assert not r["passed"] and "KeyError" in r["reason"]
    for wrong, words in [(lambda m: _hop_times(m, prefactor=False), "tau_K"),
                         (lambda m: _hop_times(m, ends="means"), "the exact tau"),
                         (lambda m: _hop_times(m, noise=0.5), "the exact tau")]:
        r = _run({"hop_times": wrong, "kramers_limit": _KRAMERS_LIMIT}, "ex-kramers", salt)
        assert not r["passed"] and words in r["reason"], r["reason"]
    r = _run({"hop_times": _hop_times, "kramers_limit": float(f"{_KRAMERS_LIMIT:.7g}")}, "ex-kramers", salt)
    assert not r["passed"] and "kramers_limit" in r["reason"]          # 7 digits pass the public check, not this one
    assert check_kramers(_hop_times, float(f"{_KRAMERS_LIMIT:.7g}"))


def test_kramers_hidden_check_reasons_for_missing_names_and_bad_types():
    r = _run({"hop_times": _hop_times}, "ex-kramers")
    assert not r["passed"] and "`kramers_limit`" in r["reason"]
    r = _run({"hop_times": lambda m: 1.0, "kramers_limit": _KRAMERS_LIMIT}, "ex-kramers")
    assert not r["passed"] and "must return a pair" in r["reason"]


def test_kramers_hidden_reference_agrees_with_the_package_quadrature():
    for m in (1.5, 2.0, 3.7, 6.0):
        tau, tk = _kramers_exact(m)
        assert tau == pytest.approx(_hop_times(m)[0], rel=1e-9)
        assert tk == pytest.approx(_hop_times(m)[1], rel=1e-12)


# --- ex-ism-fit ---
def right(x):
    m2, m4, m6 = ((x**j).mean() for j in (2, 4, 6))
    return torch.linalg.solve(torch.stack([torch.stack([m2, m4]), torch.stack([m4, m6])]),
                              torch.stack([torch.ones_like(m2), 3 * m2]))


def lstsq_right(x):              # another correct method: the pseudo-inverse of the normal matrix
    phi = torch.stack([x, x**3], 1)
    b = torch.stack([torch.ones_like(x), 3 * x**2], 1).mean(0)
    return torch.linalg.pinv(phi.T @ phi / len(x)) @ b


WRONG = {
    "sign of s'": lambda x: -right(x),
    "missing 1/2": lambda x: right(x) / 2,
    "d/dx x^3 = x^2": lambda x: torch.linalg.solve(
        torch.tensor([[float((x**2).mean()), float((x**4).mean())], [float((x**4).mean()), float((x**6).mean())]],
                     dtype=torch.float64), torch.tensor([1.0, float((x**2).mean())], dtype=torch.float64)),
    "centred moments": lambda x: right(x - x.mean()),
    "Gaussian fit": lambda x: torch.tensor([1 / float(x.var(unbiased=False)), 0.0], dtype=torch.float64),
    "float32": lambda x: right(x.float()).double(),
}


def test_ism_public_check_accepts_right_answers(capsys):
    assert check_ism_fit(right) is True
    assert check_ism_fit(lstsq_right) is True
    assert "✔" in capsys.readouterr().out


@pytest.mark.parametrize("name", list(WRONG))
def test_ism_public_check_rejects_wrong_answers_with_a_hint(name):
    with pytest.raises(AssertionError, match="Hint"):
        check_ism_fit(WRONG[name])


def test_ism_public_check_names_the_sign_and_the_half():
    with pytest.raises(AssertionError, match="PLUS sign"):
        check_ism_fit(WRONG["sign of s'"])
    with pytest.raises(AssertionError, match="1/2"):
        check_ism_fit(WRONG["missing 1/2"])


@pytest.mark.parametrize("call, err", [
    (lambda: check_ism_fit(3.0), TypeError),
    (lambda: check_ism_fit(lambda x: [1.0, 2.0]), TypeError),
    (lambda: check_ism_fit(lambda x: torch.zeros(3, dtype=torch.float64)), ValueError),
])
def test_ism_public_check_rejects_bad_input(call, err):
    with pytest.raises(err):
        call()


def test_ism_reference_not_revealed(capsys):
    with pytest.raises(AssertionError) as e:
        check_ism_fit(WRONG["Gaussian fit"])
    assert "tensor(" not in str(e.value) and "tensor(" not in capsys.readouterr().out


@pytest.mark.parametrize("salt", [0, 7, 2027, 31337])
def test_ism_hidden_check_accepts_right_and_rejects_wrong(salt):
    grade = ns_hidden["grade"]
    for fn in (right, lstsq_right):
        ok = grade("ex-ism-fit", {"ism_fit": fn}, salt)
        assert ok["passed"], ok["reason"]
    for name, fn in WRONG.items():
        bad = grade("ex-ism-fit", {"ism_fit": fn}, salt)
        assert not bad["passed"] and bad["reason"], name
    assert not grade("ex-ism-fit", {}, salt)["passed"]
    crash = grade("ex-ism-fit", {"ism_fit": lambda x: 1 / 0}, salt)
    assert not crash["passed"] and "ZeroDivisionError" in crash["reason"]


# --- ex-importance-t ---
BETA0, BETA1, TMIN, TMAX = 0.1, 20.0, 1e-3, 1.0
B = lambda t: BETA0 * t + 0.5 * (BETA1 - BETA0) * t * t
B_inv = lambda b: 2 * b / (BETA0 + torch.sqrt(BETA0**2 + 2 * (BETA1 - BETA0) * b))
RHO = lambda t: math.log(math.expm1(B(t)))


def solution(u):
    """The notebook's solution: rho = log(sigma^2/alpha^2) uniform, B = softplus(rho), t the root of the quadratic."""
    rho = RHO(TMIN) + u * (RHO(TMAX) - RHO(TMIN))
    return B_inv(torch.nn.functional.softplus(rho))


FRAC = (RHO(TMAX) - RHO(0.5)) / (RHO(TMAX) - RHO(TMIN))


def _uniform_in(fwd, inv):
    return lambda u: inv(fwd(TMIN) + u * (fwd(TMAX) - fwd(TMIN)))


WRONG_SAMPLERS = {
    "uniform t": lambda u: TMIN + u * (TMAX - TMIN),
    "log-uniform t": lambda u: TMIN * (TMAX / TMIN) ** u,
    "uniform in B (pi ~ g^2)": _uniform_in(B, B_inv),
    "uniform in log sigma^2 (pi ~ g^2 alpha^2 / sigma^2)":
        _uniform_in(lambda t: math.log(-math.expm1(-B(t))), lambda r: B_inv(-torch.log1p(-torch.exp(r)))),
    "the simple schedule's inverse": lambda u: torch.sqrt(torch.nn.functional.softplus(
        RHO(TMIN) + u * (RHO(TMAX) - RHO(TMIN))) / 10),
    "float32": lambda u: solution(u.float()).double(),
}


def test_importance_t_public_check_accepts_the_solution(capsys):
    assert check_importance_t(solution, FRAC) is True
    assert "✔" in capsys.readouterr().out


def test_importance_t_public_check_accepts_a_naive_quadratic_root_and_a_python_float_fraction():
    naive = lambda u: (-BETA0 + torch.sqrt(BETA0**2 + 2 * (BETA1 - BETA0) * torch.log1p(torch.exp(
        RHO(TMIN) + u * (RHO(TMAX) - RHO(TMIN)))))) / (BETA1 - BETA0)
    assert check_importance_t(naive, torch.tensor(FRAC)) is True


@pytest.mark.parametrize("name", [k for k in WRONG_SAMPLERS if k != "float32"])
def test_importance_t_public_check_rejects_wrong_samplers(name):
    with pytest.raises(AssertionError, match="Hint"):
        check_importance_t(WRONG_SAMPLERS[name], FRAC)


def test_importance_t_public_check_names_uniform_and_log_uniform_times():
    with pytest.raises(AssertionError, match="uniform times"):
        check_importance_t(WRONG_SAMPLERS["uniform t"], FRAC)
    with pytest.raises(AssertionError, match="log-uniform"):
        check_importance_t(WRONG_SAMPLERS["log-uniform t"], FRAC)


def test_importance_t_public_check_rejects_the_fraction_below():
    with pytest.raises(AssertionError, match="BELOW"):
        check_importance_t(solution, 1 - FRAC)
    with pytest.raises(AssertionError, match="Hint"):
        check_importance_t(solution, 0.5)


def test_importance_t_public_check_rejects_a_sampler_that_ignores_the_shape():
    with pytest.raises((AssertionError, ValueError)):
        check_importance_t(lambda u: solution(u.reshape(-1)), FRAC)


@pytest.mark.parametrize("args, err", [
    ((3, FRAC), TypeError),                                   # not a function
    ((lambda u: [0.1] * len(u), FRAC), TypeError),            # returns a list
    ((lambda u: solution(u)[:5], FRAC), ValueError),          # wrong shape
    ((lambda u: solution(u) * float("nan"), FRAC), ValueError),
    ((solution, "0.4"), TypeError),
    ((solution, float("inf")), ValueError),
])
def test_importance_t_public_check_refuses_malformed_answers(args, err):
    with pytest.raises(err):
        check_importance_t(*args)


def test_importance_t_public_check_reports_a_crashing_function():
    def broken(u):
        raise RuntimeError("boom")
    with pytest.raises(AssertionError, match="boom"):
        check_importance_t(broken, FRAC)


def _rng(salt):
    return torch.Generator().manual_seed(zlib.crc32(f"ex-importance-t/{salt}".encode()))


def _get(ns):
    return answers(ns, Wrong)


@pytest.mark.parametrize("salt", [0, 1, 31337, 2027])
def test_importance_t_hidden_check_accepts_the_solution(salt):
    assert "inverse distribution function" in importance_t(_get({"sample_t": solution, "frac_late": FRAC}), _rng(salt))


@pytest.mark.parametrize("name", list(WRONG_SAMPLERS))
def test_importance_t_hidden_check_rejects_wrong_samplers_including_float32(name):
    with pytest.raises(Wrong):
        importance_t(_get({"sample_t": WRONG_SAMPLERS[name], "frac_late": FRAC}), _rng(5))


@pytest.mark.parametrize("frac", [1 - FRAC, FRAC * (1 + 1e-7), 0.4])
def test_importance_t_hidden_check_rejects_wrong_fractions(frac):
    with pytest.raises(Wrong):
        importance_t(_get({"sample_t": solution, "frac_late": frac}), _rng(6))


def test_importance_t_hidden_check_reports_malformed_answers():
    with pytest.raises(Wrong, match="function"):
        importance_t(_get({"sample_t": 1.0, "frac_late": FRAC}), _rng(7))
    with pytest.raises(Wrong, match="raised"):
        importance_t(_get({"sample_t": lambda u: 1 / 0, "frac_late": FRAC}), _rng(7))
    with pytest.raises(Wrong, match="shape"):
        importance_t(_get({"sample_t": lambda u: solution(u).reshape(-1), "frac_late": FRAC}), _rng(7))
    with pytest.raises(Wrong, match="not defined"):
        importance_t(_get({"sample_t": solution}), _rng(7))


def test_importance_t_the_closed_form_of_the_hidden_check_agrees_with_the_public_quadrature():
    from diffedu.checks import _snr_cdf
    _snr_time = hidden._snr_time
    u = torch.linspace(0, 1, 41, dtype=torch.float64)
    assert float((_snr_cdf(_snr_time(u)) - u).abs().max()) < 1e-10
