"""Batched SimCLR augmentation vs slow per-image references built from the same drawn parameters.

The references are written from the definitions, one image (and for geometry and hue, one pixel) at a
time: the coordinate convention of the module docstring with explicit bilinear interpolation,
``F.interpolate`` + slicing, ``torch.rot90`` / ``torch.flip``, ``colorsys`` for hue, and a per-image
2-D ``F.conv2d`` for the blur.
"""

from __future__ import annotations

import colorsys
import math

import pytest
import torch
import torch.nn.functional as F

from contrastkit.augment import (
    BlurParams,
    ColorJitter,
    ColorJitterParams,
    CropParams,
    GaussianBlur,
    GrayscaleParams,
    RandomGrayscale,
    RandomResizedCrop,
    ViewAugment,
    ViewParams,
    adjust_brightness,
    adjust_contrast,
    adjust_hue,
    adjust_saturation,
    cifar_preset,
    get_augment,
    mnist_preset,
    objects_preset,
    rgb_to_grayscale,
    simclr_preset,
    to_float,
)
from contrastkit.augment.pipeline import OBJECT_CROP_SCALE


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def smooth_images(b: int, c: int, h: int, w: int, seed: int = 0, dtype=torch.float64) -> torch.Tensor:
    """Random images in [0, 1] that vary smoothly (coarse noise upsampled), plus a little fine noise."""
    g = gen(seed)
    coarse = torch.rand(b, c, max(2, h // 3), max(2, w // 3), generator=g, dtype=dtype)
    x = F.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=False)
    x = x + 0.05 * torch.rand(b, c, h, w, generator=g, dtype=dtype)
    return x.clamp(0, 1)


# --------------------------------------------------------------------------------------------------------
# per-image references
# --------------------------------------------------------------------------------------------------------


def bilinear_at(img: torch.Tensor, u: float, v: float, padding: str) -> torch.Tensor:
    """Value of (C, H, W) ``img`` at continuous pixel point (u, v); pixel centres at (j + 1/2, i + 1/2)."""
    _, H, W = img.shape
    s, t = u - 0.5, v - 0.5                                  # index space: pixel j sits at s = j
    if padding == "border":
        s, t = min(max(s, 0.0), W - 1.0), min(max(t, 0.0), H - 1.0)
    j0, i0 = math.floor(s), math.floor(t)
    a, b = s - j0, t - i0
    out = torch.zeros(img.shape[0], dtype=img.dtype)
    for i, wy in ((i0, 1 - b), (i0 + 1, b)):
        for j, wx in ((j0, 1 - a), (j0 + 1, a)):
            if 0 <= i < H and 0 <= j < W and wx * wy != 0:
                out += wx * wy * img[:, i, j]
    return out


def reference_geometry(img: torch.Tensor, box, flip: bool, angle: float, out_hw, padding: str):
    """One image: output pixel (r, c) <- (cx, cy) + R(angle) (w q_x, h q_y), q the offset from the view centre."""
    cx, cy, w, h = (float(v) for v in box)
    S_h, S_w = out_hw
    out = torch.zeros(img.shape[0], S_h, S_w, dtype=img.dtype)
    cos, sin = math.cos(angle), math.sin(angle)
    for r in range(S_h):
        for c in range(S_w):
            qx, qy = (c + 0.5) / S_w - 0.5, (r + 0.5) / S_h - 0.5
            if flip:
                qx = -qx
            dx, dy = w * qx, h * qy
            out[:, r, c] = bilinear_at(img, cx + cos * dx - sin * dy, cy + sin * dx + cos * dy, padding)
    return out


def ref_gray(img: torch.Tensor) -> torch.Tensor:
    if img.shape[0] == 1:
        return img.clone()
    return 0.299 * img[0:1] + 0.587 * img[1:2] + 0.114 * img[2:3]


def ref_brightness(img, f):
    return (img * f).clamp(0, 1)


def ref_contrast(img, f):
    return (f * img + (1 - f) * ref_gray(img).mean()).clamp(0, 1)


def ref_saturation(img, f):
    return img if img.shape[0] == 1 else (f * img + (1 - f) * ref_gray(img)).clamp(0, 1)


def ref_hue(img, shift):
    if img.shape[0] == 1:
        return img
    out = torch.empty_like(img)
    for i in range(img.shape[1]):
        for j in range(img.shape[2]):
            h, s, v = colorsys.rgb_to_hsv(*img[:, i, j].tolist())
            out[:, i, j] = torch.tensor(colorsys.hsv_to_rgb((h + shift) % 1.0, s, v), dtype=img.dtype)
    return out


REF_COLOR = (ref_brightness, ref_contrast, ref_saturation, ref_hue)


def reference_jitter(img, factors, order, applied):
    if not applied:
        return img
    for op in order.tolist():
        img = REF_COLOR[op](img, float(factors[op]))
    return img


def reference_blur(img, sigma: float, k: int):
    t = [i - (k - 1) / 2 for i in range(k)]
    k1 = torch.tensor([math.exp(-0.5 * (v / sigma) ** 2) for v in t], dtype=img.dtype)
    k1 = k1 / k1.sum()
    k2 = torch.outer(k1, k1).expand(img.shape[0], 1, k, k)
    p = k // 2
    padded = F.pad(img.unsqueeze(0), (p, p, p, p), mode="reflect")
    return F.conv2d(padded, k2, groups=img.shape[0]).squeeze(0)


def reference_view(aug: ViewAugment, img: torch.Tensor, params: ViewParams, b: int) -> torch.Tensor:
    """The whole pipeline for image ``b`` alone, from per-image references."""
    if params.crop is not None:
        S = aug.crop.output_size(img.unsqueeze(0).shape)
        img = reference_geometry(img, params.crop.boxes[b], bool(params.crop.flip[b]),
                                 float(params.crop.angle[b]), S, aug.crop.padding_mode)
    if params.jitter is not None:
        j = params.jitter
        img = reference_jitter(img, j.factors[b], j.order[b], bool(j.applied[b]))
    if params.grayscale is not None and bool(params.grayscale.applied[b]):
        img = ref_gray(img).expand_as(img).clone()
    if params.blur is not None and bool(params.blur.applied[b]):
        img = reference_blur(img, float(params.blur.sigma[b]), aug.blur.kernel_size)
    return img


# --------------------------------------------------------------------------------------------------------
# geometry
# --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("padding", ["border", "zeros"])
def test_crop_flip_rotation_match_per_pixel_reference(padding):
    x = smooth_images(8, 3, 7, 9, seed=1)                                 # non-square input
    op = RandomResizedCrop((6, 5), scale=(0.2, 1.0), flip_p=0.5, degrees=40.0, padding_mode=padding)
    params = op.sample_params(x.shape, gen(2))
    assert params.flip.any() and (~params.flip).any()
    out = op.apply(x, params)
    assert out.shape == (8, 3, 6, 5)
    for b in range(8):
        ref = reference_geometry(x[b], params.boxes[b], bool(params.flip[b]), float(params.angle[b]),
                                 (6, 5), padding)
        torch.testing.assert_close(out[b], ref, atol=1e-10, rtol=0)


def test_crop_equals_interpolate_then_slice():
    """Axis-aligned whole-pixel boxes with integer zoom k: resize the whole image by k with
    F.interpolate(bilinear, align_corners=False) and slice the box -- an independent check of the convention."""
    x = smooth_images(1, 3, 8, 8, seed=3, dtype=torch.float32)
    op = RandomResizedCrop(8)
    for kx, ky, x0, y0, flip in [(2, 2, 0, 0, False), (2, 1, 3, 0, True), (4, 2, 6, 1, False), (1, 4, 0, 5, True)]:
        w, h = 8 / kx, 8 / ky
        params = CropParams(boxes=torch.tensor([[x0 + w / 2, y0 + h / 2, w, h]]),
                            flip=torch.tensor([flip]), angle=torch.zeros(1), image_size=(8, 8))
        zoomed = F.interpolate(x, scale_factor=(float(ky), float(kx)), mode="bilinear", align_corners=False,
                               recompute_scale_factor=False)
        ref = zoomed[..., y0 * ky: y0 * ky + 8, x0 * kx: x0 * kx + 8]
        if flip:
            ref = ref.flip(-1)
        torch.testing.assert_close(op.apply(x, params), ref, atol=1e-5, rtol=0)


def test_whole_box_is_identity_flip_and_quarter_turn():
    x = smooth_images(3, 3, 6, 6, seed=4, dtype=torch.float32)
    op = RandomResizedCrop(None)

    def params(flip: bool, angle: float) -> CropParams:
        return CropParams(boxes=torch.tensor([[3.0, 3.0, 6.0, 6.0]] * 3), flip=torch.tensor([flip] * 3),
                          angle=torch.full((3,), angle), image_size=(6, 6))

    torch.testing.assert_close(op.apply(x, params(False, 0.0)), x, atol=1e-6, rtol=0)
    torch.testing.assert_close(op.apply(x, params(True, 0.0)), x.flip(-1), atol=1e-6, rtol=0)
    # a positive angle turns the content counter-clockwise as displayed, like torch.rot90(k=1)
    torch.testing.assert_close(op.apply(x, params(False, math.pi / 2)), torch.rot90(x, 1, dims=(-2, -1)),
                               atol=1e-5, rtol=0)


def test_crop_sampling_follows_scale_ratio_and_stays_inside():
    H, W = 20, 30
    op = RandomResizedCrop(16, scale=(0.1, 0.6), ratio=(0.5, 2.0))
    p = op.sample_params((500, 3, H, W), gen(5))
    cx, cy, w, h = p.boxes.unbind(1)
    area, aspect = w * h / (H * W), w / h
    assert bool((area >= 0.1 - 1e-5).all() and (area <= 0.6 + 1e-5).all())
    assert bool((aspect >= 0.5 - 1e-5).all() and (aspect <= 2.0 + 1e-5).all())
    assert bool((cx - w / 2 >= -1e-4).all() and (cx + w / 2 <= W + 1e-4).all())
    assert bool((cy - h / 2 >= -1e-4).all() and (cy + h / 2 <= H + 1e-4).all())
    assert p.boxes.unique(dim=0).shape[0] == 500                        # every sample its own box
    assert (p.angle == 0).all() and 150 < int(p.flip.sum()) < 350


def test_crop_falls_back_to_central_crop_when_no_candidate_fits():
    op = RandomResizedCrop(8, scale=(1.0, 1.0), ratio=(2.0, 3.0))      # a full-area box wider than tall never fits
    p = op.sample_params((4, 1, 10, 10), gen(6))
    torch.testing.assert_close(p.boxes, torch.tensor([[5.0, 5.0, 10.0, 5.0]] * 4))


# --------------------------------------------------------------------------------------------------------
# colour, grayscale, blur
# --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("channels", [1, 3])
def test_colour_ops_match_per_image_formulas(channels):
    x = smooth_images(5, channels, 5, 6, seed=7)
    f = torch.tensor([0.3, 0.9, 1.0, 1.4, 1.9], dtype=torch.float64)
    shifts = torch.tensor([-0.5, -0.13, 0.0, 0.27, 0.49], dtype=torch.float64)
    for fn, ref, factors in [(adjust_brightness, ref_brightness, f), (adjust_contrast, ref_contrast, f),
                             (adjust_saturation, ref_saturation, f), (adjust_hue, ref_hue, shifts)]:
        out = fn(x, factors)
        assert out.shape == x.shape
        for b in range(5):
            torch.testing.assert_close(out[b], ref(x[b], float(factors[b])), atol=1e-12, rtol=0)


def test_hue_float32_and_gray_pixels():
    x = smooth_images(4, 3, 6, 6, seed=8, dtype=torch.float32)
    x[:, :, 0, 0] = 0.5                                                   # achromatic pixel: stays gray
    shift = torch.tensor([0.1, -0.3, 0.45, 0.2])
    out = adjust_hue(x, shift)
    for b in range(4):
        torch.testing.assert_close(out[b], ref_hue(x[b].double(), float(shift[b])).float(), atol=2e-6, rtol=0)
    torch.testing.assert_close(out[:, :, 0, 0], torch.full((4, 3), 0.5))
    assert torch.equal(adjust_hue(x, torch.zeros(4)), x)                  # zero shift: bit-exact identity


def test_color_jitter_random_order_matches_per_image_reference():
    x = smooth_images(48, 3, 4, 5, seed=9)
    jit = ColorJitter(0.8, 0.8, 0.8, 0.2, p=0.8)
    p = jit.sample_params(x.shape, gen(10))
    assert torch.equal(p.order.sort(dim=1).values, torch.arange(4).expand(48, 4))   # permutations
    assert p.order.unique(dim=0).shape[0] >= 15                            # many different orders in use
    assert p.applied.any() and (~p.applied).any()
    out = jit.apply(x, p)
    for b in range(48):
        ref = reference_jitter(x[b], p.factors[b], p.order[b], bool(p.applied[b]))
        torch.testing.assert_close(out[b], ref, atol=1e-12, rtol=0)


def test_color_jitter_on_grayscale_skips_saturation_and_hue():
    x = smooth_images(16, 1, 5, 5, seed=11)
    jit = ColorJitter(0.5, 0.5, 0.9, 0.4, p=1.0)
    p = jit.sample_params(x.shape, gen(12))
    out = jit.apply(x, p)
    for b in range(16):
        ref = x[b]
        for op in p.order[b].tolist():
            if op < 2:
                ref = REF_COLOR[op](ref, float(p.factors[b, op]))
        torch.testing.assert_close(out[b], ref, atol=1e-12, rtol=0)


def test_jitter_identity_params_return_input_exactly():
    x = smooth_images(6, 3, 5, 5, seed=13)
    jit = ColorJitter(0.4, 0.4, 0.4, 0.1)
    p = jit.sample_params(x.shape, gen(14))
    assert torch.equal(jit.apply(x, ColorJitterParams(p.factors, p.order, torch.zeros(6, dtype=torch.bool))), x)


def test_grayscale_mask_and_luma():
    x = smooth_images(10, 3, 4, 4, seed=15)
    op = RandomGrayscale(0.5)
    p = op.sample_params(x.shape, gen(16))
    assert p.applied.any() and (~p.applied).any()
    out = op.apply(x, p)
    for b in range(10):
        expected = ref_gray(x[b]).expand(3, 4, 4) if p.applied[b] else x[b]
        torch.testing.assert_close(out[b], expected, atol=1e-12, rtol=0)
    torch.testing.assert_close(rgb_to_grayscale(x), torch.stack([ref_gray(x[b]) for b in range(10)]))
    gray = x[:, :1]
    assert torch.equal(op.apply(gray, p), gray)


@pytest.mark.parametrize("kernel_size", [3, 5])
def test_blur_matches_per_image_conv2d(kernel_size):
    x = smooth_images(8, 3, 9, 11, seed=17)
    op = GaussianBlur(kernel_size, sigma=(0.1, 2.0), p=0.5)
    p = op.sample_params(x.shape, gen(18))
    assert p.applied.any() and (~p.applied).any()
    out = op.apply(x, p)
    for b in range(8):
        expected = reference_blur(x[b], float(p.sigma[b]), kernel_size) if p.applied[b] else x[b]
        torch.testing.assert_close(out[b], expected, atol=1e-12, rtol=0)


def test_blur_rejects_kernel_larger_than_image():
    op = GaussianBlur(9)
    x = torch.rand(2, 1, 4, 4)
    with pytest.raises(ValueError, match="kernel_size"):
        op.apply(x, op.sample_params(x.shape, gen(0)))


# --------------------------------------------------------------------------------------------------------
# the composed view
# --------------------------------------------------------------------------------------------------------


def full_pipeline() -> ViewAugment:
    return ViewAugment(RandomResizedCrop(7, scale=(0.3, 1.0), flip_p=0.5, degrees=20.0),
                       ColorJitter.simclr(1.0, p=0.8), RandomGrayscale(0.3), GaussianBlur(3, p=0.5))


def test_full_pipeline_matches_per_image_reference():
    x = smooth_images(12, 3, 9, 8, seed=19)
    aug = full_pipeline()
    params = aug.sample_params(x.shape, gen(20))
    out = aug.apply(x, params)
    assert out.shape == (12, 3, 7, 7) and out.dtype == torch.float64
    for b in range(12):
        torch.testing.assert_close(out[b], reference_view(aug, x[b], params, b), atol=1e-10, rtol=0)


def test_identity_params_give_the_input():
    x = (smooth_images(4, 3, 8, 8, seed=21, dtype=torch.float32) * 255).round().to(torch.uint8)
    aug = full_pipeline()
    aug.crop.size = None
    B = 4
    no = torch.zeros(B, dtype=torch.bool)
    params = ViewParams(
        crop=CropParams(torch.tensor([[4.0, 4.0, 8.0, 8.0]] * B), no, torch.zeros(B), (8, 8)),
        jitter=ColorJitterParams(torch.rand(B, 4), torch.arange(4).repeat(B, 1), no),
        grayscale=GrayscaleParams(no), blur=BlurParams(torch.ones(B), no))
    torch.testing.assert_close(aug.apply(x, params), x.float() / 255, atol=1e-6, rtol=0)


@pytest.mark.parametrize("preset, channels, size", [(mnist_preset, 1, 28), (cifar_preset, 3, 32),
                                                     (simclr_preset, 3, 40)])
def test_presets_shapes_range_and_dtypes(preset, channels, size):
    x = (torch.rand(6, channels, size, size, generator=gen(22)) * 255).to(torch.uint8)
    aug = preset(size)
    out = aug(x, generator=gen(23))
    assert out.shape == (6, channels, size, size) and out.dtype == torch.float32
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    # uint8 and float inputs agree for the same parameters; half precision is computed in float32
    params = aug.sample_params(x.shape, gen(24))
    as_float = aug.apply(x.float() / 255, params)
    torch.testing.assert_close(aug.apply(x, params), as_float, atol=1e-6, rtol=0)
    half = aug.apply((x.float() / 255).half(), params)
    assert half.dtype == torch.float32
    torch.testing.assert_close(half, as_float, atol=2e-2, rtol=0)
    # channels_last input and no_grad change nothing
    with torch.no_grad():
        torch.testing.assert_close(aug.apply(x.contiguous(memory_format=torch.channels_last), params),
                                   aug.apply(x, params), atol=1e-6, rtol=0)
    normalised = preset(size, normalize=True).apply(x, params)
    torch.testing.assert_close(normalised, (as_float - aug_mean(preset, channels)) / aug_std(preset, channels),
                               atol=1e-5, rtol=0)


def aug_mean(preset, channels):
    return preset(8, normalize=True).mean.view(1, channels, 1, 1)


def aug_std(preset, channels):
    return preset(8, normalize=True).std.view(1, channels, 1, 1)


def test_mnist_preset_never_flips_and_presets_by_name():
    p = mnist_preset().sample_params((200, 1, 28, 28), gen(25))
    assert not p.crop.flip.any() and p.crop.angle.abs().max() > 0.1
    assert get_augment("MNIST").crop.size == (28, 28)
    assert get_augment("cifar").crop.size == (32, 32)
    assert get_augment("simclr", 96).blur.kernel_size == 9
    assert GaussianBlur.simclr_kernel_size(224) == 23 and GaussianBlur.simclr_kernel_size(32) == 3
    assert GaussianBlur.simclr_kernel_size(28) == 3 and GaussianBlur.simclr_kernel_size(9) == 1
    with pytest.raises(ValueError, match="name"):
        get_augment("imagenet-21k")


def test_seeded_generator_reproduces_and_samples_differ():
    x = (torch.rand(16, 3, 32, 32, generator=gen(26)) * 255).to(torch.uint8)
    aug = cifar_preset()
    a, b = aug(x, generator=gen(27)), aug(x, generator=gen(27))
    assert torch.equal(a, b)
    assert not torch.allclose(a, aug(x, generator=gen(28)))
    same = x[:1].expand(16, -1, -1, -1)                                   # one image 16 times
    views = aug(same, generator=gen(29)).flatten(1)
    assert torch.cdist(views, views).add(torch.eye(16) * 1e3).min() > 1e-3    # every copy augmented differently
    v1, v2 = aug.views(x, 2, generator=gen(30))
    assert v1.shape == v2.shape == (16, 3, 32, 32) and not torch.allclose(v1, v2)


def test_to_float_and_input_validation():
    x = torch.randint(0, 256, (2, 3, 4, 4), dtype=torch.uint8)
    torch.testing.assert_close(to_float(x, "cpu"), x.float() / 255)
    aug = cifar_preset(4)
    with pytest.raises(ValueError, match="shape"):
        aug(x[0])
    with pytest.raises(ValueError, match="channels"):
        aug(torch.rand(2, 2, 4, 4))
    with pytest.raises(TypeError, match="dtype"):
        aug(x.to(torch.int32))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        aug(x.float())                                                   # 0..255 floats
    with pytest.raises(ValueError, match="NaN"):
        aug(torch.full((2, 3, 4, 4), float("nan")))
    with pytest.raises(TypeError, match="Tensor"):
        aug([[1.0]])
    params = aug.sample_params((3, 3, 4, 4), gen(0))
    with pytest.raises(ValueError, match="batch"):
        aug.apply(x, params)
    with pytest.raises(ValueError, match="size"):
        aug.crop.apply(torch.rand(3, 3, 5, 5), params.crop)
    with pytest.raises(ValueError, match="channel"):
        cifar_preset(4, normalize=True)(x[:, :1])


def test_constructor_validation():
    with pytest.raises(ValueError, match="scale"):
        RandomResizedCrop(8, scale=(0.0, 1.0))
    with pytest.raises(ValueError, match="ratio"):
        RandomResizedCrop(8, ratio=(2.0, 1.0))
    with pytest.raises(ValueError, match="flip_p"):
        RandomResizedCrop(8, flip_p=1.5)
    with pytest.raises(ValueError, match="padding_mode"):
        RandomResizedCrop(8, padding_mode="reflection")
    with pytest.raises(ValueError, match="hue"):
        ColorJitter(hue=0.7)
    with pytest.raises(ValueError, match="brightness"):
        ColorJitter(brightness=-0.1)
    with pytest.raises(ValueError, match="kernel_size"):
        GaussianBlur(4)
    with pytest.raises(ValueError, match="mean"):
        ViewAugment(mean=(0.5,))


def test_forward_equals_replaying_the_drawn_params_and_ops_take_uint8():
    x = (torch.rand(8, 3, 12, 12, generator=gen(31)) * 255).to(torch.uint8)
    aug = simclr_preset(12)                                                # every op on; at 12 px its
    aug.blur = GaussianBlur(3, p=0.5)                                      # blur has 1 tap: use 3
    params = aug.sample_params(x.shape, gen(32))
    assert torch.equal(aug(x, generator=gen(32)), aug.apply(x, params))
    as_float = x.float() / 255
    for op, p in ((aug.crop, params.crop), (aug.jitter, params.jitter), (aug.grayscale, params.grayscale),
                  (aug.blur, params.blur)):
        drawn = op.sample_params(x.shape, gen(33))
        assert torch.equal(op(x, generator=gen(33)), op.apply(as_float, drawn))
        assert type(p) is type(drawn)


@pytest.mark.parametrize("preset, channels", [(mnist_preset, 1), (cifar_preset, 3), (simclr_preset, 3)])
def test_empty_batch_gives_empty_views(preset, channels):
    out = preset(16)(torch.zeros(0, channels, 20, 20, dtype=torch.uint8))
    assert out.shape == (0, channels, 16, 16)


def test_view_augment_moves_like_a_module():
    from contrastkit.augment import mnist_preset

    augment = mnist_preset(normalize=True).to(torch.float64)  # nn.Module.to must work (no _apply clash)
    out = augment.to("cpu")(torch.randint(0, 256, (3, 1, 28, 28), dtype=torch.uint8),
                            generator=torch.Generator().manual_seed(0))
    assert out.shape == (3, 1, 28, 28) and torch.isfinite(out).all()


def test_objects_preset_flips_half_never_rotates_and_keeps_range() -> None:
    aug = objects_preset()
    p = aug.sample_params((2000, 1, 28, 28), gen(26))
    assert 0.45 < float(p.crop.flip.float().mean()) < 0.55  # p = 0.5: mirrored clothes are still clothes
    assert float(p.crop.angle.abs().max()) == 0.0
    assert aug.crop.scale == (OBJECT_CROP_SCALE, 1.0) and aug.grayscale is None and aug.blur is None
    x = (torch.rand(6, 1, 28, 28, generator=gen(27)) * 255).to(torch.uint8)
    out = aug(x, generator=gen(28))
    assert out.shape == x.shape and float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    rgb = objects_preset(32)((torch.rand(4, 3, 32, 32, generator=gen(29)) * 255).to(torch.uint8), gen(30))
    assert rgb.shape == (4, 3, 32, 32)
    assert get_augment("objects").crop.size == (28, 28) and get_augment("objects", 32).crop.size == (32, 32)
    with pytest.raises(ValueError, match="objects_preset: `normalize` is not available"):
        objects_preset(normalize=True)


def test_a_flip_mirrors_the_image_exactly() -> None:
    # a full-image "crop" with the flip bit set is the image mirrored left-right, pixel for pixel
    x = (torch.rand(3, 1, 28, 28, generator=gen(31)) * 255).to(torch.uint8)
    aug = objects_preset()
    params = aug.sample_params(x.shape, gen(32))
    full = torch.tensor([[14.0, 14.0, 28.0, 28.0]] * 3)  # (cx, cy, w, h): the whole image
    crop = CropParams(full, torch.tensor([True, False, True]), torch.zeros(3), (28, 28))
    out = aug.apply(x, ViewParams(crop, None, params.grayscale, params.blur))
    expected = x.float() / 255
    expected[[0, 2]] = expected[[0, 2]].flip(-1)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=0)
