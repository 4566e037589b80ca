r"""A supervised cross-entropy baseline of the same encoder: the ceiling the contrastive methods are compared with.

An encoder f and a linear classifier W map an image to C class scores :math:`s = W f(x) + b`, trained with
cross-entropy on the class labels of one augmented view of each sample (the same augmentation as the image methods'
views; ``augmented: false`` trains on the inputs themselves):

.. math::  \ell = -\sum_c q_c \log \operatorname{softmax}(s)_c, \qquad
           q = (1 - \varepsilon)\, \mathbb{1}[c = y] + \varepsilon / C ,

averaged over the batch, with label smoothing :math:`\varepsilon` (Szegedy et al. 2016; 0 by default: plain
cross-entropy). The loss is :func:`torch.nn.functional.cross_entropy` computed in float32, also under the trainer's
bf16 autocast.

What the evaluation scores is the encoder's features f(x) (the protocol's default ``features``), so the kNN and the
linear probe of a ``supervised`` run are the "supervised ceiling" of the same encoder, budget and protocol as the
self-supervised runs (``benchmarks/quality.py`` puts them in one table). Its evaluation extras add the accuracy of the
trained classifier itself on the test split (``classifier_acc`` in ``metrics.json``).

The method needs labelled data with at least two classes: unlabelled data is refused when the method is built, in
one line saying what to use instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from contrastkit.methods.base import (
    Batch,
    BatchSpec,
    BuildContext,
    EvalContext,
    EvalExtras,
    Method,
    StepOutput,
    full_precision,
)
from contrastkit.methods.settings import UNSET, settings_from_keywords
from contrastkit.process_group import ONE_PROCESS, Processes
from contrastkit.settings import setting

__all__ = ["SUPERVISED_TRAINING_DEFAULTS", "SupervisedClassifier", "SupervisedSettings", "build_supervised",
           "classification_loss"]

#: training defaults of ``supervised`` (the registry's ``training_defaults``): AdamW with its usual decoupled weight
#: decay, the contrastive methods' epochs and batch size, so a run capped by ``max_minutes`` is capped alike
SUPERVISED_TRAINING_DEFAULTS: dict[str, Any] = dict(epochs=300, batch_size=256, optimizer="adamw", lr=2e-3,
                                                    weight_decay=5e-2, warmup_epochs=1)


@dataclass(frozen=True)
class SupervisedSettings:
    """The supervised baseline's settings. Frozen; the one home of its defaults (the method's keyword arguments read
    them from here)."""

    label_smoothing: float = setting(0.0, "label smoothing epsilon of the cross-entropy: the target puts 1 - "
                                          "epsilon + epsilon / C on the true class, epsilon / C on each other "
                                          "(0: plain cross-entropy)", low=0, high=1, high_open=True)
    augmented: bool = setting(True, "train on one augmented view of each sample (the image methods' "
                                    "augmentation); false: the inputs themselves")


@full_precision
def classification_loss(logits: Tensor, labels: Tensor, label_smoothing: float = 0.0) -> Tensor:
    """Mean cross-entropy of ``logits`` (N, C) against class ids ``labels`` (N,), in float32 (also under bf16
    autocast)."""
    return F.cross_entropy(logits, labels, label_smoothing=label_smoothing)


class SupervisedClassifier(Method):
    """Encoder + linear classifier to ``num_classes``, trained with cross-entropy on labelled views (see the module
    docstring). The settings are ``settings`` (a :class:`SupervisedSettings`, what the registry's builder passes) or
    keyword arguments; one left out takes :class:`SupervisedSettings`' default."""

    def __init__(self, encoder: nn.Module, feature_dim: int, num_classes: int, *,
                 settings: SupervisedSettings | None = None, label_smoothing: float = UNSET,
                 augmented: bool = UNSET) -> None:
        super().__init__()
        self.settings = settings_from_keywords(SupervisedSettings, "SupervisedClassifier", settings,
                                               label_smoothing=label_smoothing, augmented=augmented)
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError(f"SupervisedClassifier: `num_classes` must be an integer >= 2 (a classifier needs two "
                             f"classes at least), got {num_classes!r}")
        smoothing = self.settings.label_smoothing
        if not 0.0 <= smoothing < 1.0:
            raise ValueError(f"SupervisedClassifier: `label_smoothing` must be in [0, 1), got {smoothing!r}")
        self.encoder = encoder
        self.classifier = nn.Linear(feature_dim, num_classes)
        self.num_classes, self.label_smoothing = num_classes, float(smoothing)
        self.batch_spec = BatchSpec(views=1 if self.settings.augmented else 0, labels=True)

    def logits(self, x: Tensor) -> Tensor:
        """Class scores (N, C) of inputs ``x`` (N, ...)."""
        return self.classifier(self.encoder(x).flatten(1))

    def forward(self, batch: Batch, group: Processes = ONE_PROCESS) -> StepOutput:
        if batch.labels is None:
            raise ValueError("SupervisedClassifier needs the labels of the batch (BatchSpec(labels=True))")
        logits = self.logits(batch.views[0])  # (B, C)
        loss = classification_loss(logits, batch.labels, self.label_smoothing)
        accuracy = (logits.detach().argmax(1) == batch.labels).float().mean()  # this batch's training accuracy
        return StepOutput(loss, logs={"loss": loss.detach(), "train_acc": accuracy})

    def evaluation_extras(self, context: EvalContext) -> EvalExtras:
        """The trained classifier's own accuracy on the test split (metric ``classifier_acc``), when the data has
        labels and a test split."""
        extras = EvalExtras()
        data = context.data
        if not context.scores or not data.has_labels or len(data.test) == 0:
            return extras
        from contrastkit.evaluate.features import embed_inputs  # scikit-learn loads only when evaluating

        logits = embed_inputs(self, data.test.inputs, features=self.logits, device=context.device)  # (N, C) CPU
        correct = int((logits.argmax(1) == data.test.labels.cpu()).sum())
        extras.metrics["classifier_acc"] = correct / len(logits)
        return extras


def build_supervised(ctx: BuildContext, s: SupervisedSettings) -> SupervisedClassifier:
    """The registry's builder: a linear classifier to the data's classes; unlabelled data is refused here."""
    if ctx.num_classes < 2:
        what = "has no labels" if ctx.num_classes == 0 else "has a single class"
        raise ValueError(f"method 'supervised' trains a classifier on class labels, but the training data (the `data` "
                         f"setting) {what}; use labelled data with two classes or more (an image folder with one "
                         f"sub-folder per class, an .npz with y_train), or a self-supervised method such as simclr")
    return SupervisedClassifier(ctx.encoder, ctx.feature_dim, ctx.num_classes, settings=s)
