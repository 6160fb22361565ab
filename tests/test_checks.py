"""diffedu.checks: right answers pass, wrong ones fail with a hint, bad input is rejected clearly.

(The right answers of every exercise also pass inside the chapter notebooks, which nbval runs.)
"""

import math
import re

import pytest
import torch

import diffedu as de
from diffedu import checks


def test_passes_print_and_return_true(capsys):
    assert checks.check_hbar_star(1.0) is True
    assert checks.check_perrin_budget(20000, 0.01 * torch.randn(400, generator=torch.Generator().manual_seed(0),
                                                                  dtype=torch.float64)) is True
    out = capsys.readouterr().out
    assert out.count("✔") == 2


@pytest.mark.parametrize("call", [
    lambda: checks.check_hbar_star(0.5),
    lambda: checks.check_consistent_correction(torch.tensor([0.5, 0.0, 0.0, 0.0])),
    lambda: checks.check_gauss_nll_slopes([0.0, 0.0, 0.0, 0.0]),
    lambda: checks.check_score_tmin(torch.zeros(3), torch.zeros(3)),
    lambda: checks.check_gibbs_crossing(0.5, 1.2),
    lambda: checks.check_linear_velocity(lambda x, t, s: -x / (1 - t) - 2 * t / (1 - t) * s),
    lambda: checks.check_linear_velocity(lambda x, t, s: x / (1 - t) - t / (1 - t) * s),
    lambda: checks.check_bridge_covariance(lambda v0, v1, eps: (-eps + math.sqrt(eps * eps + 4 * v0 * v1)) / 2),
    lambda: checks.check_bridge_covariance(lambda v0, v1, eps: (-eps - math.sqrt(eps * eps + 4 * v0 * v1)) / 2),
    lambda: checks.check_sinkhorn_plain(lambda mu, nu, x, eps, sweeps: mu[:, None] * nu[None, :]),
    lambda: checks.check_ancestral_step(lambda a, s, a2, s2: (s2**2 / s**2) * (1 - a**2 / a2**2), 1.0),
    lambda: checks.check_ancestral_step(lambda a, s, a2, s2: s2**2 * (s**2 - (a / a2) ** 2 * s2**2) / s**2, 0.5),
    lambda: checks.check_subvp_gap_time(0.5),
    lambda: checks.check_ve_snr_time(0.9),
    lambda: checks.check_dsm_floor(1.0),
    lambda: checks.check_kl_terms(0.1, 0.2),
    lambda: checks.check_ou_mean_path_action(0.5, -1.0),
    lambda: checks.check_hbar_gaussian_variance([0.04, 0.04, 0.04, 0.04]),
    lambda: checks.check_jacobian_step(torch.zeros(21, 21, dtype=torch.float64)),
    lambda: checks.check_pf_map(torch.zeros(5, 1)),
    lambda: checks.check_reverse_drift_gaussian(lambda x, t: -x),
    lambda: checks.check_gaussian_likelihood(lambda x: -0.5 * x**2),
    lambda: checks.check_fv_rhs(lambda p, v, D, h: p * 0 + 1.0),
    lambda: checks.check_em_stationary_variance(torch.randn(20000, generator=torch.Generator().manual_seed(1),
                                                            dtype=torch.float64) * math.sqrt(0.5)),
])
def test_wrong_answers_fail_with_a_hint(call):
    with pytest.raises(AssertionError, match="Hint"):
        call()


def test_em_check_recognises_the_exact_process():
    x = torch.randn(20000, generator=torch.Generator().manual_seed(2), dtype=torch.float64) * math.sqrt(0.5)
    with pytest.raises(AssertionError, match="EXACT OU"):
        checks.check_em_stationary_variance(x)


def test_heun_check_recognises_the_ito_correction():
    def corrected(x0, dw, dt, mu, sigma):         # Heun on the Stratonovich drift: the Ito solution
        x = x0
        for d in dw:
            fp = (mu - 0.5 * sigma**2) * x
            xp = x + fp * dt + sigma * x * d
            x = x + 0.5 * (fp + (mu - 0.5 * sigma**2) * xp) * dt + 0.5 * sigma * (x + xp) * d
        return x
    with pytest.raises(AssertionError, match="Ito solution"):
        checks.check_heun_stratonovich(corrected)


