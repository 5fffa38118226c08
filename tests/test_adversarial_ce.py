"""SiFT (`adversarial_ce`): perturbation after normalisation, one ascent step on delta, losses and gradients."""

import pytest
import torch
import torch.nn.functional as F
from glue_helpers import build_glue, make_vocab_dir

from vega_toolkit.criterions.adversarial_ce import SiftPerturbation, sift_adversarial_loss, symmetric_kl


@pytest.fixture(scope="module")
def vocab_dir(tmp_path_factory):
    return make_vocab_dir(str(tmp_path_factory.mktemp("vocab")))


def _batch(task, split="valid", n=8):
    task.load_dataset(split)
    return task.datasets[split].collater([task.datasets[split][i] for i in range(n)])


def _build(vocab_dir, tmp_path, task="RTE", extra=()):
    torch.manual_seed(0)
    return build_glue(
        task,
        vocab_dir,
        str(tmp_path / "cache"),
        [
            "--criterion",
            "glue_prediction",
            "--dropout",
            "0",
            "--attention-dropout",
            "0",
            "--pooler-dropout",
            "0",
            *extra,
        ],
    )


def test_hook_normalises_each_token_then_adds_delta_to_the_detached_normalised_embeddings():
    hook = SiftPerturbation()
    e = torch.randn(2, 5, 16) * 7 + 3
    z = hook(e)
    assert torch.allclose(z.mean(-1), torch.zeros(2, 5), atol=1e-5)
    assert torch.allclose(z.var(-1, unbiased=False), torch.ones(2, 5), atol=1e-4)
    hook.delta = torch.full((2, 5, 16), 0.25)
    adv = hook(e * 100)  # the adversarial input ignores the new raw embeddings: it is z + delta
    assert torch.allclose(adv, z + 0.25)
    assert not adv.requires_grad or adv.grad_fn is not None


def test_perturbation_is_scale_invariant_because_it_is_applied_after_normalisation(vocab_dir, tmp_path):
    _, task, model, _ = _build(vocab_dir, tmp_path)
    model.eval()
    sample = _batch(task)
    seen = []

    def run(scale):
        with torch.no_grad():
            model.encoder.embed_tokens.weight.mul_(scale)
        hook = SiftPerturbation()
        model(
            **sample["net_input"],
            features_only=True,
            classification_head_name="sentence_classification_head",
            embedding_hook=hook,
        )
        hook.delta = torch.full_like(hook.z, 1e-2)
        recorder = lambda e: seen.append(hook(e)) or seen[-1]  # noqa: E731
        model(
            **sample["net_input"],
            features_only=True,
            classification_head_name="sentence_classification_head",
            embedding_hook=recorder,
        )

    run(1.0)
    run(10.0)  # 10x larger word embeddings: the normalised + perturbed input to the encoder is unchanged
    # equal up to the LayerNorm epsilon (1e-7 against a variance of ~4e-4 at N(0, 0.02) initialisation)
    assert torch.allclose(seen[0], seen[1], atol=2e-3)


def test_adversarial_loss_is_positive_and_encoder_gradients_are_finite(vocab_dir, tmp_path):
    _, task, model, criterion = _build(vocab_dir, tmp_path, extra=["--criterion", "adversarial_ce"])
    model.train()
    sample = _batch(task, "train")
    loss, sample_size, log = criterion(model, sample)
    assert log["adv_loss"] > 0
    loss.backward()
    grads = [p.grad for n, p in model.named_parameters() if n.startswith("encoder.") and p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    assert model.encoder.embed_tokens.weight.grad.abs().sum() > 0


def test_ascent_step_moves_delta_along_the_per_token_linf_normalised_gradient():
    torch.manual_seed(0)
    weight = torch.randn(16, 3)
    hook = SiftPerturbation()
    e = torch.randn(2, 4, 16)
    clean = (hook(e) @ weight).mean(1)
    deltas = []

    def forward():
        deltas.append(hook.delta.detach().clone())
        return (hook(e) @ weight).mean(1)

    sift_adversarial_loss(forward, hook, clean, regression=False, init_perturbation=1e-2, learning_rate=1e-4)
    d0, d1 = deltas
    assert d0.abs().max() <= 2e-2  # N(0, sigma^2) clipped to +-2 sigma
    step = (d1 - d0) / 1e-4
    # per token, the largest coordinate of the normalised step has magnitude ~1
    assert torch.allclose(step.abs().amax(-1), torch.ones(2, 4), atol=1e-2)
    assert hook.delta is None  # cleanup leaves adversarial mode


def test_non_finite_gradient_skips_the_ascent_step():
    hook = SiftPerturbation()
    e = torch.randn(1, 3, 8)
    clean = hook(e).sum(-1)
    deltas = []

    def forward():
        deltas.append(hook.delta.detach().clone())
        return hook(e).sum(-1) * float("inf") if len(deltas) == 1 else hook(e).sum(-1)

    sift_adversarial_loss(forward, hook, clean, regression=False, init_perturbation=1e-2, learning_rate=1e-4)
    assert torch.equal(deltas[0], deltas[1])


def test_symmetric_kl_is_zero_for_equal_logits_and_has_debertas_gradients():
    a = torch.randn(4, 3, requires_grad=True)
    t = torch.randn(4, 3, requires_grad=True)
    assert symmetric_kl(a.detach(), a.detach()).abs().max() < 1e-6
    symmetric_kl(a, t).sum().backward()
    p_a, p_t = F.softmax(a, -1).detach(), F.softmax(t, -1).detach()
    assert torch.allclose(a.grad, p_a - p_t, atol=1e-6)  # microsoft/DeBERTa DeBERTa/apps/run.py symmetric-kl
    assert torch.allclose(t.grad, p_t - p_a, atol=1e-6)


@pytest.mark.slow
def test_weight_zero_equals_plain_cross_entropy(vocab_dir, tmp_path):
    cfg, task, model, adv = _build(vocab_dir, tmp_path, extra=["--criterion", "adversarial_ce", "--adv-lambda", "0"])
    _, _, _, plain = _build(vocab_dir, tmp_path, extra=["--criterion", "sentence_prediction"])
    model.train()
    sample = _batch(task, "train")
    loss_adv, n_adv, _ = adv(model, sample)
    loss_plain, n_plain, _ = plain(model, sample)
    logits, _ = model(
        **sample["net_input"], features_only=True, classification_head_name="sentence_classification_head"
    )
    expected = F.cross_entropy(logits.float(), sample["target"], reduction="sum")
    assert n_adv == n_plain
    assert torch.equal(loss_adv, loss_plain) and torch.allclose(loss_adv, expected, atol=1e-5)


def test_regression_uses_mse_and_works_for_stsb(vocab_dir, tmp_path):
    _, task, model, criterion = _build(
        vocab_dir, tmp_path, task="STS-B", extra=["--criterion", "adversarial_ce", "--regression-target"]
    )
    model.train()
    loss, _, log = criterion(model, _batch(task, "train"))
    assert torch.isfinite(loss) and log["adv_loss"] >= 0
    loss.backward()


@pytest.mark.parametrize("task", ["CoLA", "SST-2", "MRPC", "QQP", "MNLI", "QNLI", "WNLI"])
def test_sift_runs_on_every_classification_task(vocab_dir, tmp_path, task):
    _, glue, model, criterion = _build(vocab_dir, tmp_path, task=task, extra=["--criterion", "adversarial_ce"])
    model.train()
    loss, _, log = criterion(model, _batch(glue, "train", n=4))
    assert torch.isfinite(loss) and log["adv_loss"] > 0
