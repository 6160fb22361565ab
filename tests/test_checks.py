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


# --- Chapter 1: the Lyapunov equation and the Stratonovich-to-Ito drift ------------------------------
def _lyapunov_kron(A, G):
    d = A.shape[0]
    eye = torch.eye(d, dtype=A.dtype)
    K = torch.kron(A.contiguous(), eye) + torch.kron(eye, A.contiguous())
    return torch.linalg.solve(K, -(G @ G.T).reshape(d * d)).reshape(d, d)


_A_EX = torch.tensor([[-1.0, 2.0], [-1.0, -0.5]], dtype=torch.float64)
_G_EX = torch.tensor([[1.0, 0.0], [0.6, 0.5]], dtype=torch.float64)


def test_lyapunov_check_accepts_exact_answers_and_a_float32_sigma():
    assert checks.check_lyapunov_2d(_lyapunov_kron, _lyapunov_kron(_A_EX, _G_EX)) is True
    assert checks.check_lyapunov_2d(_lyapunov_kron, _lyapunov_kron(_A_EX.float(), _G_EX.float())) is True


@pytest.mark.parametrize("wrong, message", [
    (lambda A, G: _lyapunov_kron(A.T, G), "swapped"),                                   # A^T S + S A + G G^T = 0
    (lambda A, G: _lyapunov_kron(A, G.T), "G\\^T G"),                                   # the wrong noise covariance
    (lambda A, G: -_lyapunov_kron(A, G), "sign"),
    (lambda A, G: 2 * _lyapunov_kron(A, G), "twice"),
    (lambda A, G: 0.5 * _lyapunov_kron(A, G), "half"),
    (lambda A, G: torch.linalg.solve(2 * torch.kron(A, torch.eye(A.shape[0], dtype=A.dtype)),
                                     -(G @ G.T).reshape(-1)).reshape(A.shape), "Hint"),  # 2 A S = -G G^T
    (lambda A, G: _lyapunov_kron(A[:2, :2].contiguous(), G[:2]), "shape"),              # written for d = 2 only
])
def test_lyapunov_check_names_the_mistake(wrong, message):
    with pytest.raises(AssertionError, match="Hint") as err:
        checks.check_lyapunov_2d(wrong, _lyapunov_kron(_A_EX, _G_EX))
    assert re.search(message, str(err.value))


def test_lyapunov_check_reads_sigma_inf_too():
    with pytest.raises(AssertionError, match="Sigma_inf solves A\\^T S"):
        checks.check_lyapunov_2d(_lyapunov_kron, _lyapunov_kron(_A_EX.T.contiguous(), _G_EX))
    with pytest.raises(AssertionError, match="Sigma_inf is twice"):
        checks.check_lyapunov_2d(_lyapunov_kron, 2 * _lyapunov_kron(_A_EX, _G_EX))
    with pytest.raises(ValueError):
        checks.check_lyapunov_2d(_lyapunov_kron, torch.zeros(3, 3, dtype=torch.float64))
    with pytest.raises(TypeError):
        checks.check_lyapunov_2d(lambda A, G: _lyapunov_kron(A, G).numpy(), _lyapunov_kron(_A_EX, _G_EX))
    with pytest.raises(TypeError):
        checks.check_lyapunov_2d("stationary_cov", _lyapunov_kron(_A_EX, _G_EX))


def _sigma_strat(x):
    return 1 + 0.5 * torch.sin(x)


def _ito_drift(x, c=1.0):
    return -x + c * 0.25 * torch.cos(x) * (1 + 0.5 * torch.sin(x))


def _strat_paths(seed, c=1.0):
    sde = de.ItoSDE(drift=lambda x, t: _ito_drift(x, c), diffusion=lambda x, t: _sigma_strat(x), T=1.0)
    return de.euler_maruyama(sde, torch.ones(20000, 1, dtype=torch.float64), de.time_grid(0, 1.0, 100),
                             generator=torch.Generator().manual_seed(seed))[:, 0]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_strat_to_ito_check_holds_for_any_seed_and_rejects_the_ito_reading(seed):
    assert checks.check_strat_to_ito(_ito_drift, float(_strat_paths(seed).mean())) is True
    with pytest.raises(AssertionError, match="e\\^\\{-T\\}"):             # no correction: the Ito equation's mean
        checks.check_strat_to_ito(_ito_drift, float(_strat_paths(seed, 0.0).mean()))
    with pytest.raises(AssertionError, match="Hint"):                   # the correction doubled
        checks.check_strat_to_ito(_ito_drift, float(_strat_paths(seed, 2.0).mean()))


@pytest.mark.parametrize("c, message", [(0.0, "Stratonovich drift"), (-1.0, "wrong sign"), (2.0, "twice")])
def test_strat_to_ito_check_names_the_drift_mistake(c, message):
    with pytest.raises(AssertionError, match=message):
        checks.check_strat_to_ito(lambda x: _ito_drift(x, c), 0.48)


def test_strat_to_ito_check_refuses_bad_input():
    with pytest.raises(TypeError):
        checks.check_strat_to_ito(_ito_drift, "0.48")
    with pytest.raises(ValueError):
        checks.check_strat_to_ito(lambda x: _ito_drift(x).reshape(-1)[:3], 0.48)