def test_references_are_not_revealed(capsys):
    with pytest.raises(AssertionError) as err:
        checks.check_subvp_gap_time(0.5)
    t_star = (-0.1 + math.sqrt(0.01 + 4 * 9.95 * math.log(2))) / (2 * 9.95)
    assert f"{t_star:.3f}" not in str(err.value) and f"{t_star:.3f}" not in capsys.readouterr().out


@pytest.mark.parametrize("call, err", [
    (lambda: checks.check_hbar_star("one"), TypeError),
    (lambda: checks.check_hbar_star(float("nan")), ValueError),
    (lambda: checks.check_pf_map(torch.zeros(4, 1)), ValueError),
    (lambda: checks.check_pf_map([[0.0]] * 5), TypeError),
    (lambda: checks.check_jacobian_step(torch.full((21, 21), float("nan"))), ValueError),
    (lambda: checks.check_tweedie(3), TypeError),
    (lambda: checks.check_hbar_gaussian_variance([0.04]), ValueError),
    (lambda: checks.check_fp_ou_stationary(torch.zeros(10), "grid"), TypeError),
    (lambda: checks.check_ito_w3(torch.zeros(5), torch.zeros(5)), ValueError),
    (lambda: checks.check_hutchinson(torch.zeros(10)), ValueError),
    (lambda: checks.check_consistent_correction(torch.zeros(3)), ValueError),
    (lambda: checks.check_gibbs_crossing("x", 1.0), TypeError),
    (lambda: checks.check_linear_velocity(3.0), TypeError),
    (lambda: checks.check_sinkhorn_plain(lambda *a: torch.zeros(3, 3)), ValueError),
    (lambda: checks.check_ancestral_step(lambda a, s, a2, s2: s2**2 * (s**2 - (a / a2) ** 2 * s2**2) / s**2, "x"), TypeError),
])
def test_bad_input_is_rejected_clearly(call, err):
    with pytest.raises(err):
        call()


def test_classical_gaussian_needs_the_hbar_fluctuations():
    """ex-classical-gaussian: the hbar = 1e-4 answer passes; the ODE (hbar = 0) and hbar = 2e-4 do not."""
    vp = de.VPSDE(de.Linear(0.1, 20.0))
    score = de.GaussianMixture([1.0], [[0.0]], [0.2]).score_fn(vp)
    ts = de.time_grid(1.0, 0.01, 500)
    start = torch.full((400, 1), 1.5, dtype=torch.float64)

    def answer(hbar):
        ens = de.euler_maruyama(vp.reverse(score, hbar), start, ts, generator=torch.Generator().manual_seed(6),
                                return_path=True)[:, :, 0]
        return ens.mean(1), ens.std(1)

    assert checks.check_classical_gaussian(*answer(1e-4)) is True
    for hbar in (0.0, 2e-4):
        with pytest.raises(AssertionError, match="spread"):
            checks.check_classical_gaussian(*answer(hbar))
    mean, spread = answer(1e-4)
    with pytest.raises(AssertionError, match="mean path"):
        checks.check_classical_gaussian(mean + 0.01, spread)
    with pytest.raises(ValueError):
        checks.check_classical_gaussian(mean, spread[:-1])


def test_dsm_floor_needs_the_d_dimensional_result():
    alpha, sigma = (float(v) for v in de.VPSDE(de.Linear(0.1, 20.0)).marginal(0.3))
    one = 1 / sigma**2 - 1 / (alpha**2 * 0.04 + sigma**2)
    assert checks.check_dsm_floor(2 * one) is True
    with pytest.raises(AssertionError, match="one coordinate"):
        checks.check_dsm_floor(one)                   # the 1-D formula
    with pytest.raises(AssertionError, match="Hint"):
        checks.check_dsm_floor(2 / sigma**2)          # forgot E|grad log p_t|^2


def test_kl_terms_need_the_exercise_mixture():
    from diffedu.fokker_planck import Grid
    vp = de.VPSDE(de.Linear(0.1, 20.0))
    x = Grid(-6.0, 6.0, 1000).points()
    h = float(x[1, 0] - x[0, 0])

    def full(mix):
        tq = torch.linspace(0.0, 1.0, 51, dtype=torch.float64)
        vals = [0.5 * float(vp.diffusion(t)) ** 2 * float((mix.score(x, t, vp)[:, 0] ** 2 * mix.log_prob(x, t, vp).exp()).sum() * h)
                for t in tq.tolist()]
        return float(torch.trapezoid(torch.tensor(vals), tq))

    right = full(de.GaussianMixture([0.5, 0.5], [[-1.0], [1.0]], [0.25, 0.25]))
    assert checks.check_kl_terms(0.01 * right, 0.16 * right) is True
    old = full(de.GaussianMixture([0.3, 0.7], [[-1.5], [1.0]], [0.3, 0.2]))      # the chapter's mix1
    with pytest.raises(AssertionError, match="mix_kl"):
        checks.check_kl_terms(0.01 * old, 0.16 * old)
    with pytest.raises(AssertionError, match="Hint"):
        checks.check_kl_terms(0.1 * right, 0.4 * right)                              # linear, not quadratic


