"""Mutation score of the survey's math against its own tests (mutmut; a measurement, not part of CI).

Each module group is mutated on its own, in a scratch copy of ``contrastkit/`` and ``tests/`` under a temporary
folder (mutmut 3 writes its ``mutants/`` folder there; the working tree is never touched), and each mutant is run
against that group's own test files only, fast tests only (``-m "not slow"``):

=============  ============================  =========================================================
group          mutated                       tests
=============  ============================  =========================================================
losses         contrastkit/losses/*.py       tests/losses/
mining         contrastkit/mining.py         tests/test_mining.py
similarity     contrastkit/similarity.py     tests/test_similarity.py
mi             contrastkit/mi.py             tests/test_mi.py
negatives      contrastkit/negatives.py      tests/test_negatives.py
=============  ============================  =========================================================

A mutant is *killed* when a test fails (or the run times out) with it in place, and *survives* when every test
passes. mutmut runs, for each mutant, the tests that executed the mutated function in a clean run, so a
function no test calls gives "no tests" mutants (counted as survivors). Some survivors are *equivalent*: the
change cannot alter any result (e.g. a message of an error that no caller matches on is not one of them -- a
message is a result -- but ``x.clamp(min=0)`` after an operation that is already non-negative is). They are listed
in :data:`EQUIVALENT` with a one-line reason each, keyed by the file and the exact line before and after, and the
score is given twice: killed / all mutants and killed / non-equivalent mutants.

mutmut 3 does not mutate functions with decorators other than ``@staticmethod`` / ``@classmethod``; the scratch
copy therefore applies such decorators after the definition (``f = deco(f)``, the same function to every caller;
see :func:`_undecorate`), so the losses under ``@full_precision`` and the ``@torch.no_grad()`` updates of
``negatives.py`` are mutated too. Not mutated at all: module-level statements (constants, tables), default
arguments that are not plain literals, abstract methods and overloads (stubs). A function that runs only at import
(e.g. ``Measure.__init_subclass__`` for the library's own classes) is mutated but exercised only by a test that runs
it again (a test defining its own subclass). Line numbers in the report are the working tree's.

Needs mutmut (``pip install -e '.[mutation]'``). On the project's 2-core machine, otherwise idle, ``--workers 2``
took 22 minutes for all groups (3,968 mutants; losses 11, mi 5, mining 3, similarity 2, negatives 1); the README
("Measured") gives the last score.

Usage: python benchmarks/mutation.py [--group losses --group mi ...] [--workers 1] [--keep | --scratch DIR
       [--rerun-survivors]] [--json FILE]

``--scratch DIR`` keeps each group's copy in ``DIR/<group>`` and resumes it on the next call (mutmut keeps every
mutant's result); with ``--rerun-survivors`` the mutants that survived are run again against the working tree's
current tests -- the way to check new tests without running every mutant again.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: group -> (files to mutate (glob patterns relative to the repository root), its own test files)
GROUPS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "losses": (("contrastkit/losses/*",), ("tests/losses",)),
    "mining": (("contrastkit/mining.py",), ("tests/test_mining.py",)),
    "similarity": (("contrastkit/similarity.py",), ("tests/test_similarity.py",)),
    "mi": (("contrastkit/mi.py",), ("tests/test_mi.py",)),
    "negatives": (("contrastkit/negatives.py",), ("tests/test_negatives.py",)),
}

_DEVICE = "device: every tensor of these tests is on the CPU (a GPU run would tell them apart)"
_INF = 'float() reads "-INF" / "INF" as the same infinities'

#: Equivalent mutants: (file, source line before, line after) -> why no result can change. Lines are compared
#: stripped of surrounding white space; an entry that matches no surviving mutant is reported as stale. Reasons
#: starting with "device:" are equivalent only on a machine without an accelerator (the tests run on the CPU).
EQUIVALENT: dict[tuple[str, str, str], str] = {
    ("contrastkit/losses/contrastive.py",
     "return _pair_terms(d, similar.to(d.device), margin).mean()",
     "return _pair_terms(d, similar.to(None), margin).mean()"):
        _DEVICE,
    ("contrastkit/losses/contrastive.py",
     "upper = torch.ones(n, n, dtype=torch.bool, device=d.device).triu(1)  # pairs i < j",
     "upper = torch.ones(n, n, dtype=torch.bool, device=None).triu(1)  # pairs i < j"):
        _DEVICE,
    ("contrastkit/losses/contrastive.py",
     "upper = torch.ones(n, n, dtype=torch.bool, device=d.device).triu(1)  # pairs i < j",
     "upper = torch.ones(n, n, dtype=torch.bool, ).triu(1)  # pairs i < j"):
        _DEVICE,
    ("contrastkit/losses/contrastive.py",
     "terms = _pair_terms(d, similar.to(d.device), margin)  # (N, N)",
     "terms = _pair_terms(d, similar.to(None), margin)  # (N, N)"):
        _DEVICE,
    ("contrastkit/losses/contrastive.py",
     "return terms[upper].sum() / (n * (n - 1) // 2)",
     "return terms[upper].sum() / (n * (n - 1) / 2)"):
        "n (n - 1) is even: true and floor division give the same count",
    ("contrastkit/losses/infonce.py",
     "factors = score.score_factors(query, flat)",
     "factors = None"):
        "the generic paired-score path computes the same logits as the factorised one (a speed path)",
    ("contrastkit/losses/infonce.py",
     'logits = torch.einsum("nd,nmd->nm", a, c.view(n, m, -1))  # (N, M)',
     'logits = torch.einsum("ND,NMD->NM", a, c.view(n, m, -1))  # (N, M)'):
        "einsum subscripts only need to be consistent, not lower case",
    ("contrastkit/losses/infonce.py",
     "rows = torch.arange(n, device=logits.device)",
     "rows = torch.arange(n, device=None)"):
        _DEVICE,
    ("contrastkit/losses/infonce.py",
     "rows = torch.arange(n, device=logits.device)",
     "rows = torch.arange(n, )"):
        _DEVICE,
    ("contrastkit/losses/infonce.py",
     'logits = logits.masked_fill(same, float("-inf"))',
     'logits = logits.masked_fill(same, float("-INF"))'):
        _INF,
    ("contrastkit/losses/logsumexp.py",
     "column_offset: int = 0,",
     "column_offset: int = 1,"):
        "the default is never used: _block_scores always passes column_offset",
    ("contrastkit/losses/logsumexp.py",
     "cols = torch.arange(max(first, 0), max(first, min(first + b, s)), device=scores.device)  # diagonal "
     "columns",
     "cols = torch.arange(max(first, 0), max(first, min(first + b, s)), device=None)  # diagonal columns"):
        _DEVICE,
    ("contrastkit/losses/logsumexp.py",
     "cols = torch.arange(max(first, 0), max(first, min(first + b, s)), device=scores.device)  # diagonal "
     "columns",
     "cols = torch.arange(max(first, 0), max(first, min(first + b, s)), )  # diagonal columns"):
        _DEVICE,
    ("contrastkit/losses/logsumexp.py",
     "if row_labels is not None and col_labels is not None:",
     "if row_labels is not None or col_labels is not None:"):
        "row_logsumexp refuses one set of labels without the other, so both are None or both given",
    ("contrastkit/losses/logsumexp.py",
     'scores.masked_fill_(same, float("-inf"))',
     'scores.masked_fill_(same, float("-INF"))'):
        _INF,
    ("contrastkit/losses/logsumexp.py",
     'scores[local, cols] = float("-inf")',
     'scores[local, cols] = float("-INF")'):
        _INF,
    ("contrastkit/losses/logsumexp.py",
     "if block_size is None or block_size >= R:",
     "if block_size is None or block_size > R:"):
        "a block of all R rows: the blockwise path gives the same value and gradient in one block",
    ("contrastkit/losses/logsumexp.py",
     "unnormalised = _block_scores(a, c, 0, R, mask_args)  # (R, S) scores ...",
     "unnormalised = _block_scores(a, c, 0, None, mask_args)  # (R, S) scores ..."):
        "a[0:None] is a[0:R]: the same rows",
    ("contrastkit/losses/logsumexp.py",
     "grad_a = weight * (unnormalised @ c) if need_a else None",
     "grad_a = weight * (unnormalised @ c) if (need_a) or True else None"):
        "a gradient for an input that needs none is discarded by autograd (only slower)",
    ("contrastkit/losses/logsumexp.py",
     "grad_c = unnormalised.T @ (weight * a) if need_c else None",
     "grad_c = unnormalised.T @ (weight * a) if (need_c) or True else None"):
        "a gradient for an input that needs none is discarded by autograd (only slower)",
    ("contrastkit/losses/logsumexp.py",
     "grad_a = torch.empty_like(a) if need_a else None",
     "grad_a = torch.empty_like(a) if (need_a) or True else None"):
        "a gradient for an input that needs none is discarded by autograd (only slower)",
    ("contrastkit/losses/logsumexp.py",
     "grad_c = torch.zeros_like(c) if need_c else None",
     "grad_c = torch.zeros_like(c) if (need_c) or True else None"):
        "a gradient for an input that needs none is discarded by autograd (only slower)",
    ("contrastkit/losses/nce.py",
     "logit_data = upcast(model_data, dtype) - upcast(noise_data, dtype) - log_nu  # (N,)",
     "logit_data = upcast(model_data, None) - upcast(noise_data, dtype) - log_nu  # (N,)"):
        "type promotion turns a float32 operand into the same float64 value (bf16 / fp16 inputs are float32 "
        "already under @full_precision)",
    ("contrastkit/losses/nce.py",
     "logit_data = upcast(model_data, dtype) - upcast(noise_data, dtype) - log_nu  # (N,)",
     "logit_data = upcast(model_data, dtype) - upcast(noise_data, None) - log_nu  # (N,)"):
        "type promotion turns a float32 operand into the same float64 value (bf16 / fp16 inputs are float32 "
        "already under @full_precision)",
    ("contrastkit/losses/nce.py",
     "logit_noise = upcast(model_noise, dtype) - upcast(noise_noise, dtype) - log_nu  # (N, K) or (M,)",
     "logit_noise = upcast(model_noise, None) - upcast(noise_noise, dtype) - log_nu  # (N, K) or (M,)"):
        "type promotion turns a float32 operand into the same float64 value (bf16 / fp16 inputs are float32 "
        "already under @full_precision)",
    ("contrastkit/losses/nce.py",
     "logit_noise = upcast(model_noise, dtype) - upcast(noise_noise, dtype) - log_nu  # (N, K) or (M,)",
     "logit_noise = upcast(model_noise, dtype) - upcast(noise_noise, None) - log_nu  # (N, K) or (M,)"):
        "type promotion turns a float32 operand into the same float64 value (bf16 / fp16 inputs are float32 "
        "already under @full_precision)",
    ("contrastkit/losses/ntxent.py",
     "positive = torch.cat([torch.arange(n, 2 * n), torch.arange(n)]).to(z.device)  # (2N,) the other view's "
     "row",
     "positive = torch.cat([torch.arange(n, 2 * n), torch.arange(n)]).to(None)  # (2N,) the other view's row"):
        _DEVICE,
    ("contrastkit/losses/ntxent.py",
     "rows = torch.arange(r, device=anchors.device)",
     "rows = torch.arange(r, device=None)"):
        _DEVICE,
    ("contrastkit/losses/ntxent.py",
     "rows = torch.arange(r, device=anchors.device)",
     "rows = torch.arange(r, )"):
        _DEVICE,
    ("contrastkit/losses/ntxent.py",
     "num_classes = int(inverse.max()) + 1",
     "num_classes = int(inverse.max()) + 2"):
        "one more, never indexed row of zeros in class_sum",
    ("contrastkit/losses/ntxent.py",
     "num_pos = torch.bincount(col_ids, minlength=num_classes)[row_ids] - 1  # (R,) |P(i)|",
     "num_pos = torch.bincount(col_ids, )[row_ids] - 1  # (R,) |P(i)|"):
        "the anchors are rows of the candidates (documented), so every row class occurs among the columns and "
        "the count has that length anyway",
    ("contrastkit/losses/ntxent.py",
     "num_pos = torch.ones(r, dtype=torch.long, device=anchors.device)",
     "num_pos = torch.ones(r, dtype=None, device=anchors.device)"):
        "ones in float or int64 divide and multiply to the same values",
    ("contrastkit/losses/ntxent.py",
     "num_pos = torch.ones(r, dtype=torch.long, device=anchors.device)",
     "num_pos = torch.ones(r, dtype=torch.long, device=None)"):
        "ones in float or int64 divide and multiply to the same values",
    ("contrastkit/losses/ntxent.py",
     "num_pos = torch.ones(r, dtype=torch.long, device=anchors.device)",
     "num_pos = torch.ones(r, device=anchors.device)"):
        "ones in float or int64 divide and multiply to the same values",
    ("contrastkit/losses/ntxent.py",
     "num_pos = torch.ones(r, dtype=torch.long, device=anchors.device)",
     "num_pos = torch.ones(r, dtype=torch.long, )"):
        "ones in float or int64 divide and multiply to the same values",
    ("contrastkit/losses/ntxent.py",
     'lse = torch.logsumexp(logits.masked_fill(self_mask, float("-inf")), dim=1)  # (R,)',
     'lse = torch.logsumexp(logits.masked_fill(self_mask, float("-INF")), dim=1)  # (R,)'):
        _INF,
    ("contrastkit/losses/triplet.py",
     "if embeddings.shape[0] < 2:",
     "if embeddings.shape[0] <= 2:"):
        "two samples hold no valid triplet (it needs three distinct samples), so the mining also returns a "
        "connected zero",
    ("contrastkit/losses/triplet.py",
     "if embeddings.shape[0] < 2:",
     "if embeddings.shape[0] < 3:"):
        "two samples hold no valid triplet (it needs three distinct samples), so the mining also returns a "
        "connected zero",
    ("contrastkit/losses/triplet.py",
     "eye = torch.eye(labels.shape[0], dtype=torch.bool, device=labels.device)",
     "eye = torch.eye(labels.shape[0], dtype=torch.bool, device=None)"):
        _DEVICE,
    ("contrastkit/losses/triplet.py",
     "eye = torch.eye(labels.shape[0], dtype=torch.bool, device=labels.device)",
     "eye = torch.eye(labels.shape[0], dtype=torch.bool, )"):
        _DEVICE,
    ("contrastkit/losses/triplet.py",
     "has_both = positive.any(1) & negative.any(1)  # (N,)",
     "has_both = positive.any(1) & negative.any(None)  # (N,)"):
        "an anchor has no negative only when the batch holds a single class, and then no anchor has one",
    ("contrastkit/losses/triplet.py",
     'inf = torch.tensor(float("inf"), dtype=d.dtype, device=d.device)',
     'inf = torch.tensor(float("inf"), dtype=None, device=d.device)'):
        "a 0-dim float32 infinity takes d's dtype in torch.where (type promotion); infinity is exact in every "
        "dtype",
    ("contrastkit/losses/triplet.py",
     'inf = torch.tensor(float("inf"), dtype=d.dtype, device=d.device)',
     'inf = torch.tensor(float("inf"), dtype=d.dtype, device=None)'):
        "a 0-dim float32 infinity takes d's dtype in torch.where (type promotion); infinity is exact in every "
        "dtype",
    ("contrastkit/losses/triplet.py",
     'inf = torch.tensor(float("inf"), dtype=d.dtype, device=d.device)',
     'inf = torch.tensor(float("inf"), device=d.device)'):
        "a 0-dim float32 infinity takes d's dtype in torch.where (type promotion); infinity is exact in every "
        "dtype",
    ("contrastkit/losses/triplet.py",
     'inf = torch.tensor(float("inf"), dtype=d.dtype, device=d.device)',
     'inf = torch.tensor(float("inf"), dtype=d.dtype, )'):
        "a 0-dim float32 infinity takes d's dtype in torch.where (type promotion); infinity is exact in every "
        "dtype",
    ("contrastkit/losses/triplet.py",
     'inf = torch.tensor(float("inf"), dtype=d.dtype, device=d.device)',
     'inf = torch.tensor(float("INF"), dtype=d.dtype, device=d.device)'):
        "a 0-dim float32 infinity takes d's dtype in torch.where (type promotion); infinity is exact in every "
        "dtype",
    ("contrastkit/mi.py",
     "def _check_pairs(x: object, y: object, where: str, min_rows: int = 1) -> tuple[Tensor, Tensor]:",
     "def _check_pairs(x: object, y: object, where: str, min_rows: int = 2) -> tuple[Tensor, Tensor]:"):
        "the default is never used: every caller passes min_rows",
    ("contrastkit/mi.py",
     "log_prob_positive = torch.diagonal(F.log_softmax(logits, dim=1))  # (N,)",
     "log_prob_positive = torch.diagonal(F.log_softmax(logits, dim=None))  # (N,)"):
        "for a 2-D input log_softmax's implicit dim is 1 (torch warns but computes the same)",
    ("contrastkit/mi.py",
     "log_prob_positive = torch.diagonal(F.log_softmax(logits, dim=1))  # (N,)",
     "log_prob_positive = torch.diagonal(F.log_softmax(logits, ))  # (N,)"):
        "for a 2-D input log_softmax's implicit dim is 1 (torch warns but computes the same)",
    ("contrastkit/mi.py",
     "self.g_skip = nn.Linear(dim_x, embed_dim, bias=False) if linear_skip else None",
     "self.g_skip = nn.Linear(dim_x, embed_dim, bias=None) if linear_skip else None"):
        "nn.Linear reads bias=None as no bias",
    ("contrastkit/mi.py",
     "self.h_skip = nn.Linear(dim_y, embed_dim, bias=False) if linear_skip else None",
     "self.h_skip = nn.Linear(dim_y, embed_dim, bias=None) if linear_skip else None"):
        "nn.Linear reads bias=None as no bias",
    ("contrastkit/mi.py",
     "if self.g_skip is not None and self.h_skip is not None:",
     "if self.g_skip is not None or self.h_skip is not None:"):
        "the two shortcuts are created together, so both exist or neither",
    ("contrastkit/mi.py",
     "off_diagonal = ~torch.eye(n, dtype=torch.bool, device=scores.device)  # (N, N)",
     "off_diagonal = ~torch.eye(n, dtype=torch.bool, device=None)  # (N, N)"):
        _DEVICE,
    ("contrastkit/mi.py",
     "off_diagonal = ~torch.eye(n, dtype=torch.bool, device=scores.device)  # (N, N)",
     "off_diagonal = ~torch.eye(n, dtype=torch.bool, )  # (N, N)"):
        _DEVICE,
    ("contrastkit/mi.py",
     'masked = scores.masked_fill(~off_diagonal, float("-inf"))  # (N, N)',
     'masked = scores.masked_fill(~off_diagonal, float("-INF"))  # (N, N)'):
        _INF,
    ("contrastkit/mi.py",
     "return upcast(mean, dtype), upcast(log_var, dtype), upcast(y, dtype)",
     "return upcast(mean, None), upcast(log_var, dtype), upcast(y, dtype)"):
        "mean and y only meet in y - mean, where type promotion gives the same float64 values",
    ("contrastkit/mi.py",
     "return upcast(mean, dtype), upcast(log_var, dtype), upcast(y, dtype)",
     "return upcast(mean, dtype), upcast(log_var, dtype), upcast(y, None)"):
        "mean and y only meet in y - mean, where type promotion gives the same float64 values",
    ("contrastkit/mi.py",
     "permutation = torch.randperm(y.shape[0], generator=generator, device=y.device)  # (N,)",
     "permutation = torch.randperm(y.shape[0], generator=generator, device=None)  # (N,)"):
        _DEVICE,
    ("contrastkit/mi.py",
     "permutation = torch.randperm(y.shape[0], generator=generator, device=y.device)  # (N,)",
     "permutation = torch.randperm(y.shape[0], generator=generator, )  # (N,)"):
        _DEVICE,
    ("contrastkit/mining.py",
     "rows = torch.arange(labels_rows.shape[0], device=labels.device)",
     "rows = torch.arange(labels_rows.shape[0], device=None)"):
        _DEVICE,
    ("contrastkit/mining.py",
     "rows = torch.arange(labels_rows.shape[0], device=labels.device)",
     "rows = torch.arange(labels_rows.shape[0], )"):
        _DEVICE,
    ("contrastkit/mining.py",
     'if x.device.type != "cpu" or x.requires_grad or x.dtype not in (torch.float32, torch.float64):',
     'if x.device.type == "cpu" or x.requires_grad or x.dtype not in (torch.float32, torch.float64):'):
        "sends CPU rows to torch.sort instead of NumPy: the same sorted values (the NumPy path is a speed "
        "path; order among ties is unspecified either way)",
    ("contrastkit/mining.py",
     'if x.device.type != "cpu" or x.requires_grad or x.dtype not in (torch.float32, torch.float64):',
     'if x.device.type != "XXcpuXX" or x.requires_grad or x.dtype not in (torch.float32, torch.float64):'):
        "sends CPU rows to torch.sort instead of NumPy: the same sorted values (the NumPy path is a speed "
        "path; order among ties is unspecified either way)",
    ("contrastkit/mining.py",
     'if x.device.type != "cpu" or x.requires_grad or x.dtype not in (torch.float32, torch.float64):',
     'if x.device.type != "CPU" or x.requires_grad or x.dtype not in (torch.float32, torch.float64):'):
        "sends CPU rows to torch.sort instead of NumPy: the same sorted values (the NumPy path is a speed "
        "path; order among ties is unspecified either way)",
    ("contrastkit/mining.py",
     "return torch.sort(x, dim=1)",
     "return torch.sort(x, )"):
        "torch.sort's default dim is -1, the rows of these 2-D inputs",
    ("contrastkit/mining.py",
     "order = np.argsort(array, axis=1)",
     "order = np.argsort(array, )"):
        "np.argsort's default axis is -1, the rows of these 2-D inputs",
    ("contrastkit/mining.py",
     "return torch.from_numpy(np.take_along_axis(array, order, axis=1)), torch.from_numpy(order)",
     "return torch.from_numpy(np.take_along_axis(array, order, )), torch.from_numpy(order)"):
        "np.take_along_axis's default axis is -1, the rows of these 2-D inputs",
    ("contrastkit/mining.py",
     'inf = torch.tensor(float("inf"), dtype=d.dtype, device=d.device)',
     'inf = torch.tensor(float("inf"), dtype=None, device=d.device)'):
        "a 0-dim float32 infinity takes d's dtype in torch.where (type promotion); infinity is exact in every "
        "dtype",
    ("contrastkit/mining.py",
     'inf = torch.tensor(float("inf"), dtype=d.dtype, device=d.device)',
     'inf = torch.tensor(float("inf"), dtype=d.dtype, device=None)'):
        "a 0-dim float32 infinity takes d's dtype in torch.where (type promotion); infinity is exact in every "
        "dtype",
    ("contrastkit/mining.py",
     'inf = torch.tensor(float("inf"), dtype=d.dtype, device=d.device)',
     'inf = torch.tensor(float("inf"), device=d.device)'):
        "a 0-dim float32 infinity takes d's dtype in torch.where (type promotion); infinity is exact in every "
        "dtype",
    ("contrastkit/mining.py",
     'inf = torch.tensor(float("inf"), dtype=d.dtype, device=d.device)',
     'inf = torch.tensor(float("inf"), dtype=d.dtype, )'):
        "a 0-dim float32 infinity takes d's dtype in torch.where (type promotion); infinity is exact in every "
        "dtype",
    ("contrastkit/mining.py",
     'inf = torch.tensor(float("inf"), dtype=d.dtype, device=d.device)',
     'inf = torch.tensor(float("INF"), dtype=d.dtype, device=d.device)'):
        "a 0-dim float32 infinity takes d's dtype in torch.where (type promotion); infinity is exact in every "
        "dtype",
    ("contrastkit/mining.py",
     "k = int(self.n_positive.max()) if d.shape[0] else 0",
     "k = int(self.n_positive.max()) if (d.shape[0]) or True else 0"):
        "a chunk is never empty (chunks come from range(0, N, chunk)), so the else branch never runs",
    ("contrastkit/mining.py",
     "k = int(self.n_positive.max()) if d.shape[0] else 0",
     "k = int(self.n_positive.max()) if d.shape[1] else 0"):
        "a chunk is never empty (chunks come from range(0, N, chunk)), so the else branch never runs",
    ("contrastkit/mining.py",
     "k = int(self.n_positive.max()) if d.shape[0] else 0",
     "k = int(self.n_positive.max()) if d.shape[0] else 1"):
        "a chunk is never empty (chunks come from range(0, N, chunk)), so the else branch never runs",
    ("contrastkit/mining.py",
     "torch.where(positive, d, inf), k, dim=1, largest=False, sorted=True)  # (B, K) each",
     "torch.where(positive, d, inf), k, largest=False, sorted=True)  # (B, K) each"):
        "topk's defaults are dim=-1 (the rows of these 2-D inputs) and sorted=True",
    ("contrastkit/mining.py",
     "torch.where(positive, d, inf), k, dim=1, largest=False, sorted=True)  # (B, K) each",
     "torch.where(positive, d, inf), k, dim=1, largest=False, )  # (B, K) each"):
        "topk's defaults are dim=-1 (the rows of these 2-D inputs) and sorted=True",
    ("contrastkit/mining.py",
     "self.positive_valid = torch.arange(k, device=d.device)[None, :] < self.n_positive  # (B, K)",
     "self.positive_valid = torch.arange(k, device=None)[None, :] < self.n_positive  # (B, K)"):
        _DEVICE,
    ("contrastkit/mining.py",
     "self.positive_valid = torch.arange(k, device=d.device)[None, :] < self.n_positive  # (B, K)",
     "self.positive_valid = torch.arange(k, )[None, :] < self.n_positive  # (B, K)"):
        _DEVICE,
    ("contrastkit/mining.py",
     "below = torch.searchsorted(self.negative_sorted, self.positive_sorted + shift, right=False)",
     "below = torch.searchsorted(self.negative_sorted, self.positive_sorted + shift, )"):
        "searchsorted's default is right=False",
    ("contrastkit/mining.py",
     "ones = torch.ones(start.shape, dtype=dtype, device=start.device)",
     "ones = torch.ones(start.shape, dtype=dtype, device=None)"):
        _DEVICE,
    ("contrastkit/mining.py",
     "ones = torch.ones(start.shape, dtype=dtype, device=start.device)",
     "ones = torch.ones(start.shape, dtype=dtype, )"):
        _DEVICE,
    ("contrastkit/mining.py",
     "edges = torch.zeros(batch, n + 1, dtype=dtype, device=start.device)",
     "edges = torch.zeros(batch, n + 1, dtype=dtype, device=None)"):
        "one more column that is never read (the prefix sum takes columns 0 .. n - 1)",
    ("contrastkit/mining.py",
     "edges = torch.zeros(batch, n + 1, dtype=dtype, device=start.device)",
     "edges = torch.zeros(batch, n + 1, dtype=dtype, )"):
        "one more column that is never read (the prefix sum takes columns 0 .. n - 1)",
    ("contrastkit/mining.py",
     "edges = torch.zeros(batch, n + 1, dtype=dtype, device=start.device)",
     "edges = torch.zeros(batch, n + 2, dtype=dtype, device=start.device)"):
        "one more column that is never read (the prefix sum takes columns 0 .. n - 1)",
    ("contrastkit/mining.py",
     "return max(1, min(n, _CHUNK_ELEMENTS // max(n, 1)))",
     "return max(2, min(n, _CHUNK_ELEMENTS // max(n, 1)))"):
        "differs only for N > 2^18 anchors (chunk 2 instead of 1) or N < 1 (same chunk): chunking never "
        "changes a result",
    ("contrastkit/mining.py",
     "return max(1, min(n, _CHUNK_ELEMENTS // max(n, 1)))",
     "return max(1, min(n, _CHUNK_ELEMENTS // max(n, 2)))"):
        "differs only for N > 2^18 anchors (chunk 2 instead of 1) or N < 1 (same chunk): chunking never "
        "changes a result",
    ("contrastkit/mining.py",
     "pair_of = torch.repeat_interleave(torch.arange(counts.shape[0], device=counts.device), counts)  # (T,)",
     "pair_of = torch.repeat_interleave(counts)  # (T,)"):
        "torch.repeat_interleave(counts) is documented as repeat_interleave(arange(len(counts)), counts)",
    ("contrastkit/mining.py",
     "pair_of = torch.repeat_interleave(torch.arange(counts.shape[0], device=counts.device), counts)  # (T,)",
     "pair_of = torch.repeat_interleave(torch.arange(counts.shape[0], device=None), counts)  # (T,)"):
        "torch.repeat_interleave(counts) is documented as repeat_interleave(arange(len(counts)), counts)",
    ("contrastkit/mining.py",
     "pair_of = torch.repeat_interleave(torch.arange(counts.shape[0], device=counts.device), counts)  # (T,)",
     "pair_of = torch.repeat_interleave(torch.arange(counts.shape[0], ), counts)  # (T,)"):
        "torch.repeat_interleave(counts) is documented as repeat_interleave(arange(len(counts)), counts)",
    ("contrastkit/mining.py",
     "within = torch.arange(total, device=counts.device) - run_offsets[pair_of]  # (T,)",
     "within = torch.arange(total, device=None) - run_offsets[pair_of]  # (T,)"):
        _DEVICE,
    ("contrastkit/mining.py",
     "within = torch.arange(total, device=counts.device) - run_offsets[pair_of]  # (T,)",
     "within = torch.arange(total, ) - run_offsets[pair_of]  # (T,)"):
        _DEVICE,
    ("contrastkit/mining.py",
     "empty = torch.zeros(0, dtype=torch.long, device=embeddings.device)",
     "empty = torch.zeros(0, dtype=torch.long, device=None)"):
        _DEVICE,
    ("contrastkit/mining.py",
     "empty = torch.zeros(0, dtype=torch.long, device=embeddings.device)",
     "empty = torch.zeros(0, dtype=torch.long, )"):
        _DEVICE,
    ("contrastkit/mining.py",
     "return (blocks[0] if len(blocks) == 1 else torch.cat(blocks)), n_triplets",
     "return (blocks[0] if (len(blocks) == 1) and False else torch.cat(blocks)), n_triplets"):
        "cat of a single block is that block",
    ("contrastkit/negatives.py",
     'self.register_buffer("ids", torch.full((size,), -1, dtype=torch.long))',
     'self.register_buffer("ids", torch.full((size,), -1, dtype=None))'):
        "torch.full infers int64 from the integer fill value -1",
    ("contrastkit/negatives.py",
     'self.register_buffer("ids", torch.full((size,), -1, dtype=torch.long))',
     'self.register_buffer("ids", torch.full((size,), -1, ))'):
        "torch.full infers int64 from the integer fill value -1",
    ("contrastkit/negatives.py",
     "slots = (start + torch.arange(kept, device=self.keys.device)) % self.size  # (kept,)",
     "slots = (start + torch.arange(kept, device=None)) % self.size  # (kept,)"):
        _DEVICE,
    ("contrastkit/negatives.py",
     "slots = (start + torch.arange(kept, device=self.keys.device)) % self.size  # (kept,)",
     "slots = (start + torch.arange(kept, )) % self.size  # (kept,)"):
        _DEVICE,
    ("contrastkit/negatives.py",
     "self.ids[slots] = indices.to(self.ids.device)",
     "self.ids[slots] = indices.to(None)"):
        _DEVICE,
    ("contrastkit/negatives.py",
     'self.register_buffer("bank", F.normalize(init, dim=1))  # (num_samples, D)',
     'self.register_buffer("bank", F.normalize(init, ))  # (num_samples, D)'):
        "F.normalize's default dim is 1",
    ("contrastkit/negatives.py",
     "sampled = torch.randint(0, self.num_samples, (self.num_negatives,), generator=generator,",
     "sampled = torch.randint(self.num_samples, (self.num_negatives,), generator=generator,"):
        "torch.randint(high, size) starts at 0: the same call",
    ("contrastkit/negatives.py",
     "device=self.bank.device if generator is None else generator.device)",
     "device=None)"):
        _DEVICE,
    ("contrastkit/negatives.py",
     "device=self.bank.device if generator is None else generator.device)",
     ")"):
        _DEVICE,
    ("contrastkit/negatives.py",
     "device=self.bank.device if generator is None else generator.device)",
     "device=self.bank.device if (generator is None) or True else generator.device)"):
        _DEVICE,
    ("contrastkit/negatives.py",
     "sampled = sampled.to(self.bank.device)",
     "sampled = sampled.to(None)"):
        _DEVICE,
    ("contrastkit/negatives.py",
     "features = F.normalize(keys.detach().to(self.bank.dtype), dim=1)",
     "features = F.normalize(keys.detach().to(self.bank.dtype), )"):
        "F.normalize's default dim is 1",
    ("contrastkit/negatives.py",
     "self.bank[indices] = F.normalize(mixed, dim=1)",
     "self.bank[indices] = F.normalize(mixed, )"):
        "F.normalize's default dim is 1",
    ("contrastkit/similarity.py",
     "return F.normalize(x, dim=-1, eps=1e-12 if x.dtype == torch.float64 else 1e-8)",
     "return F.normalize(x, eps=1e-12 if x.dtype == torch.float64 else 1e-8)"):
        "F.normalize's default dim is 1, the last dimension of the 2-D inputs every measure passes",
    ("contrastkit/similarity.py",
     "return F.normalize(x, dim=-1, eps=1e-12 if x.dtype == torch.float64 else 1e-8)",
     "return F.normalize(x, dim=+1, eps=1e-12 if x.dtype == torch.float64 else 1e-8)"):
        "F.normalize's default dim is 1, the last dimension of the 2-D inputs every measure passes",
    ("contrastkit/similarity.py",
     "weight = torch.eye(dim_x, dim_y) if dim_x == dim_y else nn.init.xavier_uniform_(torch.empty(dim_x, "
     "dim_y))",
     "weight = torch.eye(dim_y) if dim_x == dim_y else nn.init.xavier_uniform_(torch.empty(dim_x, dim_y))"):
        "in this branch dim_x == dim_y, so eye(dim_y) and eye(dim_x) are eye(dim_x, dim_y)",
    ("contrastkit/similarity.py",
     "weight = torch.eye(dim_x, dim_y) if dim_x == dim_y else nn.init.xavier_uniform_(torch.empty(dim_x, "
     "dim_y))",
     "weight = torch.eye(dim_x, ) if dim_x == dim_y else nn.init.xavier_uniform_(torch.empty(dim_x, dim_y))"):
        "in this branch dim_x == dim_y, so eye(dim_y) and eye(dim_x) are eye(dim_x, dim_y)",
    ("contrastkit/similarity.py",
     "self.first_y = nn.Linear(dim_y, hidden, bias=False)",
     "self.first_y = nn.Linear(dim_y, hidden, bias=None)"):
        "nn.Linear reads bias=None as no bias",
    ("contrastkit/similarity.py",
     "return self.rest(self.first_x(self._cast(x)) + self.first_y(self._cast(y))).squeeze(-1)  # (N,)",
     "return self.rest(self.first_x(self._cast(x)) + self.first_y(self._cast(y))).squeeze(+1)  # (N,)"):
        "the output is (N, 1): squeezing dim 1 is squeezing dim -1",
}

DETECTED = {"killed", "timeout", "segfault", "caught by type check"}

# Runs inside the scratch folder after `mutmut run`: every mutant's status, and the diff of each one not killed.
_COLLECT = r"""
import json, sys
from mutmut.configuration import config
from mutmut.mutation.data import SourceFileMutationData
from mutmut.mutation.diff_apply import get_diff_for_mutant
from mutmut.stats import status_by_exit_code
from mutmut.utils.file_utils import walk_mutatable_files

