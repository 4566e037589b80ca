"""SimCLR-style views as batched tensor ops on the training device (survey section F.3).

SimCLR (Chen, Kornblith, Norouzi, Hinton 2020, "A Simple Framework for Contrastive Learning of Visual
Representations", section 3 and appendix A) makes two views of each image with a random composition of

    random resized crop -> horizontal flip -> colour jitter (p = 0.8) -> random grayscale (p = 0.2)
    -> Gaussian blur (p = 0.5)

Here every op draws **per-sample** parameters as tensors first (:meth:`sample_params`) and then applies
them to the whole batch at once (:meth:`apply`): crop, flip and an optional rotation are ONE
``F.affine_grid`` + ``F.grid_sample``; the colour ops broadcast (B, 1, 1, 1) factors; the blur is a
separable convolution with per-sample kernels. No Python loop over images, no data-dependent shapes,
no torchvision or kornia. Parameters are drawn on the generator's device (or on the data's device when
no generator is given), so a CPU ``torch.Generator`` gives the same parameters whatever the data device
(it then costs a few tiny host-to-device copies per call; a generator on the data's device costs none).
The one host synchronisation is the [0, 1] range / NaN check of *floating* input, skipped for uint8
input and when checks are off (``contrastkit.set_checks(False)``).

Input: a uint8 batch (B, C, H, W) with C in {1, 3} (converted on its device, see :func:`to_float`) or
a floating batch with values in [0, 1]. Output: float (B, C, S_h, S_w) in [0, 1], or normalised by
``mean``/``std`` when those are given. Half / bfloat16 inputs are computed in float32, float64 stays
float64.

Coordinate convention (geometry)
--------------------------------
Continuous pixel coordinates (u, v): u runs over [0, W] from the left edge of column 0 to the right
edge of column W-1, v likewise over [0, H]. Pixel (row i, column j) covers [j, j+1] x [i, i+1] and its
value sits at its centre (j + 1/2, i + 1/2). A crop box (cx, cy, w, h) is given in these units and may
be fractional (torchvision rounds boxes to whole pixels; sub-pixel boxes are strictly more varied).
Output pixel (r, c) of an S_h x S_w view is the offset q = ((c + 1/2)/S_w - 1/2, (r + 1/2)/S_h - 1/2)
from the view centre, in fractions of the view. A flip negates q_x (it mirrors the view), and the
source point is

    (u, v) = (cx, cy) + R(theta) (w q_x, h q_y),     R(theta) = [[cos, -sin], [sin, cos]],

so the box turns by theta about its centre (with v pointing down, a positive theta shows the content
turned counter-clockwise). The value at (u, v) is bilinear interpolation of the four nearest pixel
centres, with (u, v) clamped to [1/2, W - 1/2] x [1/2, H - 1/2] (``padding_mode="border"``: edge pixels
extend outwards) or zeros outside the image (``padding_mode="zeros"``). This is exactly
``F.grid_sample(..., mode="bilinear", align_corners=False)`` with normalised x = 2u/W - 1,
y = 2v/H - 1; for a whole-image box and S = H = W it is the identity, and for an axis-aligned box it
equals ``F.interpolate(bilinear, align_corners=False)`` of the whole image followed by a slice.
No antialiasing: a view smaller than its box (downsampling) aliases; the presets never downsample.

Colour ops follow torchvision's definitions, each clamped to [0, 1] afterwards: brightness x * f;
contrast blend with the mean of the grayscale image; saturation blend with the grayscale image; hue a
shift of H in HSV (RGB <-> HSV here is batched and fused). Grayscale is 0.299 R + 0.587 G + 0.114 B
(ITU-R 601-2, as PIL). For 1-channel input saturation, hue and grayscale are no-ops.
"""

from contrastkit.augment._common import to_float
from contrastkit.augment.blur import BlurParams, GaussianBlur, gaussian_kernels
from contrastkit.augment.color import (
    ColorJitter,
    ColorJitterParams,
    GrayscaleParams,
    RandomGrayscale,
    adjust_brightness,
    adjust_contrast,
    adjust_hue,
    adjust_saturation,
    rgb_to_grayscale,
)
from contrastkit.augment.geometry import CropParams, RandomResizedCrop, crop_theta
from contrastkit.augment.pipeline import _PRESETS as _IMAGE_PRESETS
from contrastkit.augment.pipeline import (
    ViewAugment,
    ViewParams,
    cifar_preset,
    get_augment,
    mnist_preset,
    objects_preset,
    simclr_preset,
)

#: the view augmentations by name, per modality (the first is the modality's default; gray images take mnist,
#: colour images cifar): images through the presets above, vectors through SCARF corruption
#: (:mod:`~contrastkit.augment.tabular`), sequences through random crops (:mod:`~contrastkit.augment.sequence`).
#: The one list that the `augment` setting, ``contrastkit train --help`` and :func:`contrastkit.batching.make_augment`
#: read.
AUGMENTS: dict[str, tuple[str, ...]] = {"images": tuple(_IMAGE_PRESETS), "vectors": ("scarf",), "sequences": ("crop",)}

__all__ = [
    "AUGMENTS",
    "BlurParams",
    "ColorJitter",
    "ColorJitterParams",
    "CropParams",
    "GaussianBlur",
    "GrayscaleParams",
    "RandomGrayscale",
    "RandomResizedCrop",
    "ViewAugment",
    "ViewParams",
    "adjust_brightness",
    "adjust_contrast",
    "adjust_hue",
    "adjust_saturation",
    "cifar_preset",
    "crop_theta",
    "gaussian_kernels",
    "get_augment",
    "mnist_preset",
    "objects_preset",
    "rgb_to_grayscale",
    "simclr_preset",
    "to_float",
]