# --- Chapter 1: Euler–Maruyama's stationary covariance and the Stratonovich-to-Ito drift in 2-D ---------
def _em_cov(A, G, dt, variant="right"):
    """The Stein equation S = B S B^T + dt G G^T (B = I + dt A) by a Kronecker solve, or a wrong version of it."""
    d = A.shape[0]
    eye = torch.eye(d, dtype=A.dtype)
    B = eye + dt * A
    rhs = (G @ G.T).reshape(d * d) * (1.0 if variant == "no dt" else dt)
    if variant == "continuous":                     # the SDE's own A S + S A^T + G G^T = 0
        K = torch.kron(A.contiguous(), eye) + torch.kron(eye, A.contiguous())
        return torch.linalg.solve(K, -(G @ G.T).reshape(d * d)).reshape(d, d)
    K = torch.kron(B.T.contiguous(), B.T.contiguous()) if variant == "B^T" else torch.kron(B, B)
    return torch.linalg.solve(torch.eye(d * d, dtype=A.dtype) - K, rhs).reshape(d, d)


_A_EX = torch.tensor([[-1.0, 2.0], [-1.0, -0.5]], dtype=torch.float64)
_G_EX = torch.tensor([[1.0, 0.0], [0.6, 0.5]], dtype=torch.float64)
_SIGMA_DT = _em_cov(_A_EX, _G_EX, 0.1)


def test_em_stationary_cov_check_accepts_the_right_answer_and_a_float32_sigma_dt():
    assert checks.check_em_stationary_cov(_em_cov, _SIGMA_DT) is True
    assert checks.check_em_stationary_cov(_em_cov, _em_cov(_A_EX.float(), _G_EX.float(), 0.1)) is True
    series = sum(torch.linalg.matrix_power(torch.eye(2, dtype=torch.float64) + 0.1 * _A_EX, k) @ (0.1 * _G_EX @ _G_EX.T)
                 @ torch.linalg.matrix_power(torch.eye(2, dtype=torch.float64) + 0.1 * _A_EX.T, k) for k in range(1500))
    assert checks.check_em_stationary_cov(_em_cov, series) is True          # the series summed term by term


@pytest.mark.parametrize("wrong, message", [
    (lambda A, G, dt: _em_cov(A, G, dt, "continuous"), "SDE itself"),        # A kron I + I kron A: Sigma_inf
    (lambda A, G, dt: _em_cov(A, G, dt, "B^T"), "swapped"),                 # S = B^T S B + dt G G^T
    (lambda A, G, dt: _em_cov(A, G, dt, "no dt"), "factor dt"),             # S = B S B^T + G G^T
    (lambda A, G, dt: _em_cov(A, G.T, dt), "G\\^T G"),
    (lambda A, G, dt: -_em_cov(A, G, dt), "sign"),
    (lambda A, G, dt: 2 * _em_cov(A, G, dt), "does not solve"),
    (lambda A, G, dt: _em_cov(A[:2, :2].contiguous(), G[:2], dt), "shape"),  # written for d = 2 only
])
def test_em_stationary_cov_check_names_the_mistake(wrong, message):
    with pytest.raises(AssertionError, match="Hint") as err:
        checks.check_em_stationary_cov(wrong, _SIGMA_DT)
    assert re.search(message, str(err.value))


