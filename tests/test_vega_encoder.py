"""The vega_encoder fairseq model: registration, architectures and the forward contract of docs/ARCHITECTURE.md."""

import pytest
import torch
from fairseq import options, tasks
from fairseq.data import Dictionary
from fairseq.dataclass.utils import convert_namespace_to_omegaconf

import vega_toolkit  # noqa: F401


def build(tmp_path, *extra, arch="vega_tiny"):
    d = Dictionary()
    for w in "a b c d e f g h".split():
        d.add_symbol(w)
    d.save(str(tmp_path / "dict.txt"))
    args = options.parse_args_and_arch(
        options.get_training_parser(),
        [str(tmp_path), "--task", "masked_lm", "--criterion", "masked_lm", "--arch", arch, *extra],
    )
    cfg = convert_namespace_to_omegaconf(args)
    task = tasks.setup_task(cfg.task)
    torch.manual_seed(0)
    return task.build_model(cfg.model).eval(), task


TOKENS = torch.tensor([[0, 5, 6, 7, 8, 9, 2], [0, 10, 11, 2, 1, 1, 1]])


@pytest.mark.parametrize(
    "arch, sizes",
    [
        ("vega_tiny", (2, 128, 2, 512)),
        ("vega_small", (4, 256, 4, 1024)),
        ("vega_base", (12, 768, 12, 3072)),
        ("vega_large", (24, 1024, 16, 4096)),
        ("vega_v1_1_3b", (48, 1536, 24, 6144)),
    ],
)
def test_architectures_set_the_documented_sizes(tmp_path, arch, sizes):
    (tmp_path / "dict.txt").write_text("a 1\n")
    args = options.parse_args_and_arch(options.get_training_parser(), [str(tmp_path), "--arch", arch])
    m = convert_namespace_to_omegaconf(args).model
    assert (m.encoder_layers, m.encoder_embed_dim, m.encoder_attention_heads, m.encoder_ffn_embed_dim) == sizes
    assert m.layer_norm_eps == 1e-7 and m.position_buckets == 256 and m.attention_impl == "sdpa"


def test_forward_contract_shapes(tmp_path):
    model, task = build(tmp_path)
    vocab, hidden = len(task.source_dictionary), 128
    logits, extra = model(TOKENS)
    assert logits.shape == (2, 7, vocab)
    assert extra["padding_mask"].tolist()[1] == [False] * 4 + [True] * 3
    feats, extra = model(TOKENS, features_only=True, return_all_hiddens=True)
    assert feats.shape == (2, 7, hidden) and len(extra["inner_states"]) == 3  # embeddings + 2 layers
    masked = TOKENS.eq(6) | TOKENS.eq(10)
    assert model(TOKENS, masked_tokens=masked)[0].shape == (2, vocab)
    model.register_classification_head("nli", num_classes=3)
    assert model(TOKENS, classification_head_name="nli")[0].shape == (2, 3)
    model.register_token_head("rtd", num_classes=3)
    assert model(TOKENS, token_head_name="rtd")[0].shape == (2, 7, 3)
    assert model.max_positions() == 512
    assert model.encoder.embed_tokens.weight is model.encoder.lm_head.weight  # tied LM head


def test_one_shared_relative_table_with_layer_norm(tmp_path):
    model, _ = build(tmp_path)
    names = [n for n, _ in model.named_parameters() if "rel_" in n]
    assert names == ["encoder.rel_embeddings.weight", "encoder.rel_layer_norm.weight", "encoder.rel_layer_norm.bias"]
    assert model.encoder.rel_embeddings.weight.shape == (512, 128)  # 2 x 256 buckets


@pytest.mark.parametrize(
    "extra",
    [
        (),
        ("--conv-kernel-size", "3", "--conv-act", "gelu"),
        ("--separate-pos-proj",),
        ("--embedding-dim", "64", "--position-biased-input", "--type-vocab-size", "2"),
    ],
)
def test_sdpa_and_reference_models_agree_on_real_tokens(tmp_path, extra):
    model, _ = build(tmp_path, *extra)
    fast = model(TOKENS, features_only=True)[0]
    model.encoder.set_attention_impl("reference")
    ref = model(TOKENS, features_only=True)[0]
    keep = TOKENS.ne(1)
    assert (fast - ref)[keep].abs().max() <= 1e-5


def test_padding_does_not_change_real_token_states(tmp_path):
    model, _ = build(tmp_path, "--conv-kernel-size", "3")
    alone = model(TOKENS[1:, :4], features_only=True)[0]
    batched = model(TOKENS, features_only=True)[0][1:, :4]
    assert torch.allclose(alone, batched, atol=1e-5)


