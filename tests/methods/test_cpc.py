"""CPC: the loss against an explicit float64 loop over (n, t, k, candidates), the softmax axis, negatives, per-k
predictors, shapes, and exact resume of a CPC run; K (steps ahead) refused before training when the training crops
are too short for it; the loss in float32 under bf16 autocast."""

import copy
import csv
import math
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from contrastkit.cli import main
from contrastkit.config import TrainConfig
from contrastkit.data.containers import ArrayDataset, DatasetSplits
from contrastkit.methods import build_method
from contrastkit.methods.base import Batch
from contrastkit.methods.cpc import CPC, FULL_SCORES_LIMIT, cpc_loss
from contrastkit.models.sequence import Conv1dEncoder
from contrastkit.settings import SettingsError
from contrastkit.similarity import BilinearSimilarity
from contrastkit.train import Trainer
from tests.helpers import assert_same_state, train_in_two_sessions


def _reference(z, c, weights, negatives_from):
    """-log softmax of the positive over the candidates of each (n, t, k), averaged over (n, t) then over k; the
    candidates are the positive once and every other latent of the sequence or of the batch."""
    n, t, _ = z.shape
    per_k, accuracy = [], []
    for k, w in enumerate(weights, start=1):
        if k >= t:
            break
        terms, hits = [], []
        for i in range(n):
            for s in range(t - k):
                pred = c[i, s] @ w.T  # W_k maps c to the latent space: f = z^T W c = (c W^T) . z
                positive = float(pred @ z[i, s + k])
                if negatives_from == "same_sequence":
                    negatives = [float(pred @ z[i, u]) for u in range(t) if u != s + k]
                else:
                    negatives = [float(pred @ z[j, u]) for j in range(n) for u in range(t) if (j, u) != (i, s + k)]
                scores = [positive, *negatives]
                top = max(scores)
                terms.append(-(positive - top - math.log(sum(math.exp(x - top) for x in scores))))
                hits.append(positive >= max(negatives))
        per_k.append(sum(terms) / len(terms))
        accuracy.append(sum(hits) / len(hits))
    return sum(per_k) / len(per_k), accuracy


@pytest.mark.parametrize(("negatives_from", "block_size"), [("same_sequence", None), ("batch", None), ("batch", 3)])
def test_loss_and_accuracy_match_an_explicit_loop(negatives_from, block_size):
    torch.manual_seed(0)
    z = torch.randn(2, 5, 3, dtype=torch.float64, requires_grad=True)
    c = torch.randn(2, 5, 4, dtype=torch.float64, requires_grad=True)
    predictors = nn.ModuleList(BilinearSimilarity(4, 3) for _ in range(3)).double()
    loss, accuracy = cpc_loss(z, c, predictors, negatives_from=negatives_from, block_size=block_size)
    # BilinearSimilarity(dim_x=context, dim_y=latent) has W (Dc, Dz): f(c, z) = c^T W z
    expected, expected_accuracy = _reference(z.detach(), c.detach(), [p.weight.detach().T for p in predictors],
                                             negatives_from)
    assert math.isclose(float(loss.detach()), expected, rel_tol=1e-10)
    assert accuracy.tolist() == pytest.approx(expected_accuracy)
    torch.autograd.gradcheck(lambda zz, cc: cpc_loss(zz, cc, predictors, negatives_from=negatives_from,
                                                     block_size=block_size)[0], (z, c))