def test_em_stationary_cov_check_reads_sigma_dt_too():
    with pytest.raises(AssertionError, match="Sigma_dt is the stationary covariance of the SDE itself"):
        checks.check_em_stationary_cov(_em_cov, _em_cov(_A_EX, _G_EX, 0.1, "continuous"))
    with pytest.raises(AssertionError, match="Sigma_dt solves S = B\\^T S B"):
        checks.check_em_stationary_cov(_em_cov, _em_cov(_A_EX, _G_EX, 0.1, "B^T"))
    with pytest.raises(AssertionError, match="Sigma_dt"):
        checks.check_em_stationary_cov(_em_cov, _em_cov(_A_EX, _G_EX, 0.05))            # another step
    with pytest.raises(AssertionError, match="Sigma_dt"):
        checks.check_em_stationary_cov(_em_cov, _SIGMA_DT * (1 + 1e-5))
    with pytest.raises(ValueError):
        checks.check_em_stationary_cov(_em_cov, torch.zeros(3, 3, dtype=torch.float64))
    with pytest.raises(TypeError):
        checks.check_em_stationary_cov(lambda A, G, dt: _em_cov(A, G, dt).numpy(), _SIGMA_DT)
    with pytest.raises(TypeError):
        checks.check_em_stationary_cov("em_stationary_cov", _SIGMA_DT)
    with pytest.raises(AssertionError, match="raised TypeError"):                       # the old two-argument form
        checks.check_em_stationary_cov(lambda A, G: _em_cov(A, G, 0.1), _SIGMA_DT)


_J = torch.tensor([[0.0, -1.0], [1.0, 0.0]], dtype=torch.float64)


def _rot_drift(x, c=-0.5):
    return c * x


def _rot_paths(seed, drift=_rot_drift, noise="right", n=20000, dt=0.01, steps=100):
    """Euler-Maruyama for dx = drift(x) dt + J x dw from (1, 0); noise="pair" gives each coordinate its own dw."""
    g = torch.Generator().manual_seed(seed)
    x = torch.tensor([1.0, 0.0], dtype=torch.float64).repeat(n, 1)
    for _ in range(steps):
        dw = torch.randn(n, 2 if noise == "pair" else 1, generator=g, dtype=torch.float64) * math.sqrt(dt)
        x = x + drift(x) * dt + (x @ _J.T) * dw
    return x


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_strat_to_ito_check_holds_for_any_seed_and_rejects_wrong_drifts_in_the_paths(seed):
    assert checks.check_strat_to_ito(_rot_drift, _rot_paths(seed).mean(0)) is True
    with pytest.raises(AssertionError, match="mean_T is x_0"):                 # the naive Ito reading: no drift
        checks.check_strat_to_ito(_rot_drift, _rot_paths(seed, lambda x: 0 * x).mean(0))
    with pytest.raises(AssertionError, match="wrong sign"):
        checks.check_strat_to_ito(_rot_drift, _rot_paths(seed, lambda x: _rot_drift(x, 0.5)).mean(0))
    with pytest.raises(AssertionError, match="twice as fast"):
        checks.check_strat_to_ito(_rot_drift, _rot_paths(seed, lambda x: _rot_drift(x, -1.0)).mean(0))


def test_strat_to_ito_check_compares_with_the_scheme_without_an_allowance():
    exact = math.exp(-0.5) * torch.tensor([1.0, 0.0], dtype=torch.float64)
    assert checks.check_strat_to_ito(_rot_drift, exact) is True               # a quarter of a standard error away
    with pytest.raises(AssertionError, match="Hint"):
        checks.check_strat_to_ito(_rot_drift, exact - torch.tensor([0.02, 0.0], dtype=torch.float64))


@pytest.mark.parametrize("drift, message", [
    (lambda x: 0 * x, "Stratonovich drift"),
    (lambda x: 0.5 * x, "wrong sign"),
    (lambda x: -x, "twice"),
    (lambda x: -0.5 * x @ _J.T, "rotation"),
    (lambda x: -0.5 * x.flip(1), "not the Ito drift"),
])
def test_strat_to_ito_check_names_the_drift_mistake(drift, message):
    with pytest.raises(AssertionError, match=message):
        checks.check_strat_to_ito(drift, torch.tensor([0.6058, 0.0], dtype=torch.float64))


def test_strat_to_ito_check_refuses_bad_input():
    with pytest.raises(TypeError):
        checks.check_strat_to_ito(_rot_drift, 0.6058)
    with pytest.raises(ValueError):
        checks.check_strat_to_ito(_rot_drift, torch.zeros(3, dtype=torch.float64))
    with pytest.raises(ValueError):
        checks.check_strat_to_ito(lambda x: _rot_drift(x)[:, 0], torch.zeros(2, dtype=torch.float64))
    with pytest.raises(TypeError):
        checks.check_strat_to_ito("ito_drift", torch.zeros(2, dtype=torch.float64))


