"""Evaluation of frozen representations: kNN, linear probe, alignment / uniformity, the CPC paper's speaker and
phone probes with MFCC / log-mel baselines, and plots.

Protocols are fixed and documented in each module; no choice ever looks at the test split.
"""

from contrastkit.evaluate.alignment import alignment, alignment_uniformity, uniformity
from contrastkit.evaluate.audio_features import log_mel, mfcc
from contrastkit.evaluate.degenerate import DegenerateFeaturesError
from contrastkit.evaluate.features import (
    ImagePreprocess,
    embed_inputs,
    evaluate_features,
    extract_features,
    pixel_features,
    raw_features,
)
from contrastkit.evaluate.knn import DEFAULT_KNN_K, knn_accuracy, knn_predict
from contrastkit.evaluate.linear_probe import (
    DEFAULT_CS,
    LinearProbe,
    ProbeResult,
    fit_linear_probe,
    linear_probe_accuracy,
    middle_c,
)
from contrastkit.evaluate.plots import embed_2d, plot_embedding_2d, plot_prediction_accuracy, plot_training_curves
from contrastkit.evaluate.sequence_probes import (
    align_frames,
    log_mel_features,
    mfcc_features,
    phone_probe,
    probe_features,
    speaker_probe,
)

__all__ = [
    "DEFAULT_CS",
    "DEFAULT_KNN_K",
    "DegenerateFeaturesError",
    "ImagePreprocess",
    "LinearProbe",
    "ProbeResult",
    "align_frames",
    "alignment",
    "alignment_uniformity",
    "embed_2d",
    "embed_inputs",
    "evaluate_features",
    "extract_features",
    "fit_linear_probe",
    "knn_accuracy",
    "knn_predict",
    "linear_probe_accuracy",
    "log_mel",
    "log_mel_features",
    "mfcc",
    "mfcc_features",
    "middle_c",
    "phone_probe",
    "pixel_features",
    "plot_embedding_2d",
    "plot_prediction_accuracy",
    "plot_training_curves",
    "probe_features",
    "raw_features",
    "speaker_probe",
    "uniformity",
]
