"""An encoder for sequences (N, C, T): strided 1-D convolutions, then the mean over time.

``(N, C, T) -> [Conv1d(k, stride s) -> BatchNorm1d -> ReLU] x len(strides) -> mean over time -> (N, width)``.
The default strides (5, 4, 2) downsample by 40; each convolution pads by ``(kernel - stride + 1) // 2``, and
sequences shorter than :attr:`Conv1dEncoder.min_length` (39 steps for the defaults) are refused with a clear
error. A method that needs the per-step latents (CPC) uses :meth:`Conv1dEncoder.steps`.
"""

from __future__ import annotations

from torch import Tensor, nn

__all__ = ["ChannelNorm", "Conv1dEncoder"]


class ChannelNorm(nn.Module):
    """Normalise each time step across channels, ``(x - mean_c) / std_c * gamma + beta`` (a LayerNorm over C of
    (N, C, T)): unlike BatchNorm it never mixes the samples of a batch, which a contrastive task over the batch
    could exploit (Riviere et al. 2020 replaced CPC's BatchNorm by it)."""

    def __init__(self, channels: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(channels, eps=eps)

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(x.transpose(1, 2)).transpose(1, 2)


class Conv1dEncoder(nn.Module):
    """``(N, in_channels, T) -> (N, width)`` (mean over time of :meth:`steps`)."""

    def __init__(self, in_channels: int = 1, width: int = 64, strides: tuple[int, ...] = (5, 4, 2),
                 kernels: tuple[int, ...] | None = None, norm: str = "batch") -> None:
        super().__init__()
        kernels = tuple(2 * s for s in strides) if kernels is None else tuple(kernels)
        if len(kernels) != len(strides) or not strides:
            raise ValueError(f"Conv1dEncoder: need one kernel per stride, got {kernels} and {strides}")
        if norm not in ("batch", "channel"):
            raise ValueError(f"Conv1dEncoder: `norm` must be 'batch' or 'channel', got {norm!r}")
        self.norm = norm
        layers: list[nn.Module] = []
        channels = in_channels
        for kernel, stride in zip(kernels, strides, strict=True):
            normalise = nn.BatchNorm1d(width) if norm == "batch" else ChannelNorm(width)
            layers += [nn.Conv1d(channels, width, kernel, stride=stride, padding=(kernel - stride + 1) // 2,
                                 bias=False), normalise, nn.ReLU(inplace=True)]
            channels = width
        self.net = nn.Sequential(*layers)
        self.feature_dim = width
        self.min_length = next(t for t in range(1, 1 << 20) if self.out_length(t) >= 1)

    def out_length(self, t: int) -> int:
        """Latent steps T' that :meth:`steps` gives for sequences of ``t`` steps (0 when shorter than
        :attr:`min_length`)."""
        for layer in self.net:
            if isinstance(layer, nn.Conv1d):
                t = (t + 2 * layer.padding[0] - layer.kernel_size[0]) // layer.stride[0] + 1
                if t < 1:
                    return 0
        return t

    def steps(self, x: Tensor) -> Tensor:
        """Per-step latents (N, width, T') of sequences (N, C, T)."""
        if x.dim() != 3 or x.shape[2] < self.min_length:
            raise ValueError(f"Conv1dEncoder: needs (N, C, T) sequences with T >= {self.min_length} (its strides and "
                             f"kernels), got shape {tuple(x.shape)}")
        return self.net(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.steps(x).mean(dim=2)  # (N, width)