# --- Chapter 2: Feynman–Kac with a quadratic killing rate; multiplicative noise and heavy tails ----------
def _fk_closed(x, T, theta, sigma, c):
    """u(x) = exp(-a(T) x^2 - b(T)) in closed form (the exercise's solution)."""
    gam = math.sqrt(theta**2 + 2 * sigma**2 * c)
    a = c * math.tanh(gam * T) / (gam + theta * math.tanh(gam * T))
    b = 0.5 * math.log(math.cosh(gam * T) + theta / gam * math.sinh(gam * T)) - 0.5 * theta * T
    return torch.exp(-a * x**2 - b)


def _fk_rk4(x, T, theta, sigma, c, steps=1000, drift=2.0, noise=2.0, const=1.0):
    """The Riccati equations a' = c - drift theta a - noise sigma^2 a^2, b' = const sigma^2 a (right: 2, 2, 1) by RK4."""
    def rhs(a):
        return c - drift * theta * a - noise * sigma**2 * a * a, const * sigma**2 * a
    a = b = 0.0
    h = T / steps
    for _ in range(steps):
        k1 = rhs(a)
        k2 = rhs(a + h / 2 * k1[0])
        k3 = rhs(a + h / 2 * k2[0])
        k4 = rhs(a + h * k3[0])
        a += h / 6 * (k1[0] + 2 * k2[0] + 2 * k3[0] + k4[0])
        b += h / 6 * (k1[1] + 2 * k2[1] + 2 * k3[1] + k4[1])
    return torch.exp(-a * x**2 - b)


_RATE_FK = (math.sqrt(5.0) - 1) / 2          # theta = 1, sigma = 2, c = 1/2


def test_fk_quadratic_check_accepts_the_closed_form_and_a_numerical_solution():
    assert checks.check_fk_quadratic(_fk_closed, _RATE_FK) is True
    a_inf = -math.log(float(_fk_rk4(torch.ones(1, dtype=torch.float64), 40.0, 1.0, 2.0, 0.5, steps=8000)
                            / _fk_rk4(torch.zeros(1, dtype=torch.float64), 40.0, 1.0, 2.0, 0.5, steps=8000)))
    assert checks.check_fk_quadratic(_fk_rk4, 4 * a_inf) is True        # rate = sigma^2 a(infinity), numerically


@pytest.mark.parametrize("wrong, message", [
    (lambda x, T, th, s, c: _fk_closed(x, T, th, s, c) / _fk_closed(torch.zeros(()), T, th, s, c), "x-independent part"),
    (lambda x, T, th, s, c: _fk_rk4(x, T, th, s, c, const=0.5), "x-independent part"),            # b' = sigma^2 a / 2
    (lambda x, T, th, s, c: torch.exp(-c * x**2 * T), "freezes the path"),
    (lambda x, T, th, s, c: 1 / _fk_closed(x, T, th, s, c), "exceeds 1"),                           # a birth rate
    (lambda x, T, th, s, c: _fk_rk4(x, T, th, s, c, drift=-2.0), "drift term has the wrong sign"),
    (lambda x, T, th, s, c: _fk_rk4(x, T, th, s, c, noise=4.0, const=2.0), "sigma\\^2 where"),    # g^2 for g^2/2
    (lambda x, T, th, s, c: _fk_rk4(x, T, th, s, c, drift=1.0), "half as large"),
    (lambda x, T, th, s, c: _fk_rk4(x, T, th, s, c, steps=5), "differs from the solution"),       # too few steps
    (lambda x, T, th, s, c: _fk_closed(x, T, 1.0, 2.0, 0.5), "differs from the solution"),        # the exercise's only
])
def test_fk_quadratic_check_names_the_mistake(wrong, message):
    with pytest.raises(AssertionError, match="Hint") as err:
        checks.check_fk_quadratic(wrong, _RATE_FK)
    assert re.search(message, str(err.value))


@pytest.mark.parametrize("rate, message", [
    (1.0, "c s\\^2"),                        # the killing rate averaged over the stationary law
    (_RATE_FK / 4, "coefficient of x\\^2"),  # a(infinity), without sigma^2
    (2 * _RATE_FK, "twice"),
    (0.618, "not the decay rate"),           # three digits
])
def test_fk_quadratic_check_reads_rate_fk(rate, message):
    with pytest.raises(AssertionError, match="Hint") as err:
        checks.check_fk_quadratic(_fk_closed, rate)
    assert re.search(message, str(err.value)) and "0.61803" not in str(err.value)


