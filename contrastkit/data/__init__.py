"""Datasets for contrastkit: built-in sets that need no download, user image folders and arrays.

``load_dataset(name_or_path)`` is the entry point (``fields=`` for samples with several named inputs, e.g. an
image and its caption: :mod:`contrastkit.data.fields`, text in :mod:`contrastkit.data.text`); batches come from
:func:`epoch_batches` (the indices) and :func:`take_batch` (the rows) as uint8 and become float on the device via
:func:`uint8_to_float`.
"""

from contrastkit.data.batches import (
    epoch_batches,
    epoch_permutation,
    num_batches,
    take_batch,
    uint8_to_float,
)
from contrastkit.data.builtin import BUILTIN_DATASETS
from contrastkit.data.containers import UNLABELLED, ArrayDataset, DatasetSplits
from contrastkit.data.load import DatasetNotFoundError, load_dataset
from contrastkit.data.split import stratified_split
from contrastkit.data.text import decode_texts, encode_texts, text_lengths

__all__ = [
    "BUILTIN_DATASETS",
    "UNLABELLED",
    "ArrayDataset",
    "DatasetNotFoundError",
    "DatasetSplits",
    "decode_texts",
    "encode_texts",
    "epoch_batches",
    "epoch_permutation",
    "load_dataset",
    "num_batches",
    "stratified_split",
    "take_batch",
    "text_lengths",
    "uint8_to_float",
]
