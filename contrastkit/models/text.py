"""A text tower that needs no tokenizer: a convolutional encoder over UTF-8 bytes.

``uint8 (N, L) bytes, 0-padded -> Embedding(256, 64) -> [Conv1d(k) -> ChannelNorm -> ReLU] x depth -> max over
the text's own positions -> (N, width)``.

Bytes are the vocabulary (Zhang, Zhao & LeCun 2015, "Character-level Convolutional Networks for Text
Classification"; ByT5, Xue et al. 2022, for byte-level models at scale): every language and every typo has a
representation, and nothing is downloaded. The convolutions see a few characters each (kernels 5, 5, 3 with
dilations 1, 2, 4: 21 bytes, about three words, at the last layer); the max over positions keeps the strongest
detection of each feature anywhere in the text, so a sentence reads as the set of its word pieces -- what a
caption-to-audio or caption-to-image match needs most. The padding never counts: its positions are excluded
from the max, every convolution sees zeros there (as it does past the end of a row), and the normalisation is per
position (:class:`~contrastkit.models.sequence.ChannelNorm`, no statistics over the batch), so a text gives the
same features whatever length the batch is padded to. The max of ReLU features is all positive and, at
initialisation, nearly the same vector for every text (cosine 0.97 between random sentences, measured): a head
that starts with a BatchNorm (as the two-tower methods' do) centres it; a bare linear head left CLIP's loss
stalled at its chance value.

Token ids (int32 (N, L), padding -1) have a vocabulary of their own: :class:`ByteCNN` refuses them with a clear
error; bring your own ``nn.Module`` for them.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from contrastkit.data.text import BYTE_PAD
from contrastkit.models.sequence import ChannelNorm

__all__ = ["ByteCNN"]


class ByteCNN(nn.Module):
    """``uint8 (N, L) -> (N, width)``: byte embedding, dilated 1-D convolutions, max over the text's bytes."""

    def __init__(self, width: int = 256, depth: int = 3, embedding_dim: int = 64) -> None:
        super().__init__()
        for name, value in (("width", width), ("depth", depth), ("embedding_dim", embedding_dim)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"ByteCNN: `{name}` must be an integer >= 1, got {value!r}")
        self.embedding = nn.Embedding(256, embedding_dim)
        layers: list[nn.Module] = []
        channels = embedding_dim
        for i in range(depth):
            kernel, dilation = (5, 1) if i == 0 else (5 if i == 1 else 3, 2 ** i)
            layers += [nn.Conv1d(channels, width, kernel, padding=dilation * (kernel - 1) // 2, dilation=dilation),
                       ChannelNorm(width), nn.ReLU(inplace=True)]
            channels = width
        self.net = nn.Sequential(*layers)
        self.feature_dim = width

    def forward(self, text: Tensor) -> Tensor:
        if text.dim() != 2 or text.dtype != torch.uint8:
            raise ValueError(f"ByteCNN: expects UTF-8 bytes, uint8 (N, L) padded with {BYTE_PAD}, got {text.dtype} "
                             f"{tuple(text.shape)} (token ids need a text encoder of their own vocabulary)")
        present = (text != BYTE_PAD)[:, None, :]  # (N, 1, L)
        h = self.embedding(text.long()).transpose(1, 2)  # (N, embedding_dim, L)
        for layer in self.net:  # zeros past the text before every convolution, as past the end of the row
            h = layer(h * present if isinstance(layer, nn.Conv1d) else h)  # (N, width, L)
        h = h.masked_fill(~present, torch.finfo(h.dtype).min)
        return h.amax(dim=2)  # (N, width); every text has at least one byte (data.text)