def test_the_softmax_runs_over_candidates_not_contexts():
    """Scaling one context's score vector changes only its own prediction's term; adding a constant to every
    candidate's score of one prediction changes nothing (a softmax over candidates is shift invariant)."""
    torch.manual_seed(1)
    z, c = torch.randn(3, 6, 4, dtype=torch.float64), torch.randn(3, 6, 5, dtype=torch.float64)
    predictors = nn.ModuleList([BilinearSimilarity(5, 4, bias=True)]).double()
    base, _ = cpc_loss(z, c, predictors)
    with torch.no_grad():
        predictors[0].bias.fill_(7.0)  # the same shift for every candidate of every prediction
    shifted, _ = cpc_loss(z, c, predictors)
    assert torch.allclose(base, shifted)


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 3), t=st.integers(2, 6), k=st.integers(1, 4), seed=st.integers(0, 1000))
def test_a_positive_is_never_its_own_negative(n, t, k, seed):
    """If every latent is the same vector, each prediction faces its positive and exactly (candidates - 1)
    equal negatives: the loss is log(number of candidates) for every k < t."""
    torch.manual_seed(seed)
    z = torch.ones(n, t, 3, dtype=torch.float64)
    c = torch.randn(n, t, 2, dtype=torch.float64)
    predictors = nn.ModuleList(BilinearSimilarity(2, 3) for _ in range(k)).double()
    for source, candidates in (("same_sequence", t), ("batch", n * t)):
        loss, accuracy = cpc_loss(z, c, predictors, negatives_from=source)
        assert math.isclose(float(loss.detach()), math.log(candidates), rel_tol=1e-12)
        assert bool((accuracy == 1.0).all())  # ties count as ranked first


def test_shapes_predictors_and_logs():
    torch.manual_seed(0)
    encoder = Conv1dEncoder(1, width=8, strides=(5, 4, 2, 2, 2))
    method = CPC(encoder, 8, context=6, steps_ahead=4, crop=1600)
    assert len({id(p.weight) for p in method.predictors}) == 4  # one W_k per step, not shared
    assert not torch.equal(method.predictors[0].weight, method.predictors[1].weight)
    x = torch.randn(3, 1, 3200)
    z, c = method.latents_and_contexts(x)
    assert z.shape == (3, 20, 8) and c.shape == (3, 20, 6)  # 3200 samples / 160 = 20 latent steps
    assert method.frame_features(x).shape == (3, 20, 6) and method.features(x).shape == (3, 6)
    assert method.batch_spec.views == 0 and method.batch_spec.crop == 1600
    logs = method(Batch(views=[x[:, :, :1600]], indices=torch.arange(3))).logs  # the columns of train_log.csv
    assert list(logs) == ["loss", "acc_k1", "acc_k2", "acc_k3", "acc_k4"] and not hasattr(method, "log_keys")
    with pytest.raises(TypeError, match=r"steps\(x\)"):
        CPC(nn.Linear(3, 3), 3)
    with pytest.raises(ValueError, match="leave nothing to predict"):
        cpc_loss(torch.randn(1, 1, 3), torch.randn(1, 1, 2), nn.ModuleList([BilinearSimilarity(2, 3)]))


