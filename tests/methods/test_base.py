"""The method protocol (contrastkit.methods.base): BatchSpec validation, Method defaults and check_method.

Rules checked: ``views`` is an int >= 0 (not a bool); ``sampler`` is 'shuffle' or 'pk'; 'pk' needs
``samples_per_class`` >= 2 and ``labels=True``; ``crop`` is None or an int >= 1; Method's defaults are a
no-op ``after_step`` and ``features(x) = encoder(x).flatten(1)``; check_method names what a module lacks.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from contrastkit.methods.base import Batch, BatchSpec, Method, StepOutput, check_method


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

    def forward(self, batch: Batch) -> StepOutput:
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

    def after_step(self, output, gather=None) -> None:
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
