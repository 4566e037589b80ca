"""The method protocol (contrastkit.methods.base): BatchSpec validation, Method defaults and check_method.

Rules checked: ``views`` is an int >= 0 (not a bool); ``sampler`` is 'shuffle' or 'pk'; 'pk' needs
``samples_per_class`` >= 2 and ``labels=True``; ``crop`` is None or an int >= 1; Method's defaults are a
no-op ``after_step`` and ``features(x) = encoder(x).flatten(1)``; check_method names what a module lacks;
the trainer runs ``forward`` (only) under bf16 autocast with precision='bf16', and ``full_precision`` gives a
loss in float32 there (the float32 computation on the same bf16 inputs). The declared capabilities: each one's
default, check_method's type errors and misspelling errors (a name close to a capability's), and plain nn.Modules
(every default through as_method; a capability named on one is refused).
"""

from __future__ import annotations

import csv

import pytest
import torch
from torch import nn

from contrastkit.config import TrainConfig
from contrastkit.data import load_dataset
from contrastkit.data.containers import ArrayDataset, DatasetSplits
from contrastkit.losses import TripletLoss, contrastive_loss, nt_xent
from contrastkit.methods import build_method
from contrastkit.methods.base import (
    CAPABILITIES,
    Batch,
    BatchSpec,
    EvalContext,
    EvalExtras,
    Method,
    PlainMethod,
    StepOutput,
    as_method,
    check_method,
    full_precision,
)
from contrastkit.process_group import ONE_PROCESS
from contrastkit.similarity import normalize
from contrastkit.train import Trainer


