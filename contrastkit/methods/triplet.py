r"""Supervised triplet embeddings with online mining (the survey's section E.3).

An encoder f and a linear head g map an image to an embedding :math:`z = g(f(x))` (D values, unit length by
default, as in FaceNet). A batch holds P classes x K samples (the :class:`~contrastkit.data.samplers.PKSampler`
of Hermans, Beyer & Leibe 2017, "In Defense of the Triplet Loss for Person Re-Identification"), so every anchor
has K - 1 positives and (P - 1) K negatives in its batch, and the triplets are mined online from the (PK x PK)
dissimilarity matrix by :class:`~contrastkit.losses.triplet.TripletLoss`:

.. math::  \ell(a, p, n) = [\, d(a,p) - d(a,n) + m \,]_+ ,

averaged over the mined triplets: by default FaceNet's semi-hard ones, :math:`d(a,p) \le d(a,n) < d(a,p) + m`
(Schroff, Kalenichenko & Philbin 2015, "FaceNet: A Unified Embedding for Face Recognition and Clustering");
``mining="all"`` (batch-all), ``"hard"`` (batch-hard, Hermans et al. 2017) or ``"easy"`` (easy positive with the
hardest negative, Xuan et al. 2020) select the others. ``d`` is Euclidean, cosine (:math:`d = -\cos`) or a
learnable Mahalanobis distance :math:`\sqrt{(x-y)^\top L L^\top (x-y)}` whose factor L is a parameter of the
method, trained with the encoder (survey section C: "nobody tried it").

Each step also logs the survey's three triplet states over *every* valid triplet of the batch
(:func:`~contrastkit.mining.triplet_categories`, exact counts): ``frac_hard`` (:math:`d(a,n) < d(a,p)`),
``frac_semihard`` (:math:`d(a,p) \le d(a,n) < d(a,p) + m`) and ``frac_easy`` (:math:`d(a,n) \ge d(a,p) + m`).
As training goes on hard and semi-hard triplets become rare and easy ones dominate.

Its evaluation extras (:meth:`TripletEmbedding.evaluation_extras`, the protocol's hook): the same three states over
every valid triplet of the held-out test split (``triplet_states`` in ``metrics.json``; of a seeded random subset of
:data:`STATE_SAMPLES` samples when it is larger), and the logged states per step as ``triplet_states.png``.

:meth:`TripletEmbedding.features` returns the embedding in a space where the Euclidean distance ranks pairs as
the training measure does (unit vectors for cosine, :math:`zL` for Mahalanobis), so Recall@1 and kNN on the
features measure the learned metric.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from contrastkit.losses.triplet import MINING_STRATEGIES, TripletLoss
from contrastkit.methods.base import Batch, BatchSpec, BuildContext, EvalContext, EvalExtras, Method, StepOutput
from contrastkit.methods.settings import UNSET, settings_from_keywords
from contrastkit.mining import triplet_categories
from contrastkit.process_group import ONE_PROCESS, Processes
from contrastkit.settings import setting
from contrastkit.similarity import MahalanobisDistance, Measure, get_measure, normalize

__all__ = ["TRIPLET_MEASURES", "TRIPLET_TRAINING_DEFAULTS", "TripletEmbedding", "TripletSettings", "build_triplet"]

TRIPLET_MEASURES = ("euclidean", "cosine", "mahalanobis")
#: the logged columns: the shares of the survey's three triplet states among the batch's valid triplets
STATE_KEYS = ("frac_hard", "frac_semihard", "frac_easy")
#: test samples whose triplets the evaluation counts (a seeded random subset of a larger test split)
STATE_SAMPLES = 2000
#: training defaults of ``triplet`` (the registry's ``training_defaults``): P x K batches, 40 epochs (README)
TRIPLET_TRAINING_DEFAULTS: dict[str, Any] = dict(epochs=40, batch_size=160, optimizer="adam", lr=2e-3,
                                                 weight_decay=1e-5, warmup_epochs=1)


@dataclass(frozen=True)
class TripletSettings:
    """The triplet method's settings (defaults: FaceNet's semi-hard mining and margin on unit embeddings). Frozen;
    the one home of the method's defaults (its keyword arguments read them from here)."""

    margin: float = setting(0.2, "triplet margin m in [d(a,p) - d(a,n) + m]_+ (FaceNet: 0.2 on unit vectors)",
                            low=0, low_open=True)
    mining: str = setting("semi-hard", "online triplet mining: semi-hard (FaceNet), all (batch-all), hard "
                                       "(batch-hard), easy (easy positive, hardest negative)",
                          choices=MINING_STRATEGIES)
    measure: str = setting("euclidean", "distance of the triplet loss: euclidean, cosine or a learnable "
                                        "Mahalanobis distance (trained with the encoder)", choices=TRIPLET_MEASURES)
    embedding_dim: int = setting(64, "size D of the embedding (a linear head on the encoder's features)", low=1)
    samples_per_class: int = setting(16, "K samples of each class in a P x K batch (P = batch size / K)", low=2)
    normalize_embedding: bool = setting(True, "scale embeddings to unit length (FaceNet); the margin is then "
                                              "relative to distances of at most 2")
    augmented: bool = setting(True, "train on one augmented view of each sample (the image methods' "
                                    "augmentation); false: the inputs themselves")