def test_fk_quadratic_check_refuses_bad_input():
    with pytest.raises(TypeError):
        checks.check_fk_quadratic("fk_quadratic", _RATE_FK)
    with pytest.raises(TypeError):
        checks.check_fk_quadratic(_fk_closed, "0.618")
    with pytest.raises(ValueError):
        checks.check_fk_quadratic(lambda x, *a: _fk_closed(x, *a).reshape(-1), _RATE_FK)       # (3, 3) in, (9,) out
    with pytest.raises(TypeError):
        checks.check_fk_quadratic(lambda x, *a: _fk_closed(x, *a).tolist(), _RATE_FK)
    with pytest.raises(AssertionError, match="raised TypeError"):
        checks.check_fk_quadratic(lambda x, T, theta, sigma: _fk_closed(x, T, theta, sigma, 0.5), _RATE_FK)


def _tails(x, theta, s0, s1, lam, nu=None, norm="exact"):
    """(s0^2 + s1^2 x^2)^(-nu) with nu = 1 - lam + theta / s1^2 unless given; norm: "exact" (Beta integral, torch.lgamma),
    "none", or "quadrature" (trapezoidal rule on [-1000, 1000])."""
    nu = 1 - lam + theta / s1**2 if nu is None else nu
    p = torch.exp(-nu * torch.log(s0**2 + s1**2 * x**2))
    if norm == "none":
        return p
    if norm == "quadrature":
        g = torch.linspace(-1000.0, 1000.0, 400001, dtype=torch.float64)
        return p / torch.trapezoid((s0**2 + s1**2 * g**2) ** (-nu), g)
    n = torch.tensor(nu, dtype=torch.float64)
    log_z = (1 - 2 * nu) * math.log(s0) - math.log(s1) + 0.5 * math.log(math.pi) + torch.lgamma(n - 0.5) - torch.lgamma(n)
    return p * torch.exp(-log_z)


_P_FAR = 1 - (2 / math.pi) * (math.atan(10.0) + 10.0 / 101.0)


def test_multiplicative_tails_check_accepts_the_right_answer():
    assert checks.check_multiplicative_tails(_tails, _P_FAR) is True
    lo = math.atan(10.0)                                                    # p_far by quadrature in x = tan(phi)
    phi = lo + (torch.arange(100000, dtype=torch.float64) + 0.5) * (math.pi / 2 - lo) / 100000
    quad = 2 * float((_tails(torch.tan(phi), 1.0, 1.0, 1.0, 0.0) / torch.cos(phi) ** 2).sum()) * (math.pi / 2 - lo) / 100000
    assert checks.check_multiplicative_tails(_tails, quad) is True


@pytest.mark.parametrize("wrong, message", [
    (lambda x, th, s0, s1, lam: _tails(x, th, s0, s1, lam, norm="none"), "not normalised"),
    (lambda x, th, s0, s1, lam: _tails(x, th, s0, s1, lam, norm="quadrature"), "not normalised"),   # misses the tail
    (lambda x, th, s0, s1, lam: _tails(x, th, s0, s1, 0.0), "reading lam = 0, not lam = 0.5"),      # lam ignored
    (lambda x, th, s0, s1, lam: _tails(x, th, s0, s1, lam, nu=th / s1**2), "reading lam = 1, not lam = 0"),  # no -D'
    (lambda x, th, s0, s1, lam: _tails(x, th, s0, s1, lam, nu=1 + lam + th / s1**2), "wrong sign"),
    (lambda x, th, s0, s1, lam: torch.exp(-th * x**2 / s0**2) / math.sqrt(math.pi * s0**2 / th), "not positive"),
    (lambda x, th, s0, s1, lam: _tails(x, th, s0, s1, lam, nu=1 - lam + 2 * th / s1**2), "falls like"),
    (lambda x, th, s0, s1, lam: _tails(x.float(), th, s0, s1, lam), "right power law"),              # float32
])
def test_multiplicative_tails_check_names_the_mistake(wrong, message):
    with pytest.raises(AssertionError, match="Hint") as err:
        checks.check_multiplicative_tails(wrong, _P_FAR)
    assert re.search(message, str(err.value))


