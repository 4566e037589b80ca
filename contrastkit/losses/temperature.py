"""Softmax temperature of InfoNCE-type losses (fixed or learnable) and the state their modules share."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from contrastkit._checks import checks_enabled
from contrastkit.similarity import Measure, get_measure

__all__ = ["LearnableTemperature", "SoftmaxLossModule", "Temperature", "check_temperature", "default_block_size"]


def check_temperature(temperature: float | Tensor, where: str) -> float | Tensor:
    """A positive float, or a positive 0-dim tensor (e.g. a learnable temperature's value)."""
    if isinstance(temperature, Tensor):
        if temperature.dim() != 0:
            raise ValueError(f"{where}: a tensor temperature must be 0-dimensional, "
                             f"got shape {tuple(temperature.shape)}")
        if checks_enabled("temperature") and not bool(temperature.detach() > 0):
            raise ValueError(f"{where}: temperature must be > 0, got {float(temperature)}")
        return temperature
    t = float(temperature)
    if not t > 0 or math.isinf(t):
        raise ValueError(f"{where}: temperature must be a finite number > 0, got {temperature!r}")
    return t


def default_block_size(num_candidates: int, target_elements: int = 1 << 25) -> int:
    """Rows per block so one block of scores holds about ``target_elements`` (128 MiB in float32)."""
    return max(16, target_elements // max(1, num_candidates))


class LearnableTemperature(nn.Module):
    r"""A temperature :math:`\tau = \exp(\theta)` learned with the model (CLIP, Radford et al. 2021).

    Parameterised by its logarithm so it stays positive; ``min_value`` / ``max_value`` clamp it
    (CLIP caps :math:`1/\tau` at 100) so the logits cannot blow up.
    """

    def __init__(self, init: float = 0.1, min_value: float = 0.01, max_value: float = 10.0) -> None:
        super().__init__()
        init = float(check_temperature(init, "LearnableTemperature"))
        if not 0 < min_value <= init <= max_value:
            raise ValueError(f"LearnableTemperature: need 0 < min_value <= init <= max_value, "
                             f"got {min_value}, {init}, {max_value}")
        self.log_temperature = nn.Parameter(torch.tensor(math.log(init)))
        self.min_value, self.max_value = min_value, max_value

    def forward(self) -> Tensor:
        return self.log_temperature.exp().clamp(self.min_value, self.max_value)

    def extra_repr(self) -> str:
        return f"value={float(self().detach()):.4g}, min={self.min_value}, max={self.max_value}"


class Temperature(nn.Module):
    """The temperature a loss module uses: fixed (a float) or learnable (:class:`LearnableTemperature`)."""

    def __init__(self, value: float, learnable: bool = False, where: str = "temperature") -> None:
        super().__init__()
        self.value = float(check_temperature(value, where))
        self.learned = LearnableTemperature(self.value) if learnable else None

    def forward(self) -> float | Tensor:
        return self.value if self.learned is None else self.learned()

    def extra_repr(self) -> str:
        return "learnable" if self.learned is not None else f"value={self.value}"


class SoftmaxLossModule(nn.Module):
    """Shared state of the softmax (InfoNCE-type) loss modules: temperature, score, memory mode."""

    def __init__(self, temperature: float, score: Measure | str, learnable_temperature: bool, memory_efficient: bool,
                 block_size: int | None) -> None:
        super().__init__()
        self.temperature = Temperature(temperature, learnable_temperature, type(self).__name__)
        self.score = get_measure(score)
        self.memory_efficient, self.block_size = memory_efficient, block_size

    def extra_repr(self) -> str:
        return f"memory_efficient={self.memory_efficient}"