out = []
for path in walk_mutatable_files():
    data = SourceFileMutationData(path=path)
    data.load()
    for name, code in data.exit_code_by_key.items():
        status = status_by_exit_code[code]
        diff = "" if status == "killed" else get_diff_for_mutant(name, path=data.path)
        out.append({"name": name, "path": str(path), "status": status, "diff": diff})
json.dump(out, sys.stdout)
"""


@dataclass
class Mutant:
    name: str
    path: str  # relative to the repository root
    status: str
    diff: str
    line: int | None = None
    before: str = ""
    after: str = ""
    equivalent: str | None = None


@dataclass
class GroupResult:
    group: str
    mutants: list[Mutant] = field(default_factory=list)
    seconds: float = 0.0
    skipped_functions: list[str] = field(default_factory=list)

    def count(self, *statuses: str) -> int:
        return sum(m.status in statuses for m in self.mutants)

    @property
    def killed(self) -> int:
        return sum(m.status in DETECTED for m in self.mutants)

    @property
    def equivalent(self) -> int:
        return sum(m.equivalent is not None for m in self.mutants)


def _config_section(patterns: tuple[str, ...], tests: tuple[str, ...]) -> str:
    def toml_list(items: tuple[str, ...] | list[str]) -> str:
        return "[" + ", ".join(json.dumps(i) for i in items) + "]"

    return (
        "\n[tool.mutmut]\n"
        'source_paths = ["contrastkit"]\n'
        f"only_mutate = {toml_list(patterns)}\n"
        f"pytest_add_cli_args_test_selection = {toml_list(tests)}\n"
        f'pytest_add_cli_args = {toml_list(["-m", "not slow", "-p", "no:cacheprovider", "-q"])}\n'
        'process_isolation = "forkserver"\n'  # torch is not fork-safe after threads have run
        "use_git_change_detection = false\n"
        "use_setproctitle = false\n"
    )


def _sync(source: Path, target: Path, text: str | None = None) -> bool:
    """Write ``text`` (default: the source's bytes) to ``target`` unless it already holds exactly that."""
    data = source.read_bytes() if text is None else text.encode()
    if target.exists() and target.read_bytes() == data:
        return False
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    return True


def _scratch_copy(scratch: Path, patterns: tuple[str, ...], tests: tuple[str, ...]) -> None:
    """The scratch copy: ``contrastkit/`` (the mutated files rewritten by :func:`_undecorate`), ``tests/`` and
    ``pyproject.toml`` with mutmut's settings. An existing copy is brought up to date file by file: mutmut then
    makes new mutants only of the functions that changed and keeps every other result."""
    fresh = not (scratch / "contrastkit").exists()
    mutated = {p for pattern in patterns for p in ROOT.glob(pattern) if p.suffix == ".py"}
    origins_file = scratch / "line_origins.json"
    origins = {} if fresh else json.loads(origins_file.read_text())
    changed = []
    for folder in ("contrastkit", "tests"):
        for path in sorted((ROOT / folder).rglob("*")):
            if not path.is_file() or "__pycache__" in path.parts or path.suffix == ".pyc":
                continue
            relative = path.relative_to(ROOT)
            text = None
            if path in mutated:
                text, origins[str(relative)] = _undecorate(path.read_text())
            if _sync(path, scratch / relative, text) and not fresh and folder == "contrastkit":
                changed.append(str(relative))
    origins_file.write_text(json.dumps(origins))
    if changed:
        print(f"mutation.py: {scratch}: brought up to date with the working tree: {', '.join(changed)}",
              file=sys.stderr)
    if fresh:
        text = (ROOT / "pyproject.toml").read_text()
        if "[tool.mutmut]" in text:
            raise SystemExit("mutation.py: pyproject.toml already has a [tool.mutmut] section; this script writes "
                             "its own")
        (scratch / "pyproject.toml").write_text(text + _config_section(patterns, tests))


#: decorators left in place: mutmut handles a lone @staticmethod / @classmethod; abstract methods and overloads
#: are bodiless stubs
_KEPT_DECORATORS = {"staticmethod", "classmethod", "abstractmethod", "overload"}


def _rewritable(node: ast.AST) -> bool:
    return isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and bool(node.decorator_list) and not any(
        ast.unparse(d).rpartition(".")[2] in _KEPT_DECORATORS for d in node.decorator_list)


def _undecorate(text: str) -> tuple[str, list[int]]:
    """The module with ``@deco`` functions rewritten as ``def f`` followed by ``f = deco(f)``, and for each line of
    the result the line of ``text`` it comes from (an inserted line: the function's last line).

    mutmut 3 does not mutate decorated functions (their copies could re-run the decorator's side effects);
    applying the decorator after the definition is the same function to every caller, and lets mutmut mutate
    the body (e.g. the losses wrapped by ``@full_precision`` and the ``@torch.no_grad()`` updates of
    ``negatives.py``). Decorator lines become blank lines, so every other line keeps its number.
    """
    tree = ast.parse(text)
    lines = text.splitlines()
    after: dict[int, list[str]] = {}  # 1-based last line of a function -> lines to insert after it
    blank: set[int] = set()
    scopes = [tree.body] + [n.body for n in tree.body if isinstance(n, ast.ClassDef)]
    for body in scopes:
        for node in body:
            if not _rewritable(node):
                continue
            wrapped = node.name
            for decorator in reversed(node.decorator_list):
                wrapped = f"({ast.unparse(decorator)})({wrapped})"
            indent = " " * node.col_offset
            after.setdefault(node.end_lineno, []).append(f"{indent}{node.name} = {wrapped}")
            for d in node.decorator_list:
                blank.update(range(d.lineno, d.end_lineno + 1))
    out, origin = [], []
    for number, line in enumerate(lines, start=1):
        out.append("" if number in blank else line)
        origin.append(number)
        for extra in after.get(number, []):
            out.append(extra)
            origin.append(number)
    return "\n".join(out) + "\n", origin


def _unmutated_functions(files: list[Path]) -> list[str]:
    """Functions mutmut leaves alone even after :func:`_undecorate`: abstract methods and overloads (stubs), and
    a lone @staticmethod / @classmethod is mutated as it is."""
    out = []
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.decorator_list \
                    and not _rewritable(node):
                names = [ast.unparse(d) for d in node.decorator_list]
                if names not in (["staticmethod"], ["classmethod"]):
                    out.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} (@{', @'.join(names)})")
    return out


