"""The contrastive loss family (survey section E), each an ``nn.Module`` and a function.

========================  =====================================================================
``contrastive_loss``      Hadsell, Chopra & LeCun 2006: margin loss on similar / dissimilar pairs
``triplet_loss``          margin loss on triplets; ``TripletLoss`` mines them online
``nce_loss``              Gutmann & Hyvärinen 2010: data vs noise logistic classification
``info_nce``              van den Oord et al. 2018 (CPC): softmax over 1 positive + negatives
``nt_xent``               Chen et al. 2020 (SimCLR): InfoNCE over 2N views; SupCon with labels
``clip_loss``             Radford et al. 2021 (CLIP): symmetric InfoNCE over (a, b) pairs
``siglip_loss``           Zhai et al. 2023 (SigLIP): pairwise sigmoid loss over (a, b) pairs
``clip_loss_across``      CLIP over W processes: local rows against the gathered columns (with gradient)
``siglip_loss_ring``      SigLIP over W processes: b-blocks passed round a ring, O(n x n) scores each
========================  =====================================================================
"""

from contrastkit.losses.across_processes import clip_loss_across, siglip_loss_ring
from contrastkit.losses.clip import LogitScale, clip_loss
from contrastkit.losses.contrastive import (
    ContrastiveLoss,
    PairedContrastiveLoss,
    contrastive_loss,
    contrastive_loss_from_labels,
)
from contrastkit.losses.infonce import InfoNCELoss, info_nce
from contrastkit.losses.logsumexp import row_logsumexp
from contrastkit.losses.nce import NCELoss, nce_loss
from contrastkit.losses.ntxent import NTXentLoss, nt_xent
from contrastkit.losses.siglip import SigmoidScaleBias, siglip_loss
from contrastkit.losses.temperature import LearnableTemperature
from contrastkit.losses.triplet import MINING_STRATEGIES, TripletLoss, triplet_loss

__all__ = [
    "MINING_STRATEGIES",
    "ContrastiveLoss",
    "InfoNCELoss",
    "LearnableTemperature",
    "LogitScale",
    "NCELoss",
    "NTXentLoss",
    "PairedContrastiveLoss",
    "SigmoidScaleBias",
    "TripletLoss",
    "clip_loss",
    "clip_loss_across",
    "contrastive_loss",
    "contrastive_loss_from_labels",
    "info_nce",
    "nce_loss",
    "nt_xent",
    "row_logsumexp",
    "siglip_loss",
    "siglip_loss_ring",
    "triplet_loss",
]