def test_batch_spec_defaults() -> None:
    spec = BatchSpec()
    assert (spec.views, spec.labels, spec.sampler, spec.samples_per_class, spec.crop) == (2, False, "shuffle", None,
                                                                                          None)
    assert BatchSpec(views=0).views == 0
    assert BatchSpec(sampler="pk", samples_per_class=4, labels=True).samples_per_class == 4
    assert BatchSpec(crop=1).crop == 1
    with pytest.raises(AttributeError):
        spec.views = 3  # frozen


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"views": -1}, r"`views` must be an integer >= 0, got -1"),
    ({"views": True}, r"`views` must be an integer >= 0, got True"),
    ({"views": 2.0}, r"`views` must be an integer >= 0, got 2\.0"),
    ({"views": "2"}, r"`views` must be an integer >= 0, got '2'"),
    ({"sampler": "random"}, r"`sampler` must be one of \('shuffle', 'pk'\), got 'random'"),
    ({"sampler": "pk", "labels": True}, r"sampler='pk' needs samples_per_class \(K\) >= 2"),
    ({"sampler": "pk", "labels": True, "samples_per_class": 1}, r"needs samples_per_class \(K\) >= 2"),
    ({"sampler": "pk", "labels": True, "samples_per_class": 2.5}, r"needs samples_per_class \(K\) >= 2"),
    ({"sampler": "pk", "samples_per_class": 4}, "sampler='pk' draws classes, so it needs labels=True"),
    ({"crop": 0}, r"`crop` must be None or an integer >= 1, got 0"),
    ({"crop": True}, r"`crop` must be None or an integer >= 1, got True"),
    ({"crop": 8.0}, r"`crop` must be None or an integer >= 1, got 8\.0"),
])
def test_batch_spec_refuses(kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        BatchSpec(**kwargs)


class _Tiny(Method):
    batch_spec = BatchSpec(views=1)

    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Conv2d(1, 2, 3)

    def forward(self, batch: Batch, group=None) -> StepOutput:
        return StepOutput(self.encoder(batch.views[0]).square().mean())


def test_method_defaults() -> None:
    method = _Tiny()
    check_method(method)
    x = torch.randn(4, 1, 5, 5)
    features = method.features(x)
    assert features.shape == (4, 2 * 3 * 3)
    assert torch.equal(features, method.encoder(x).reshape(4, -1))
    before = {k: v.clone() for k, v in method.state_dict().items()}
    output = method(Batch([x], torch.arange(4)))
    assert method.after_step(output) is None
    assert all(torch.equal(before[k], v) for k, v in method.state_dict().items())  # nothing stored moved
    assert Method.batch_spec == BatchSpec()


class _Duck(nn.Module):
    """Not a Method subclass, but with every member of the protocol."""

    def __init__(self) -> None:
        super().__init__()
        self.batch_spec = BatchSpec()
        self.encoder = nn.Linear(2, 2)

    def after_step(self, output, group=None) -> None:
        pass


def test_any_module_with_the_members_passes() -> None:
    check_method(_Duck())


def _without(*names: str) -> nn.Module:
    duck = _Duck()
    for name in names:
        if name == "after_step":
            duck = type("NoAfter", (nn.Module,), {})()
            duck.batch_spec, duck.encoder = BatchSpec(), nn.Linear(2, 2)
        else:
            delattr(duck, name)
    return duck


@pytest.mark.parametrize(("method", "error", "match"), [
    (object(), TypeError, "a method must be an nn.Module, got object"),
    (nn.Linear(2, 2), TypeError, r"Linear is not a contrastkit method: it lacks \['batch_spec', 'encoder', "
                                 r"'after_step'\]"),
    (_without("encoder"), TypeError, r"lacks \['encoder'\]"),
    (_without("batch_spec"), TypeError, r"lacks \['batch_spec'\]"),
    (_without("after_step"), TypeError, r"NoAfter is not a contrastkit method: it lacks \['after_step'\]"),
])
def test_check_method_names_what_is_missing(method, error, match) -> None:
    with pytest.raises(error, match=match):
        check_method(method)


def test_check_method_refuses_wrong_types() -> None:
    duck = _Duck()
    duck.batch_spec = {"views": 2}
    with pytest.raises(TypeError, match=r"_Duck\.batch_spec must be a BatchSpec, got dict"):
        check_method(duck)
    duck = _Duck()
    object.__setattr__(duck, "encoder", lambda x: x)  # a function, not a module
    with pytest.raises(TypeError, match=r"_Duck\.encoder must be an nn\.Module"):
        check_method(duck)


# --- precision: where autocast applies, and full_precision -------------------------------------------------------

def _gram(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return a.T @ b  # a matrix product: bf16 under autocast whatever the inputs' dtype


def test_full_precision_computes_in_float32_on_the_same_inputs() -> None:
    """Under CPU bf16 autocast a product of bf16 inputs is bf16; through full_precision it is float32 and equals
    the float32 product of the same (bf16) values exactly, the inputs' rounding being the only one left."""
    a, b = torch.randn(64, 8).bfloat16(), torch.randn(64, 8).bfloat16()
    expected = a.float().T @ b.float()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        plain = _gram(a, b)
        plain_float_inputs = _gram(a.float(), b.float())  # casting the inputs alone does not help
        exact = full_precision(_gram)(a, b)
        by_keyword = full_precision(_gram)(a, b=b)
        assert torch.is_autocast_enabled("cpu")  # switched back on after the call
    assert plain.dtype == plain_float_inputs.dtype == torch.bfloat16
    assert exact.dtype == by_keyword.dtype == torch.float32
    assert torch.equal(exact, expected) and torch.equal(by_keyword, expected)
    assert not torch.equal(plain.float(), expected)  # what autocast did: 8 significant bits


def test_full_precision_turns_autocast_off_only_inside_and_casts_only_half_tensors() -> None:
    seen = {}

    @full_precision
    def record(x, pair, number, *, other, doubles, labels):
        """Records what it got."""
        seen.update(autocast=torch.is_autocast_enabled("cpu"), x=x.dtype, pair=[t.dtype for t in pair],
                    number=number, other=other.dtype, doubles=doubles.dtype, labels=labels.dtype)
        return x.sum()

    assert record.__name__ == "record" and record.__doc__ == "Records what it got."
    with torch.autocast("cpu", dtype=torch.bfloat16):
        record(torch.ones(2, dtype=torch.bfloat16), (torch.ones(2, dtype=torch.float16), torch.ones(2)), 3,
               other=torch.ones(2, dtype=torch.bfloat16), doubles=torch.ones(2, dtype=torch.float64),
               labels=torch.arange(2))
        assert torch.is_autocast_enabled("cpu")
    assert seen == {"autocast": False, "x": torch.float32, "pair": [torch.float32, torch.float32], "number": 3,
                    "other": torch.float32, "doubles": torch.float64, "labels": torch.int64}
    with pytest.raises(TypeError, match="full_precision wraps a function"):
        full_precision(torch.ones(2))


def test_full_precision_passes_gradients_back_in_the_inputs_dtype() -> None:
    a = torch.randn(16, 4).bfloat16().requires_grad_()
    b = torch.randn(16, 4).bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        full_precision(_gram)(a, b).sum().backward()
    assert a.grad.dtype == torch.bfloat16
    assert torch.equal(a.grad, b.float().sum(1, keepdim=True).expand(16, 4).bfloat16())  # d/da sum(a^T b)


def _covariance_term(z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
    """VICReg's covariance term (Bardes et al. 2022): the squared off-diagonal covariances of each view's
    projections, divided by their dimension."""
    total = z1.new_zeros(())
    for z in (z1, z2):
        centred = z - z.mean(0)
        cov = centred.T @ centred / (z.shape[0] - 1)  # (D, D)
        total = total + (cov.square().sum() - cov.diagonal().square().sum()) / z.shape[1]
    return total


class _CovariancePlugin(Method):
    """A VICReg-style plugin method whose loss is the covariance term, computed by ``loss_fn``; it records what it
    saw, to compare with a float64 computation on the same projections."""

    batch_spec = BatchSpec(views=2)

    def __init__(self, loss_fn) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU())
        self.projector = nn.Linear(32, 16)
        self.loss_fn = loss_fn
        self.seen: dict[str, object] = {}

    def forward(self, batch: Batch, group=None) -> StepOutput:
        z1, z2 = (self.projector(self.encoder(v)) for v in batch.views)
        loss = self.loss_fn(z1, z2)
        self.seen.update(z=(z1.detach(), z2.detach()), loss=loss.detach(), autocast=torch.is_autocast_enabled("cpu"))
        return StepOutput(loss, logs={"loss": loss.detach()})

    @torch.no_grad()
    def after_step(self, output: StepOutput, group=None) -> None:
        self.seen["after_step_autocast"] = torch.is_autocast_enabled("cpu")


@pytest.mark.parametrize("in_float32", [True, False])
def test_a_plugin_loss_trained_in_bf16_logs_its_float32_value(in_float32: bool, tmp_path) -> None:
    """precision='bf16': the trainer runs forward (only) under bf16 autocast. The plugin's covariance loss through
    full_precision is logged in float32, equal to the float64 computation on the bf16 projections it saw; the same
    loss written plainly is a bf16 number (the defect: 1.140625, 2.0, 2.125)."""
    torch.manual_seed(0)
    method = _CovariancePlugin(full_precision(_covariance_term) if in_float32 else _covariance_term)
    config = TrainConfig(method="vicreg_covariance", data="digits", out=str(tmp_path / "run"), epochs=1,
                         batch_size=64, precision="bf16", device="cpu", progress=False, log_every=1)
    Trainer(method, load_dataset("digits"), config).fit(max_steps=1)
    z1, z2 = method.seen["z"]
    assert method.seen["autocast"] and not method.seen["after_step_autocast"]
    assert z1.dtype == z2.dtype == torch.bfloat16  # the projections did run under autocast
    with (tmp_path / "run" / "train_log.csv").open() as f:
        logged = float(next(csv.DictReader(f))["loss"])
    expected = float(_covariance_term(z1.double(), z2.double()))
    if in_float32:
        assert method.seen["loss"].dtype == torch.float32
        assert logged == pytest.approx(expected, rel=1e-5)
    else:
        assert method.seen["loss"].dtype == torch.bfloat16


def _capture_head(method: nn.Module) -> list[torch.Tensor]:
    """The outputs of ``method.head``, call by call (a forward hook)."""
    outputs: list[torch.Tensor] = []
    method.head.register_forward_hook(lambda module, args, out: outputs.append(out.detach()))
    return outputs


def _simclr_case():
    method = build_method("simclr", nn.Sequential(nn.Flatten(), nn.Linear(64, 32)), 32)
    heads = _capture_head(method)
    batch = Batch([torch.randn(16, 1, 8, 8), torch.randn(16, 1, 8, 8)], torch.arange(16))

    def expected() -> torch.Tensor:  # nt_xent on the projections the method saw (it normalises them itself)
        return nt_xent(heads[0].double(), heads[1].double(), float(method.temperature()))

    return method, batch, heads, expected


def _triplet_case():
    method = build_method("triplet", nn.Sequential(nn.Flatten(), nn.Linear(64, 32)), 32, mining="all",
                          samples_per_class=4, margin=0.5)
    heads = _capture_head(method)
    labels = torch.arange(16) % 4
    batch = Batch([torch.randn(16, 1, 8, 8)], torch.arange(16), labels)

    def expected() -> torch.Tensor:
        return TripletLoss(0.5, "all")(normalize(heads[0].double()), labels)

    return method, batch, heads, expected


def _drlim_case():
    train_x = torch.randn(40, 1, 8, 8)
    method = build_method("drlim", nn.Sequential(nn.Flatten(), nn.Linear(64, 32)), 32, train_inputs=train_x,
                          margin=2.0)
    heads = _capture_head(method)
    indices = torch.arange(0, 32, 2)
    batch = Batch([train_x[indices]], indices, generator=torch.Generator().manual_seed(5))

    def expected() -> torch.Tensor:  # the same pairs (the same seed), Hadsell's loss in float64
        _, i, j = method.sample_pairs(indices, torch.Generator().manual_seed(5))
        z, b = heads[0].double(), len(indices)
        left, right = torch.cat([z[:b], z[i]]), torch.cat([z[b:], z[j]])
        return contrastive_loss(left, right, torch.arange(len(left)) < b, margin=2.0)

    return method, batch, heads, expected


@pytest.mark.parametrize("case", [_simclr_case, _triplet_case, _drlim_case], ids=["simclr", "triplet", "drlim"])
def test_the_built_in_methods_compute_their_loss_in_float32_under_autocast(case) -> None:
    """Under the trainer's bf16 autocast the networks give bf16 projections; the loss is float32 and equals the
    float64 computation on those projections (CPC: tests/methods/test_cpc.py)."""
    torch.manual_seed(0)
    method, batch, heads, expected = case()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = method(batch)
    assert heads and all(h.dtype == torch.bfloat16 for h in heads)
    assert out.loss.dtype == torch.float32
    assert float(out.loss.detach()) == pytest.approx(float(expected()), rel=1e-5)


# --- declared capabilities (issue 15 item 2): defaults, types, misspellings, plain modules -----------------------

def _tiny_splits() -> DatasetSplits:
    g = torch.Generator().manual_seed(0)
    return DatasetSplits("vectors", ArrayDataset(torch.randn(8, 4, generator=g), torch.arange(8) % 2),
                         ArrayDataset(torch.randn(4, 4, generator=g), torch.arange(4) % 2), 2)


def test_each_capability_has_its_default() -> None:
    method = _Tiny()
    assert set(CAPABILITIES) == {"features", "frame_features", "prediction_accuracy", "is_map", "split_bn",
                                 "batchnorm", "check_sequence_length", "paired_fields", "embed", "evaluation_extras"}
    assert (method.split_bn, method.batchnorm, method.is_map, method.paired_fields) == (0, None, False, None)
    with pytest.raises(ValueError, match=r"_Tiny is not a two-tower method .* no embedding of field 'text'"):
        method.embed("text", torch.zeros(2, 3, dtype=torch.uint8))
    assert method.frame_features is None and method.prediction_accuracy is None
    assert method.check_sequence_length(1) is None and method.check_sequence_length(10 ** 9) is None  # no limit
    context = EvalContext(_tiny_splits(), torch.device("cpu"), scores=True, plot_dir=None)
    assert method.evaluation_extras(context) == EvalExtras(metrics={}, plots=[], notes=[])


def _with(**members) -> Method:
    """A _Tiny whose class sets ``members`` (capabilities, or names close to them)."""
    return type("Custom", (_Tiny,), members)()


@pytest.mark.parametrize(("members", "error", "match"), [
    ({"split_bn": -1}, ValueError, r"Custom\.split_bn must be an integer >= 0, got -1 \(a declared capability"),
    ({"split_bn": True}, TypeError, r"Custom\.split_bn must be an integer >= 0, got bool True"),
    ({"split_bn": 2.0}, TypeError, r"Custom\.split_bn must be an integer >= 0, got float 2\.0"),
    ({"batchnorm": "group"}, ValueError, r"Custom\.batchnorm must be None or one of \('split', 'shuffle', 'sync', "
                                         r"'local'\), got 'group'"),
    ({"batchnorm": 1}, TypeError, r"Custom\.batchnorm must be None or one of .*, got 1"),
    ({"is_map": 1}, TypeError, r"Custom\.is_map must be True or False, got int 1"),
    ({"paired_fields": ("audio",)}, TypeError, r"Custom\.paired_fields must be None or a tuple of two different field "
                                               r"names, got \('audio',\)"),
    ({"paired_fields": ("text", "text")}, TypeError, r"Custom\.paired_fields must be None or a tuple of two different"),
    ({"paired_fields": ["audio", "text"]}, TypeError, r"Custom\.paired_fields must be None or a tuple"),
    ({"is_map": "yes"}, TypeError, r"Custom\.is_map must be True or False, got str 'yes'"),
    ({"frame_features": 3}, TypeError, r"Custom\.frame_features must be a method \(callable\) or None, got int 3"),
    ({"prediction_accuracy": "acc"}, TypeError, r"Custom\.prediction_accuracy must be a method \(callable\) or None"),
    ({"features": None}, TypeError, r"Custom\.features must be a method \(callable\), got NoneType None"),
    ({"check_sequence_length": 12}, TypeError, r"Custom\.check_sequence_length must be a method \(callable\)"),
    ({"evaluation_extras": {}}, TypeError, r"Custom\.evaluation_extras must be a method \(callable\), got dict"),
])
def test_check_method_refuses_a_capability_of_the_wrong_type(members, error, match) -> None:
    with pytest.raises(error, match=match):
        check_method(_with(**members))


@pytest.mark.parametrize(("members", "wrong", "meant"), [
    ({"is_maps": True}, "is_maps", "is_map"),
    ({"ismap": True}, "ismap", "is_map"),
    ({"frame_feature": lambda self, x: x}, "frame_feature", "frame_features"),
    ({"prediction_acc": lambda self, x: x}, "prediction_acc", "prediction_accuracy"),
    ({"split_bns": 2}, "split_bns", "split_bn"),
    ({"batch_norm": "sync"}, "batch_norm", "batchnorm"),
    ({"check_seq_length": lambda self, n: None}, "check_seq_length", "check_sequence_length"),
    ({"evaluation_extra": lambda self, c: None}, "evaluation_extra", "evaluation_extras"),
    ({"feature": lambda self, x: x}, "feature", "features"),
])
def test_check_method_names_a_misspelt_capability_and_the_one_meant(members, wrong, meant) -> None:
    with pytest.raises(TypeError, match=rf"Custom\.{wrong} looks like a misspelling of the capability `{meant}`"):
        check_method(_with(**members))


def test_a_misspelt_capability_set_in_init_or_as_a_submodule_is_found_too() -> None:
    method = _Tiny()
    method.is_maps = True  # an instance attribute
    with pytest.raises(TypeError, match=r"_Tiny\.is_maps looks like a misspelling of the capability `is_map`"):
        check_method(method)
    method = _Tiny()
    method.frame_feature = nn.Linear(2, 2)  # a submodule
    with pytest.raises(TypeError, match=r"_Tiny\.frame_feature looks like .* `frame_features`"):
        check_method(method)


def test_names_that_extend_a_capability_or_are_private_are_not_misspellings() -> None:
    method = _with(in_features=64, num_features=3, is_map_2=False, features_dim=8, _is_maps=True)
    method.out_features = 8
    check_method(method)


def test_the_built_in_methods_declare_valid_capabilities() -> None:
    encoder = nn.Sequential(nn.Flatten(), nn.Linear(36, 8))
    for name in ("simclr", "moco", "membank", "triplet"):
        check_method(build_method(name, encoder, 8, num_samples=20, num_classes=2))
    check_method(build_method("drlim", nn.Flatten(), 36, train_inputs=torch.randint(0, 255, (20, 1, 6, 6),
                                                                                      dtype=torch.uint8)))
    # ContrastiveMethod sets split_bn and batchnorm as attributes: that is declaring them
    moco = build_method("moco", nn.Sequential(nn.Flatten(), nn.Linear(36, 8), nn.BatchNorm1d(8)), 8, split_bn=2)
    check_method(moco)
    assert (as_method(moco).split_bn, as_method(moco).batchnorm) == (2, "split")


def test_a_plain_module_gets_every_default_through_as_method() -> None:
    duck = _Duck()
    keys = list(duck.state_dict())
    method = as_method(duck)
    assert isinstance(method, PlainMethod) and isinstance(method, Method)
    assert method.module is duck and method.encoder is duck.encoder and method.batch_spec is duck.batch_spec
    assert (method.split_bn, method.batchnorm, method.is_map) == (0, None, False)
    assert method.frame_features is None and method.prediction_accuracy is None
    x = torch.randn(3, 2)
    assert torch.equal(method.features(x), duck.encoder(x))
    assert list(duck.state_dict()) == keys  # the module itself is untouched
    tiny = _Tiny()
    assert as_method(tiny) is tiny


def test_a_plain_module_forward_and_after_step_are_delegated() -> None:
    calls = []

    class Counting(_Duck):
        def forward(self, batch, group=None):
            calls.append("forward")
            return StepOutput(self.encoder(batch.views[0]).sum())

        def after_step(self, output, group=None) -> None:
            calls.append(("after_step", group))

    method = as_method(Counting())
    output = method(Batch([torch.randn(2, 2)], torch.arange(2)))
    method.after_step(output, ONE_PROCESS)
    assert calls == ["forward", ("after_step", ONE_PROCESS)]


@pytest.mark.parametrize(("name", "value"), [("is_map", True), ("split_bn", 2), ("frame_features", lambda x: x)])
def test_a_plain_module_naming_a_capability_is_told_to_subclass_method(name, value) -> None:
    duck = _Duck()
    setattr(duck, name, value)
    with pytest.raises(TypeError, match=rf"_Duck\.{name} is a capability of contrastkit\.methods\.Method, but _Duck "
                                        rf"is a plain nn\.Module, .* subclass Method to declare {name}"):
        as_method(duck)


def test_a_plain_module_with_a_misspelt_capability_is_refused() -> None:
    duck = _Duck()
    duck.is_maps = True
    with pytest.raises(TypeError, match=r"_Duck\.is_maps looks like a misspelling of the capability `is_map`"):
        check_method(duck)


# --- the processes are handed in: forward(batch, group) and after_step(output, group) ---------------------------

class _OldForward(Method):
    """A method written for the protocol before the processes were handed in."""

    batch_spec = BatchSpec(views=1)

    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Linear(2, 2)

    def forward(self, batch):  # type: ignore[override]
        return StepOutput(self.encoder(batch.views[0]).sum())


def test_a_forward_without_the_group_is_refused_saying_what_to_write() -> None:
    with pytest.raises(TypeError, match=r"_OldForward\.forward\(batch\) must also take the processes of the run: "
                                        r"def forward\(self, batch, group=ONE_PROCESS\)"):
        check_method(_OldForward())


def test_an_after_step_without_the_group_is_refused() -> None:
    class OldAfterStep(_OldForward):
        def forward(self, batch, group=None):
            return super().forward(batch)

        def after_step(self, output):  # type: ignore[override]
            pass

    with pytest.raises(TypeError, match=r"OldAfterStep\.after_step\(output\) must also take the processes"):
        check_method(OldAfterStep())


def test_the_trainer_hands_forward_and_after_step_the_same_processes(tmp_path) -> None:
    seen = []

    class Recording(Method):
        batch_spec = BatchSpec(views=0)

        def __init__(self) -> None:
            super().__init__()
            self.encoder = nn.Linear(4, 2)

        def forward(self, batch, group=None):
            seen.append(("forward", group))
            loss = self.encoder(batch.views[0]).square().mean()
            return StepOutput(loss, logs={"loss": loss.detach()})

        def after_step(self, output, group=None) -> None:
            seen.append(("after_step", group))

    x = torch.randn(16, 4)
    data = ArrayDataset(x, torch.full((16,), -1))
    config = TrainConfig(method="recording", data="toy", epochs=1, batch_size=8, out=str(tmp_path / "run"),
                         progress=False)
    Trainer(Recording(), data, config).fit()
    assert [name for name, _ in seen] == ["forward", "after_step"] * 2
    assert all(group is ONE_PROCESS for _, group in seen)  # one process: the shared one-process object
    assert (ONE_PROCESS.rank, ONE_PROCESS.world, ONE_PROCESS.gather(x) is x) == (0, 1, True)
