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


def load_hidden_checks(name):
    """The instructor's grading/hidden_checks.py as a module named ``name`` (it is not part of the package)."""
    import importlib.util
    import sys
    from pathlib import Path
    spec = importlib.util.spec_from_file_location(name, Path(__file__).resolve().parent.parent / "grading" / "hidden_checks.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module                    # dataclasses look their module up while it is executed
    spec.loader.exec_module(module)
    return module


def answers(namespace, wrong):
    """A hidden check's ``get``: the student's name, or ``wrong`` (the check's exception) when it is undefined."""
    def get(name):
        if name not in namespace:
            raise wrong(f"`{name}` is not defined")
        return namespace[name]
    return get