class TripletEmbedding(Method):
    """Encoder + linear head to D, trained with the triplet loss on P x K batches (see the module docstring).

    The settings are ``settings`` (a :class:`TripletSettings`, what the registry's builder passes) or keyword
    arguments; one left out takes :class:`TripletSettings`' default."""

    def __init__(self, encoder: nn.Module, feature_dim: int, *, settings: TripletSettings | None = None,
                 embedding_dim: int = UNSET, margin: float = UNSET, mining: str = UNSET, measure: str = UNSET,
                 samples_per_class: int = UNSET, normalize_embedding: bool = UNSET, augmented: bool = UNSET) -> None:
        super().__init__()
        self.settings = settings_from_keywords(TripletSettings, "TripletEmbedding", settings,
                                               embedding_dim=embedding_dim, margin=margin, mining=mining,
                                               measure=measure, samples_per_class=samples_per_class,
                                               normalize_embedding=normalize_embedding, augmented=augmented)
        s = self.settings
        embedding_dim, margin, mining, measure = s.embedding_dim, s.margin, s.mining, s.measure
        samples_per_class, normalize_embedding, augmented = s.samples_per_class, s.normalize_embedding, s.augmented
        if measure not in TRIPLET_MEASURES:
            raise ValueError(f"TripletEmbedding: `measure` must be one of {TRIPLET_MEASURES}, got {measure!r}")
        self.encoder = encoder
        self.head = nn.Linear(feature_dim, embedding_dim)
        distance: Measure = MahalanobisDistance(embedding_dim) if measure == "mahalanobis" else get_measure(measure)
        self.loss_fn = TripletLoss(margin, mining, distance)  # validates margin and mining; holds L when learnable
        self.measure_name, self.normalize_embedding = measure, bool(normalize_embedding)
        self.batch_spec = BatchSpec(views=1 if augmented else 0, labels=True, sampler="pk",
                                    samples_per_class=samples_per_class)

    @property
    def measure(self) -> Measure:
        """The training measure (a :class:`~contrastkit.similarity.MahalanobisDistance` holds the learned L)."""
        return self.loss_fn.distance

    @property
    def margin(self) -> float:
        return self.loss_fn.margin

    def embed(self, x: Tensor) -> Tensor:
        """The embedding z (N, D) of inputs x (N, ...), in float32; unit length with ``normalize_embedding``."""
        z = self.head(self.encoder(x).flatten(1)).float()  # (N, D)
        return normalize(z) if self.normalize_embedding else z

    def forward(self, batch: Batch, group: Processes = ONE_PROCESS) -> StepOutput:
        if batch.labels is None:
            raise ValueError("TripletEmbedding needs the labels of the batch (BatchSpec(labels=True))")
        z = self.embed(batch.views[0])  # (PK, D)
        with torch.autocast(z.device.type, enabled=False):  # distances and hinge in float32, also under bf16
            loss = self.loss_fn(z, batch.labels)
            states = self.triplet_states(z.detach(), batch.labels)
        return StepOutput(loss, logs={"loss": loss.detach(), **states})

    @torch.no_grad()
    def triplet_states(self, z: Tensor, labels: Tensor) -> dict[str, Tensor]:
        """Shares of hard / semi-hard / easy among the valid triplets of embeddings z (N, D) with labels (N,),
        under the training measure and margin; each 0 when the batch has no valid triplet."""
        counts = triplet_categories(z, labels, self.margin, self.measure).fractions()
        return {key: torch.tensor(counts[state]) for key, state in zip(STATE_KEYS, ("hard", "semi_hard", "easy"),
                                                                        strict=True)}

    def evaluation_extras(self, context: EvalContext) -> EvalExtras:
        """The triplet states of the test split (metric ``triplet_states``: the shares of hard / semi-hard / easy
        among all its valid triplets under the training measure and margin, and their number) and the plot of the
        logged states per step, ``triplet_states.png`` (from the run's ``train_log.csv``)."""
        extras = EvalExtras()
        data = context.data
        if context.scores and data.has_labels and len(data.test) >= 2:
            from contrastkit.evaluate.features import embed_inputs  # scikit-learn loads only when evaluating

            z = embed_inputs(self, data.test.inputs, features=self.embed, device=context.device)  # (N, D) CPU
            labels = data.test.labels
            n = len(z)
            if n > STATE_SAMPLES:  # every triplet of N samples costs O(N^2 log N): 43 s at 10,000 on 2 cores
                keep = torch.randperm(n, generator=torch.Generator().manual_seed(context.seed))[:STATE_SAMPLES].sort()
                z, labels = z[keep.values], labels[keep.values]
                extras.notes.append(f"triplet states: every valid triplet of {STATE_SAMPLES:,} of the {n:,} test "
                                    f"samples (a random subset, seeded with the run's seed)")
            with torch.no_grad():
                counts = triplet_categories(z.to(context.device), labels.to(context.device), self.margin,
                                            self.measure)
            extras.metrics["triplet_states"] = {**counts.fractions(), "triplets": counts.total, "samples": len(z)}
        if context.plot_dir is not None:
            path = context.plot_dir / "triplet_states.png"
            if context.train_log is None:
                extras.notes.append(f"{path.name} not drawn: the run has no train_log.csv (the states are logged "
                                    f"there per step)")
            else:
                from contrastkit.evaluate.plots import plot_triplet_states  # matplotlib loads only when plotting

                try:
                    plot_triplet_states(context.train_log, path, title=f"{context.title}: triplet states")
                    extras.plots.append(path)
                except ValueError as exc:
                    extras.notes.append(f"{path.name} not drawn: {exc}")
        return extras

    def features(self, x: Tensor) -> Tensor:
        """The embedding (N, D) in a space where the Euclidean distance ranks pairs like the training measure:
        z (euclidean), z / |z| (cosine), z L (Mahalanobis)."""
        z = self.embed(x)
        if self.measure_name == "cosine":
            return normalize(z)
        if isinstance(self.measure, MahalanobisDistance):
            return self.measure.project(z)
        return z


def build_triplet(ctx: BuildContext, s: TripletSettings) -> TripletEmbedding:
    """The registry's builder: a linear head from the encoder's features to ``embedding_dim``."""
    return TripletEmbedding(ctx.encoder, ctx.feature_dim, settings=s)