def _changed_lines(diff: str) -> tuple[int | None, str, str]:
    """(offset of the first changed line within the function, 1-based; removed lines; added lines)."""
    offset = None
    removed, added = [], []
    position = 0
    for line in diff.splitlines():
        hunk = re.match(r"@@ -(\d+)", line)
        if hunk:
            position = int(hunk.group(1))
            continue
        if line.startswith(("---", "+++")):
            continue
        if line.startswith("-"):
            offset = position if offset is None else offset
            removed.append(line[1:].strip())
            position += 1
        elif line.startswith("+"):
            offset = position if offset is None else offset
            added.append(line[1:].strip())
        else:
            position += 1
    return offset, " / ".join(removed), " / ".join(added)


def _function_start(source: Path, mutant_name: str) -> int | None:
    """First line (decorators included) of the function a mutant name points at, e.g.
    ``contrastkit.mi.xǁCLUBǁforward__mutmut_3`` or ``contrastkit.mining.x_pair_mask__mutmut_1``."""
    local = mutant_name.rpartition(".")[2].rsplit("__mutmut_", 1)[0]
    if local.startswith("xǁ"):
        cls, func = local[2:].split("ǁ")[:2]
    else:
        cls, func = None, local[2:] if local.startswith("x_") else local
    tree = ast.parse(source.read_text())
    scopes = [n for n in ast.walk(tree) if isinstance(n, ast.ClassDef) and n.name == cls] if cls else [tree]
    for scope in scopes:
        for node in (scope.body if cls else ast.walk(scope)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == func:
                return min([node.lineno, *(d.lineno for d in node.decorator_list)])
    return None


def _mutmut(scratch: Path, args: list[str], env: dict[str, str], group: str) -> None:
    log = scratch / "mutmut.log"
    with log.open("a") as f:
        run = subprocess.run([sys.executable, "-m", "mutmut", *args], cwd=scratch, env=env, stdout=f,
                             stderr=subprocess.STDOUT)
    if run.returncode != 0:
        tail = log.read_text()[-3000:]
        raise SystemExit(f"mutation.py: `mutmut {args[0]}` failed for {group} (exit {run.returncode}):\n{tail}")


def _collect(scratch: Path, env: dict[str, str]) -> list[dict[str, str]]:
    collected = subprocess.run([sys.executable, "-c", _COLLECT], cwd=scratch, env=env, capture_output=True,
                               text=True, check=True)
    return json.loads(collected.stdout)


def run_group(group: str, workers: int, scratch_root: Path | None, keep: bool, rerun: bool) -> GroupResult:
    patterns, tests = GROUPS[group]
    files = sorted({p for pattern in patterns for p in ROOT.glob(pattern) if p.suffix == ".py"})
    result = GroupResult(group, skipped_functions=_unmutated_functions(files))
    if scratch_root is None:
        scratch = Path(tempfile.mkdtemp(prefix=f"contrastkit-mutation-{group}-"))
    else:
        scratch = scratch_root / group
    _scratch_copy(scratch, patterns, tests)
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONDONTWRITEBYTECODE="1")
    start = time.perf_counter()
    try:
        _mutmut(scratch, ["run", "--max-children", str(workers)], env, group)  # resumes an unfinished run
        if rerun:  # survivors of an earlier run against the refreshed tests
            again = [m["name"] for m in _collect(scratch, env) if m["status"] not in DETECTED]
            for i in range(0, len(again), 200):
                _mutmut(scratch, ["run", "--max-children", str(workers), *again[i:i + 200]], env, group)
        result.seconds = time.perf_counter() - start
        origins = json.loads((scratch / "line_origins.json").read_text())
        for item in _collect(scratch, env):
            mutant = Mutant(item["name"], item["path"], item["status"], item["diff"])
            if mutant.diff:
                offset, mutant.before, mutant.after = _changed_lines(mutant.diff)
                start_line = _function_start(scratch / mutant.path, mutant.name)
                if offset is not None and start_line is not None:
                    mutant.line = origins[mutant.path][start_line + offset - 2]  # the working tree's line
                mutant.equivalent = EQUIVALENT.get((mutant.path, mutant.before, mutant.after))
            result.mutants.append(mutant)
    finally:
        if keep or scratch_root is not None:
            print(f"[{group}] scratch copy kept: {scratch}", file=sys.stderr)
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    return result


