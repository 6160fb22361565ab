"""`make gpu-check` (scripts/gpu_check.py) refuses clearly where torch sees no CUDA device."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "gpu_check.py"


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA: run make gpu-check instead")
def test_gpu_check_refuses_without_cuda():
    out = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    assert "no CUDA device" in out.stderr and "--devices cpu cpu" in out.stderr


def test_gpu_check_rejects_unknown_steps():
    out = subprocess.run([sys.executable, str(SCRIPT), "--only", "everything"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "invalid choice" in out.stderr
