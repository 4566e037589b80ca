"""Two-tower methods for the tests of the paired evaluation and of `contrastkit search`, written only against the
protocol (paired_fields, embed): a hand-set one whose embeddings are chosen by the test, and a small learned-shape
one (a linear tower over vectors, a bag-of-bytes tower over text)."""

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from contrastkit.data.containers import ArrayDataset, DatasetSplits
from contrastkit.data.text import decode_texts, encode_texts
from contrastkit.methods.base import Batch, Method, StepOutput
from contrastkit.process_group import ONE_PROCESS, Processes


class HandSet(Method):
    """Embeddings set by hand: a vector input embeds as itself (normalised); a text as ``table[text]``
    (normalised). ``fields``: the paired fields, the vector field first unless ``text_first``."""

    def __init__(self, table: Mapping[str, list[float]], fields: tuple[str, str] = ("x", "text"),
                 text_field: str = "text") -> None:
        super().__init__()
        self.encoder = nn.Identity()
        self.paired_fields = fields
        self.text_field = text_field
        self.table = {k: torch.tensor(v, dtype=torch.float32) for k, v in table.items()}
        self.scale = nn.Parameter(torch.ones(()))  # a parameter, so the device is found
        self.calls: list[tuple[str, int]] = []  # (field, rows) of each embed call

    def forward(self, batch: Batch, group: Processes = ONE_PROCESS) -> StepOutput:
        raise NotImplementedError

    def embed(self, field: str, x: Tensor) -> Tensor:
        self.calls.append((field, int(x.shape[0])))
        if field == self.text_field:
            z = torch.stack([self.table[t] for t in decode_texts(x)])
        elif field in self.paired_fields:
            z = x.float()
        else:
            raise ValueError(f"no field {field!r}")
        return F.normalize(z * self.scale, dim=1)


class LinearAndBagOfBytes(Method):
    """A linear tower over vectors of field ``x`` and a mean-of-byte-embeddings tower over UTF-8 text."""

    paired_fields = ("x", "text")

    def __init__(self, dim: int, out: int = 4, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.encoder = nn.Linear(dim, out)
        self.text_tower = nn.EmbeddingBag(256, out, mode="mean", padding_idx=0)

    def forward(self, batch: Batch, group: Processes = ONE_PROCESS) -> StepOutput:
        raise NotImplementedError

    def embed(self, field: str, x: Tensor) -> Tensor:
        z = self.text_tower(x.long()) if field == "text" else self.encoder(x)
        return F.normalize(z, dim=1)


def paired_splits(train: tuple[Tensor, list[str]], test: tuple[Tensor, list[str]], labels: tuple[list[int],
                  list[int]] | None = None, class_names: tuple[str, ...] = (), name: str = "pairs") -> DatasetSplits:
    """Splits of (vectors, texts) pairs, fields ``x`` and ``text``; labelled when ``labels`` (train, test) given."""

    def part(vectors: Tensor, texts: list[str], y: list[int] | None) -> ArrayDataset:
        text = encode_texts(texts) if texts else torch.zeros((0, 1), dtype=torch.uint8)
        return ArrayDataset.from_fields({"x": vectors.float(), "text": text},
                                        None if y is None else torch.tensor(y, dtype=torch.int64))

    return DatasetSplits(name, part(*train, None if labels is None else labels[0]),
                         part(*test, None if labels is None else labels[1]),
                         0 if labels is None else len(class_names), class_names=class_names)