def test_blockwise_only_when_the_full_scores_would_not_fit():
    """blockwise=None goes blockwise exactly when K steps of (N (T - k)) x (N T) float32 scores pass the
    limit; an explicit True / False is obeyed; same-sequence negatives never need it. Both forms give one loss."""
    encoder = Conv1dEncoder(1, width=8, strides=(5, 4, 2, 2, 2))
    auto = CPC(encoder, 8, context=6, steps_ahead=2, negatives_from="batch")

    def full_bytes(n: int, t: int) -> int:
        return 4 * n * t * (n * (t - 1) + n * (t - 2))

    assert not auto.uses_blocks(32, 64) and full_bytes(32, 64) <= FULL_SCORES_LIMIT
    n = 8
    while full_bytes(n, 64) <= FULL_SCORES_LIMIT:
        n *= 2
    assert auto.uses_blocks(n, 64) and not auto.uses_blocks(n // 2, 64)
    assert CPC(encoder, 8, negatives_from="batch", blockwise=True).uses_blocks(2, 4)
    assert not CPC(encoder, 8, negatives_from="batch", blockwise=False).uses_blocks(n, 64)
    assert not CPC(encoder, 8, negatives_from="same_sequence", blockwise=True).uses_blocks(n, 64)
    torch.manual_seed(0)
    x = torch.randn(4, 1, 3200)
    full = CPC(Conv1dEncoder(1, width=8, strides=(5, 4, 2, 2, 2)), 8, context=6, steps_ahead=3,
               negatives_from="batch", blockwise=False)
    blocks = CPC(Conv1dEncoder(1, width=8, strides=(5, 4, 2, 2, 2)), 8, context=6, steps_ahead=3,
                 negatives_from="batch", blockwise=True)
    blocks.load_state_dict(full.state_dict())
    batch = Batch(views=[x], indices=torch.arange(4))
    assert torch.allclose(full(batch).loss, blocks(batch).loss, atol=1e-5)


def test_the_registry_builds_cpc_with_its_encoder_and_settings():
    method = build_method("cpc", Conv1dEncoder(1, width=16, strides=(5, 4, 2, 2, 2)), 16, steps_ahead=5,
                          negatives_from="same_sequence")
    assert isinstance(method, CPC) and len(method.predictors) == 5 and method.negatives_from == "same_sequence"
    with pytest.raises(ValueError, match="`negatives_from` must be one of 'same_sequence', 'batch'"):
        build_method("cpc", Conv1dEncoder(1), 64, negatives_from="queue")


def _losses(out: Path) -> list[tuple[int, float, float]]:
    with (out / "train_log.csv").open() as f:
        return [(int(r["step"]), float(r["loss"]), float(r["acc_k1"])) for r in csv.DictReader(f)]


def test_a_cpc_run_learns_logs_per_k_accuracy_and_resumes_exactly(tmp_path):
    def config(out: str, **kw) -> TrainConfig:
        return TrainConfig(method="cpc", data="toyspeech", out=str(tmp_path / out), epochs=2, batch_size=32,
                           log_every=1, progress=False, method_options={"channels": 16, "context": 16,
                                                                          "steps_ahead": 4, "crop": 3200}, **kw)

    straight = Trainer.from_config(config("a"))
    assert straight.config.encoder == "cpc" and straight.steps_per_epoch == 6
    straight.fit()
    second = train_in_two_sessions(lambda: Trainer.from_config(config("b", checkpoint_every=4)), stop_after=7)
    assert _losses(tmp_path / "b") == _losses(tmp_path / "a")
    assert_same_state(straight.method, second.method)
    header = (tmp_path / "a" / "train_log.csv").read_text().splitlines()[0]
    assert header.endswith("acc_k1,acc_k2,acc_k3,acc_k4")


# --- K must fit the training crops: refused before training -------------------------------------------------------

def _paper_encoder() -> Conv1dEncoder:
    return Conv1dEncoder(1, width=8, strides=(5, 4, 2, 2, 2))  # one latent step per 160 input steps


@pytest.mark.parametrize(("length", "steps"), [(159, 1), (160, 1), (319, 2), (320, 2), (1600, 10), (3200, 20),
                                             (10240, 64)])
def test_latent_steps_are_what_the_encoder_gives(length, steps):
    """Multiples of 160 give length / 160 steps; the padding lets 159 and 319 reach the next step already."""
    method = CPC(_paper_encoder(), 8, context=4, steps_ahead=1, crop=None).eval()  # BatchNorm of 1 value
    with torch.no_grad():
        given = method.encoder.steps(torch.zeros(1, 1, length)).shape[2]
    assert method.latent_steps(length) == given == steps


@pytest.mark.parametrize(("crop", "length", "largest", "crops"), [
    (1600, 3200, 9, "a training crop of 1600 steps into 10 latent steps"),
    (3200, 3200, 19, "a training crop of 3200 steps into 20 latent steps"),
    (None, 3200, 19, r"the whole 3200-step sequences \(no crop\) into 20 latent steps"),
    (None, 480, 2, r"the whole 480-step sequences \(no crop\) into 3 latent steps"),
])
def test_steps_ahead_must_leave_a_context_step_and_a_target_in_a_crop(crop, length, largest, crops):
    """K = T' - 1 (one context step, its target K steps later) is the largest K a crop of T' latent steps trains."""
    CPC(_paper_encoder(), 8, context=4, steps_ahead=largest, crop=crop).check_sequence_length(length)
    too_far = CPC(_paper_encoder(), 8, context=4, steps_ahead=largest + 1, crop=crop)
    with pytest.raises(SettingsError, match=rf"^`steps_ahead` \(--steps-ahead\) {largest + 1} is too far ahead: the "
                                            rf"encoder turns {crops}, .* use --steps-ahead {largest} or less$"):
        too_far.check_sequence_length(length)


def test_a_crop_of_one_latent_step_cannot_train_any_k():
    with pytest.raises(SettingsError, match=r"--steps-ahead\) 1 cannot be trained: the encoder turns a training crop "
                                            r"of 200 steps into 1 latent step\(s\).*use a longer crop \(--crop\)$"):
        CPC(_paper_encoder(), 8, context=4, steps_ahead=1, crop=200).check_sequence_length(3200)


def test_an_encoder_that_does_not_say_its_latent_length_is_not_checked():
    class Opaque(nn.Module):
        def steps(self, x):
            return x.repeat(1, 4, 1)

    method = CPC(Opaque(), 4, context=4, steps_ahead=50, crop=8)
    assert method.latent_steps(8) is None
    method.check_sequence_length(16)  # no answer to check against: the loss still refuses a crop with nothing ahead


def test_the_trainer_refuses_k_beyond_the_sequences_before_writing_anything(tmp_path):
    x = torch.randn(12, 1, 3200)
    data = DatasetSplits("waves", ArrayDataset(x[:8], torch.zeros(8, dtype=torch.long)),
                         ArrayDataset(x[8:], torch.zeros(4, dtype=torch.long)), num_classes=1)
    method = CPC(_paper_encoder(), 8, context=4, steps_ahead=20, crop=None)  # 20 latent steps: K <= 19
    config = TrainConfig(method="cpc", data="waves", out=str(tmp_path / "run"), epochs=1, batch_size=4,
                         progress=False)
    with pytest.raises(SettingsError, match=r"--steps-ahead\) 20 is too far ahead.*use --steps-ahead 19 or less"):
        Trainer(method, data, config)
    assert not (tmp_path / "run").exists()


def test_the_command_line_refuses_steps_ahead_10000_in_one_line(tmp_path, capsys, monkeypatch):
    """The defect: `--steps-ahead 10000` on toyspeech trained and wrote 10,000 accuracy columns. The default crop
    of 10,240 steps gives 64 latent steps with CPC's encoder (strides 5, 4, 2, 2, 2): K <= 63."""
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "run"
    code = main(["train", "--method", "cpc", "--data", "toyspeech", "--steps-ahead", "10000", "--epochs", "1",
                 "--out", str(out), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert err.startswith("contrastkit train: error: `steps_ahead` (--steps-ahead) 10000 is too far ahead: the "
                          "encoder turns a training crop of 10240 steps into 64 latent steps")
    assert err.strip().endswith("use --steps-ahead 63 or less")
    assert not out.exists()


# --- float32 under the trainer's bf16 autocast --------------------------------------------------------------------

@pytest.mark.parametrize(("negatives_from", "blockwise"), [("same_sequence", None), ("batch", False),
                                                           ("batch", True)])
def test_the_loss_is_float32_under_bf16_autocast(negatives_from, blockwise):
    """Under autocast g_enc and g_ar give bf16 latents and contexts; the loss is float32 and equals the float64
    computation on those values (same predictors, in float64)."""
    torch.manual_seed(0)
    method = CPC(_paper_encoder(), 8, context=6, steps_ahead=3, crop=None, negatives_from=negatives_from,
                 blockwise=blockwise)
    x = torch.randn(4, 1, 1600)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        z, c = method.latents_and_contexts(x)  # train mode: BatchNorm uses the batch's statistics, same as below
        out = method(Batch(views=[x], indices=torch.arange(4)))
    assert z.dtype == c.dtype == torch.bfloat16
    assert out.loss.dtype == torch.float32
    expected, accuracy = cpc_loss(z.double(), c.double(), copy.deepcopy(method.predictors).double(),
                                  negatives_from=negatives_from, block_size=3 if blockwise else None)
    assert float(out.loss.detach()) == pytest.approx(float(expected.detach()), rel=1e-5)
    assert [float(out.logs[f"acc_k{k}"]) for k in (1, 2, 3)] == pytest.approx(accuracy.tolist())


def test_cpc_loss_on_bf16_inputs_equals_the_float32_computation():
    torch.manual_seed(2)
    z, c = torch.randn(3, 7, 4).bfloat16(), torch.randn(3, 7, 5).bfloat16()
    predictors = nn.ModuleList(BilinearSimilarity(5, 4) for _ in range(3))
    expected, expected_accuracy = cpc_loss(z.float(), c.float(), predictors, negatives_from="batch")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss, accuracy = cpc_loss(z, c, predictors, negatives_from="batch")
    assert loss.dtype == torch.float32
    assert float(loss.detach()) == pytest.approx(float(expected.detach()), rel=1e-6)
    assert torch.equal(accuracy, expected_accuracy)


# --- issue 15 item 3: CPCSettings is the one home of CPC's defaults and rule ---------------------------------------

def _tiny_cpc_encoder() -> Conv1dEncoder:
    return Conv1dEncoder(1, width=8, strides=(2, 2))


@pytest.mark.parametrize(("name", "value", "read"), [
    ("context", 5, lambda m: m.context_net.hidden_size),
    ("steps_ahead", 3, lambda m: len(m.predictors)),
    ("negatives_from", "batch", lambda m: m.negatives_from),
    ("crop", 800, lambda m: m.batch_spec.crop),
    ("blockwise", True, lambda m: m.blockwise_setting),
])
def test_cpc_keyword_defaults_come_from_its_settings_class(monkeypatch, name, value, read) -> None:
    from contrastkit.methods.cpc import CPCSettings

    assert read(CPC(_tiny_cpc_encoder(), 8)) == getattr(CPCSettings(), name) != value
    monkeypatch.setattr(CPCSettings.__dataclass_fields__[name], "default", value)  # the one home, changed
    assert read(CPC(_tiny_cpc_encoder(), 8)) == value
    assert read(CPC(_tiny_cpc_encoder(), 8, settings=CPCSettings(**{name: value}))) == value  # the builder's path


def test_cpc_loss_default_negatives_come_from_the_settings_class(monkeypatch) -> None:
    from contrastkit.methods.cpc import CPCSettings

    torch.manual_seed(0)
    z, c = torch.randn(3, 6, 4), torch.randn(3, 6, 5)
    predictors = nn.ModuleList(BilinearSimilarity(5, 4) for _ in range(2))
    same = cpc_loss(z, c, predictors, negatives_from="same_sequence")[0]
    batch = cpc_loss(z, c, predictors, negatives_from="batch")[0]
    assert not torch.allclose(same, batch)
    assert torch.equal(cpc_loss(z, c, predictors)[0], same)
    monkeypatch.setattr(CPCSettings.__dataclass_fields__["negatives_from"], "default", "batch")
    assert torch.equal(cpc_loss(z, c, predictors)[0], batch)


def test_cpc_is_built_from_its_settings_or_keywords_not_both() -> None:
    from contrastkit.methods.cpc import CPCSettings

    settings = CPCSettings(context=7, steps_ahead=2)
    method = build_method("cpc", _tiny_cpc_encoder(), 8, settings=settings)
    assert method.settings is settings and method.context_net.hidden_size == 7 and len(method.predictors) == 2
    with pytest.raises(TypeError, match=r"CPC: give either `settings` or keyword settings \(\['context'\]\)"):
        CPC(_tiny_cpc_encoder(), 8, settings=settings, context=3)
    assert CPC(_tiny_cpc_encoder(), 8, crop=None).batch_spec.crop is None  # None stays a value: whole sequences


def test_cpcs_blockwise_rule_lives_with_cpc() -> None:
    import contrastkit.methods.registry as registry
    from contrastkit.methods.cpc import CPC_ENCODER_SETTINGS, CPCSettings, resolve_cpc

    with pytest.raises(SettingsError, match="`blockwise` true is ignored by negatives_from: same_sequence"):
        resolve_cpc(CPCSettings(blockwise=True))
    batch = CPCSettings(blockwise=True, negatives_from="batch")
    assert resolve_cpc(batch) is batch
    for name in ("cpc", "cpc_paper"):
        entry = registry.get_method(name)
        assert entry.resolve is resolve_cpc and entry.encoder_settings == CPC_ENCODER_SETTINGS
    assert not hasattr(registry, "_resolve_cpc") and not hasattr(registry, "_CPC_ENCODER_SETTINGS")