@pytest.mark.parametrize("p_far, message", [
    (_P_FAR / 2, "one tail"),
    (math.erfc(10 / math.sqrt(2)), "Gaussian tail"),
    (1 - 10 / math.sqrt(101), "Stratonovich"),
    (4.2e-4, "not P\\(\\|x\\| > 10\\)"),
])
def test_multiplicative_tails_check_reads_p_far(p_far, message):
    with pytest.raises(AssertionError, match="Hint") as err:
        checks.check_multiplicative_tails(_tails, p_far)
    assert re.search(message, str(err.value)) and "4.19" not in str(err.value)


def test_multiplicative_tails_check_refuses_bad_input():
    with pytest.raises(TypeError):
        checks.check_multiplicative_tails(3.0, _P_FAR)
    with pytest.raises(TypeError):
        checks.check_multiplicative_tails(_tails, torch.tensor([_P_FAR, _P_FAR]))
    with pytest.raises(ValueError):
        checks.check_multiplicative_tails(_tails, float("nan"))
    with pytest.raises(ValueError):
        checks.check_multiplicative_tails(lambda x, *a: _tails(x, *a).reshape(-1), _P_FAR)         # (3, 3) in, (9,) out
    with pytest.raises(TypeError):
        checks.check_multiplicative_tails(lambda x, *a: _tails(x, *a).numpy(), _P_FAR)


# --- Chapter 2: the short exercises' checks reject the natural slips ------------------------------------------
def _ou_final(theta=2.0, sigma=1.0, mu=0.5, T=4.0):
    """ex-fp-ou: the chapter's bimodal data evolved on the chapter's grid by the OU process up to T."""
    from diffedu.fokker_planck import Grid, solve
    mix = de.GaussianMixture([0.3, 0.7], [[-1.5], [1.0]], [0.3, 0.2])
    grid = Grid(-6.0, 6.0, 1000)
    ou = de.OrnsteinUhlenbeck(theta=theta, sigma=sigma, mu=mu, T=T)
    return solve(ou, grid.density(mix.log_prob), grid, [0.0, T]).p[-1], grid


@pytest.mark.parametrize("kw", [dict(mu=0.0),                    # mean of the stationary law missed
                                dict(sigma=math.sqrt(2.0)),       # variance sigma^2 / theta
                                dict(T=2.0)])                      # stopped before the data are forgotten
def test_fp_ou_check_needs_the_stationary_law(kw):
    assert checks.check_fp_ou_stationary(*_ou_final()) is True
    with pytest.raises(AssertionError, match="Hint"):
        checks.check_fp_ou_stationary(*_ou_final(**kw))


def _fv(p, v, D, h, scheme="upwind"):
    """ex-fv-mass: the upwind scheme and three slips, all with zero wall currents (so all conserve mass)."""
    if scheme == "central":
        drift = v * (p[:-1] + p[1:]) / 2
    elif scheme == "downwind":
        drift = torch.relu(-v) * p[:-1] - torch.relu(v) * p[1:]
    else:
        drift = torch.relu(v) * p[:-1] - torch.relu(-v) * p[1:]
    scale = 2.0 if scheme == "g^2" else 1.0
    J = torch.cat([p.new_zeros(1), drift - scale * D * (p[1:] - p[:-1]) / h, p.new_zeros(1)])
    return -(J[1:] - J[:-1]) / h


@pytest.mark.parametrize("scheme", ["central", "downwind", "g^2"])
def test_fv_rhs_check_needs_the_upwind_scheme(scheme):
    assert checks.check_fv_rhs(_fv) is True
    with pytest.raises(AssertionError, match="not \\(nearly\\) stationary"):
        checks.check_fv_rhs(lambda *a: _fv(*a, scheme=scheme))


def test_ve_and_subvp_checks_need_the_exact_times():
    assert checks.check_ve_snr_time(math.log(math.sqrt(1 + 1e-4) / 0.01) / math.log(5000.0)) is True
    with pytest.raises(AssertionError, match="Hint"):                        # sigma_min^2 forgotten: 1e-5 off
        checks.check_ve_snr_time(math.log(1 / 0.01) / math.log(5000.0))
    assert checks.check_subvp_gap_time((-0.1 + math.sqrt(0.01 + 4 * 9.95 * math.log(2))) / (2 * 9.95)) is True
    with pytest.raises(AssertionError, match="Hint"):                        # the "simple" schedule 20 t
        checks.check_subvp_gap_time(math.sqrt(math.log(2) / 10))
