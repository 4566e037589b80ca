"""Input conversion shared by the evaluation modules: numpy arrays or torch tensors (any device) -> numpy."""

from __future__ import annotations

import numpy as np
import torch


def to_numpy(x: object, name: str, where: str) -> np.ndarray:
    """A numpy array or a torch tensor on any device as a numpy array (bf16 / fp16 become float32)."""
    if isinstance(x, torch.Tensor):
        x = x.detach()
        if x.is_floating_point() and x.dtype not in (torch.float32, torch.float64):
            x = x.float()  # numpy has no bfloat16
        x = x.cpu().numpy()
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{where}: `{name}` must be a numpy array or torch.Tensor, got {type(x).__name__}")
    return x
