"""contrastkit: contrastive representation learning for PyTorch.

Distances and scores (:mod:`contrastkit.similarity`), the contrastive loss family
(:mod:`contrastkit.losses`), triplet mining (:mod:`contrastkit.mining`), negatives sources,
methods, training, evaluation and a command line.
"""

from contrastkit._checks import checks_disabled, set_checks

__version__ = "0.1.0"

__all__ = ["__version__", "checks_disabled", "set_checks"]
