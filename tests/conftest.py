import pytest
import torch

import diffedu as de


@pytest.fixture
def gen():
    return de.make_generator(1234)


@pytest.fixture(autouse=True)
def _no_static_env(monkeypatch):
    monkeypatch.delenv("DIFFEDU_STATIC", raising=False)
    monkeypatch.delenv("DIFFEDU_DEVICE", raising=False)


def within(estimate, target, se, k=5.0):
    """|estimate - target| < k standard errors (entrywise)."""
    est = torch.as_tensor(estimate, dtype=torch.float64)
    return bool(((est - torch.as_tensor(target, dtype=torch.float64)).abs()
                 < k * torch.as_tensor(se, dtype=torch.float64)).all())
