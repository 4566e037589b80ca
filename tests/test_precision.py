"""full_precision on PyTorch releases without the per-device autocast query (torch < 2.4, which the package
accepts): the CPU's own getter decides, and the loss still computes in float32."""

import pytest
import torch

from contrastkit.precision import full_precision


@pytest.mark.filterwarnings("ignore:torch.is_autocast_cpu_enabled:DeprecationWarning")
def test_full_precision_without_the_per_device_query(monkeypatch):
    monkeypatch.delattr(torch.amp, "is_autocast_available", raising=False)
    a = torch.randn(16, 8).to(torch.bfloat16)

    @full_precision
    def gram(x: torch.Tensor) -> torch.Tensor:
        return x.T @ x

    with torch.autocast("cpu", dtype=torch.bfloat16):
        inside = gram(a)
        plain = a.float().T @ a.float()  # still under autocast: a bf16 product
    assert inside.dtype == torch.float32 and plain.dtype == torch.bfloat16
    torch.testing.assert_close(inside, a.double().T.mm(a.double()).float(), rtol=1e-6, atol=1e-6)