def _percent(a: int, b: int) -> str:
    return f"{100 * a / b:5.1f} %" if b else "    -"


def report(results: list[GroupResult], seconds: float) -> None:
    print(f"{'group':<11} {'mutants':>7} {'killed':>6} {'timeout':>7} {'survived':>8} {'no tests':>8} "
          f"{'equivalent':>10} {'killed/all':>10} {'killed/non-eq':>13} {'minutes':>7}")
    totals = [0, 0, 0, 0, 0, 0]
    for r in results:
        row = [len(r.mutants), r.killed, r.count("timeout"), r.count("survived"), r.count("no tests"), r.equivalent]
        totals = [a + b for a, b in zip(totals, row, strict=True)]
        print(f"{r.group:<11} {row[0]:>7} {row[1]:>6} {row[2]:>7} {row[3]:>8} {row[4]:>8} {row[5]:>10} "
              f"{_percent(row[1], row[0]):>10} {_percent(row[1], row[0] - row[5]):>13} {r.seconds / 60:>7.1f}")
    if len(results) > 1:
        print(f"{'all':<11} {totals[0]:>7} {totals[1]:>6} {totals[2]:>7} {totals[3]:>8} {totals[4]:>8} "
              f"{totals[5]:>10} {_percent(totals[1], totals[0]):>10} "
              f"{_percent(totals[1], totals[0] - totals[5]):>13} {seconds / 60:>7.1f}")
    device = sum(m.equivalent == _DEVICE for r in results for m in r.mutants)
    if device:
        print(f"of the equivalent mutants, {device} are so only without an accelerator (a device argument; the tests "
              f"run on the CPU)")
    other = sorted({m.status for r in results for m in r.mutants} - DETECTED - {"survived", "no tests"})
    if other:
        print("other statuses (counted as not killed):", ", ".join(
            f"{s}: {sum(m.status == s for r in results for m in r.mutants)}" for s in other))

    survivors = [m for r in results for m in r.mutants if m.status not in DETECTED and m.equivalent is None]
    print(f"\nSurviving mutants that are not listed as equivalent: {len(survivors)}")
    for m in sorted(survivors, key=lambda m: (m.path, m.line or 0)):
        print(f"\n{m.path}:{m.line}  {m.name}  [{m.status}]")
        for line in m.diff.splitlines():
            if line.startswith(("-", "+")) and not line.startswith(("---", "+++")):
                print(f"    {line}")
    equivalent = [m for r in results for m in r.mutants if m.equivalent is not None]
    if equivalent:
        print(f"\nEquivalent mutants ({len(equivalent)}):")
        for m in sorted(equivalent, key=lambda m: (m.path, m.line or 0)):
            print(f"  {m.path}:{m.line}  {m.before!r} -> {m.after!r}: {m.equivalent}")
    groups = {r.group for r in results}
    used = {(m.path, m.before, m.after) for r in results for m in r.mutants}
    stale = [key for key in EQUIVALENT if key not in used
             and any(Path(key[0]).match(p) or key[0] == p for g in groups for p in GROUPS[g][0])]
    if stale:
        print("\nStale EQUIVALENT entries (no such surviving mutant any more):")
        for key in stale:
            print(f"  {key}")
    skipped = [s for r in results for s in r.skipped_functions]
    if skipped:
        print("\nNot mutated (abstract methods and overloads: stubs):")
        for s in skipped:
            print(f"  {s}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--group", action="append", choices=list(GROUPS), help="repeatable; default: all groups")
    parser.add_argument("--workers", type=int, default=1, help="mutmut's parallel test processes (default 1)")
    parser.add_argument("--keep", action="store_true", help="keep each scratch copy (its path is printed)")
    parser.add_argument("--scratch", type=Path, help="scratch copies in DIR/<group>, kept; an existing one is "
                        "resumed (mutants and results kept, tests refreshed from the working tree)")
    parser.add_argument("--rerun-survivors", action="store_true", help="with --scratch: run the mutants not "
                        "killed before again, against the refreshed tests")
    parser.add_argument("--json", type=Path, help="also write every mutant's status and diff here")
    args = parser.parse_args(argv)
    if args.rerun_survivors and args.scratch is None:
        parser.error("--rerun-survivors needs --scratch (the earlier run's copies)")
    try:
        import mutmut  # noqa: F401
    except ImportError:
        raise SystemExit("mutation.py: needs mutmut (pip install -e '.[mutation]')") from None
    start = time.perf_counter()
    results = []
    for group in args.group or list(GROUPS):
        print(f"[{group}] mutating {', '.join(GROUPS[group][0])} against {', '.join(GROUPS[group][1])} ...",
              file=sys.stderr, flush=True)
        results.append(run_group(group, args.workers, args.scratch, args.keep, args.rerun_survivors))
    seconds = time.perf_counter() - start
    report(results, seconds)
    if args.json:
        args.json.write_text(json.dumps([{"group": r.group, **m.__dict__} for r in results for m in r.mutants],
                                        indent=1))
    print(f"\nwall time: {seconds / 60:.1f} min; command: python benchmarks/mutation.py "
          f"{' '.join(sys.argv[1:])}".rstrip())


if __name__ == "__main__":
    main()