def test_embedding_hook_sees_the_embeddings_before_the_layer_norm(tmp_path):
    model, _ = build(tmp_path)
    seen = []

    def hook(e):
        seen.append(e)
        return torch.zeros_like(e)  # LayerNorm(0) = its bias for every token: states then ignore the words

    model(TOKENS[:1], features_only=True, embedding_hook=hook)
    assert torch.equal(seen[0], model.encoder.embed_tokens(TOKENS[:1]))
    other_words = TOKENS[:1].clone().fill_(5)
    assert torch.allclose(
        model(TOKENS[:1], features_only=True, embedding_hook=hook)[0],
        model(other_words, features_only=True, embedding_hook=hook)[0],
        atol=1e-6,
    )


def test_checkpoint_activations_give_the_same_gradients(tmp_path):
    grads = []
    for extra in ((), ("--checkpoint-activations",)):
        model, _ = build(tmp_path, *extra, "--dropout", "0", "--attention-dropout", "0")
        model.train()
        model(TOKENS)[0].float().pow(2).mean().backward()
        grads.append({n: p.grad for n, p in model.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys()
    assert all(torch.allclose(grads[0][n], grads[1][n], atol=1e-6) for n in grads[0])


def test_upgrade_drops_unwanted_heads_and_keeps_fresh_ones(tmp_path):
    model, _ = build(tmp_path)
    model.register_classification_head("old", num_classes=2)
    model.register_classification_head("same", num_classes=3)
    state = model.state_dict()
    fresh, _ = build(tmp_path)
    fresh.register_classification_head("same", num_classes=5)  # different shape: checkpoint head is dropped
    fresh.register_classification_head("new", num_classes=4)  # absent from the checkpoint: stays initialised
    new_weight = fresh.classification_heads["new"].out_proj.weight.clone()
    fresh.upgrade_state_dict_named(state, "")
    assert not any(k.startswith("classification_heads.old.") for k in state)
    assert state["classification_heads.same.out_proj.weight"].shape[0] == 5
    fresh.load_state_dict(state)
    assert torch.equal(fresh.classification_heads["new"].out_proj.weight, new_weight)


def test_load_checkpoint_heads_recreates_stored_heads(tmp_path):
    model, _ = build(tmp_path)
    model.register_classification_head("sts", num_classes=1, inner_dim=32)
    model.register_token_head("rtd", num_classes=3)
    state = model.state_dict()
    fresh, _ = build(tmp_path, "--load-checkpoint-heads")
    fresh.upgrade_state_dict_named(state, "")
    fresh.load_state_dict(state)
    assert fresh.classification_heads["sts"].dense.out_features == 32
    assert torch.equal(fresh(TOKENS, token_head_name="rtd")[0], model(TOKENS, token_head_name="rtd")[0])


def test_bf16_autocast_forward_backward_is_finite(tmp_path):
    model, _ = build(tmp_path)
    model.train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = model(TOKENS)[0]
    logits.float().logsumexp(-1).mean().backward()
    assert torch.isfinite(logits.float()).all()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_mean_pooling_head_reads_the_average_of_the_real_tokens_only(tmp_path):
    model, _ = build(tmp_path, "--classification-pooling", "mean")
    model.register_classification_head("h", num_classes=3)
    model.eval()  # the new head was created in training mode (dropout)
    head = model.classification_heads["h"]
    with torch.no_grad():
        logits, extra = model(TOKENS, classification_head_name="h")
        states, _ = model(TOKENS, features_only=True)
    real = ~TOKENS.eq(1)
    expected = [(states[i][real[i]]).mean(0) for i in range(len(TOKENS))]
    manual = head.out_proj(head.activation_fn(head.dense(torch.stack(expected))))
    assert torch.allclose(logits, manual, atol=1e-6)
    # pads do not matter: the padded row scores as it does alone
    with torch.no_grad():
        alone, _ = model(TOKENS[1:, :4], classification_head_name="h")
    assert torch.allclose(logits[1], alone[0], atol=1e-5)


def test_cls_pooling_head_reads_position_zero(tmp_path):
    model, _ = build(tmp_path)
    model.register_classification_head("h", num_classes=2)
    model.eval()
    head = model.classification_heads["h"]
    with torch.no_grad():
        logits, _ = model(TOKENS, classification_head_name="h")
        states, _ = model(TOKENS, features_only=True)
    assert torch.allclose(logits, head.out_proj(head.activation_fn(head.dense(states[:, 0]))), atol=1e-6)
