"""Memory checks before large allocations: available memory, the 90 % rule, and the guards of the run's parts."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import contrastkit.memory as memory
from contrastkit.cli import main
from contrastkit.data import load_dataset
from contrastkit.memory import MEMORY_FRACTION, NotEnoughMemoryError, available_memory, check_fits, format_bytes
from contrastkit.methods.registry import method_settings
from contrastkit.run import check_batch_memory, check_method_memory

GIB = 1024**3


def _available(monkeypatch: pytest.MonkeyPatch, nbytes: int | None) -> None:
    monkeypatch.setattr(memory, "available_memory", lambda *args, **kwargs: nbytes)


def _meminfo(tmp_path, kib: int):
    path = tmp_path / "meminfo"
    path.write_text(f"MemTotal:       24683792 kB\nMemFree:        1000 kB\nMemAvailable:   {kib} kB\n")
    return path


def test_available_memory_is_meminfo_unless_a_cgroup_limit_leaves_less(tmp_path) -> None:
    meminfo = _meminfo(tmp_path, 22_334_456)
    no_cgroup = tmp_path / "no_cgroup"
    assert available_memory(meminfo, no_cgroup) == 22_334_456 * 1024
    v2 = tmp_path / "v2"
    v2.mkdir()
    (v2 / "memory.max").write_text(f"{8 * GIB}\n")
    (v2 / "memory.current").write_text(f"{2 * GIB}\n")
    (v2 / "memory.stat").write_text(f"anon 5\ninactive_file {GIB}\nactive_file 7\n")
    assert available_memory(meminfo, v2) == 7 * GIB  # 8 - 2 + 1 (reclaimable cache) < 21.3 GiB
    (v2 / "memory.max").write_text("max\n")
    assert available_memory(meminfo, v2) == 22_334_456 * 1024
    v1 = tmp_path / "v1" / "memory"
    v1.mkdir(parents=True)
    (v1 / "memory.limit_in_bytes").write_text("9223372036854771712\n")  # v1's "no limit"
    (v1 / "memory.usage_in_bytes").write_text(f"{GIB}\n")
    assert available_memory(meminfo, v1.parent) == 22_334_456 * 1024
    (v1 / "memory.limit_in_bytes").write_text(f"{4 * GIB}\n")
    (v1 / "memory.stat").write_text(f"cache 3\ntotal_inactive_file {GIB // 2}\n")
    assert available_memory(meminfo, v1.parent) == 4 * GIB - GIB + GIB // 2


def test_available_memory_falls_back_to_sysconf_then_to_unknown(tmp_path, monkeypatch) -> None:
    missing = tmp_path / "missing"
    assert available_memory(missing, missing) == memory._sysconf_available()
    monkeypatch.setattr(memory, "_sysconf_available", lambda: None)
    assert available_memory(missing, missing) is None


def test_refused_above_ninety_percent_in_one_line(monkeypatch) -> None:
    assert MEMORY_FRACTION == 0.9
    check_fits(900, "s", "w", available=1000)  # exactly 90 %: allowed
    with pytest.raises(NotEnoughMemoryError) as info:
        check_fits(901, "`x` 5", "five things", hint="use fewer", setting="x", available=1000)
    err = info.value
    assert isinstance(err, ValueError) and (err.needed, err.available, err.setting) == (901, 1000, "x")
    assert str(err) == ("`x` 5: five things would take 901 bytes; this machine has 1,000 bytes available "
                        "(contrastkit uses at most 90% of it); use fewer")
    renamed = err.with_subject("--x 5")
    assert str(renamed).startswith("--x 5: five things would take 901 bytes;") and renamed.setting == "x"
    _available(monkeypatch, None)
    check_fits(10**30, "s", "w")  # unknown memory refuses nothing
    _available(monkeypatch, 1000)
    with pytest.raises(NotEnoughMemoryError):
        check_fits(901, "s", "w")


def test_format_bytes() -> None:
    assert format_bytes(512) == "512 bytes"
    assert format_bytes(1536) == "1.5 KiB"
    assert format_bytes(1797 * 4096 * 4096) == "28.1 GiB"
    assert format_bytes(int(21.3 * GIB)) == "21.3 GiB"
    assert format_bytes(3 * 1024**5) == "3.0 PiB"


def test_train_image_size_that_does_not_fit_names_image_size(tmp_path, monkeypatch, capsys) -> None:
    """`contrastkit train --image-size 4096` on digits: one line naming `image_size`, the estimate and the
    available memory; nothing resized, no run folder."""
    import contrastkit.data.load as load

    def refuse(*args, **kwargs):
        raise AssertionError("resized before the memory check")

    monkeypatch.setattr(load, "resize_images", refuse)
    _available(monkeypatch, int(21.3 * GIB))
    out = tmp_path / "run"
    assert main(["train", "--data", "digits", "--image-size", "4096", "--epochs", "1", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("contrastkit train: error: `image_size` 4096: the 1,797 images of 'digits'")
    assert "28.1 GiB" in err and "56.2 GiB" in err and "21.3 GiB available" in err
    assert err.endswith("choose a smaller `image_size`")
    assert len(err.splitlines()) == 1 and not out.exists()


def test_folder_kept_in_memory_is_refused_when_its_decoded_images_do_not_fit(tmp_path, monkeypatch) -> None:
    """6 gray 8 x 8 images decode to 384 bytes; with 400 available (90 %: 360) `stream=False` is refused."""
    for label in ("a", "b"):
        (tmp_path / "set" / label).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(np.full((8, 8), i, np.uint8)).save(tmp_path / "set" / label / f"{i}.png")
    _available(monkeypatch, 400)
    with pytest.raises(NotEnoughMemoryError, match="decoding its 6 images into memory") as info:
        load_dataset(tmp_path / "set", stream=False, workers=0)
    assert info.value.needed == 384 and info.value.setting == "stream" and "stream=True" in str(info.value)
    assert len(load_dataset(tmp_path / "set", stream=True, workers=0).train) == 5  # streamed: nothing to hold
    _available(monkeypatch, 427)  # 90 %: 384.3
    assert load_dataset(tmp_path / "set", stream=False, workers=0).train.images.shape == (5, 1, 8, 8)


def test_moco_queue_and_head_are_sized_before_they_are_built(monkeypatch) -> None:
    """Head 64 -> 512 -> 128: (64 * 512 + 512 * 128) weights x 4 bytes x 5 copies (weights, gradients, two Adam
    moments, the momentum encoder) = 1,966,080; queue 1,000 x (128 x 4 + 8) = 520,000; together 2,486,080."""
    settings = method_settings("moco", {"queue_size": 1000, "out_dim": 128, "head_hidden": 512, "head_layers": 2})
    _available(monkeypatch, 2_700_000)  # 90 %: 2,430,000
    with pytest.raises(NotEnoughMemoryError, match="`queue_size` 1000") as info:
        check_method_memory(settings, 64, num_samples=10)
    assert info.value.needed == 2_486_080
    _available(monkeypatch, 2_763_000)  # 90 %: 2,486,700
    check_method_memory(settings, 64, num_samples=10)
    _available(monkeypatch, 2_000_000)  # 1,800,000: the head alone (1,966,080) does not fit
    with pytest.raises(NotEnoughMemoryError, match="`head_hidden` 512, `out_dim` 128") as info:
        check_method_memory(settings, 64, num_samples=10)
    assert info.value.needed == 1_966_080


def test_memory_bank_is_sized_before_it_is_built(monkeypatch) -> None:
    """membank: a linear head 64 -> 128 (8,192 weights x 4 bytes x 4 copies = 131,072) and a bank of 1,000 rows
    x 128 float32, twice while normalised (1,024 bytes a row), + int64 ids: 1,032,000; together 1,163,072."""
    settings = method_settings("membank", num_samples=1000)
    assert (settings.head_layers, settings.out_dim) == (1, 128)
    _available(monkeypatch, 1_290_000)  # 90 %: 1,161,000
    with pytest.raises(NotEnoughMemoryError, match="memory bank of 1,000 rows") as info:
        check_method_memory(settings, 64, num_samples=1000)
    assert info.value.needed == 1_163_072
    check_method_memory(object(), 64, 1000)  # other methods' settings are left to them


def test_batch_views_are_sized_on_the_device(monkeypatch) -> None:
    """100 samples x 2 views x 1 x 28 x 28 float32 = 627,200 bytes on the CPU."""
    _available(monkeypatch, 690_000)  # 90 %: 621,000
    with pytest.raises(NotEnoughMemoryError, match="`batch_size` 100") as info:
        check_batch_memory(100, 2, (1, 28, 28), torch.device("cpu"))
    assert info.value.needed == 627_200
    _available(monkeypatch, 700_000)
    check_batch_memory(100, 2, (1, 28, 28), torch.device("cpu"))
