"""VegaModel.from_pretrained on a model folder: encode/decode, extract_features, heads, device-free reload."""

import random

import pytest
import torch

spm = pytest.importorskip("sentencepiece")

from vega_toolkit import VegaModel  # noqa: E402
from vega_toolkit.models.hub_interface import save_model_folder  # noqa: E402

WORDS = "alpha beta gamma delta river stone cloud light dark north south east west".split()


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("hub")
    rng = random.Random(1)
    (root / "corpus.txt").write_text("\n".join(" ".join(rng.choice(WORDS) for _ in range(8)) for _ in range(200)))
    spm.SentencePieceTrainer.train(
        input=str(root / "corpus.txt"),
        model_prefix=str(root / "spm"),
        vocab_size=40,
        hard_vocab_limit=False,
        minloglevel=2,
    )
    sp = spm.SentencePieceProcessor(model_file=str(root / "spm.model"))
    symbols = [sp.id_to_piece(i) for i in range(sp.get_piece_size()) if not sp.is_control(i) and not sp.is_unknown(i)]
    fields = {"encoder_layers": 2, "encoder_embed_dim": 32, "encoder_attention_heads": 2, "encoder_ffn_embed_dim": 64}
    # A fresh model of that config supplies the weights (random init, saved the way the converter saves).
    from fairseq.data import Dictionary

    from vega_toolkit.models.vega_encoder import VegaEncoder, VegaEncoderConfig, VegaEncoderModel

    d = Dictionary()
    for s in symbols:
        d.add_symbol(s)
    d.add_symbol("<mask>")
    cfg = VegaEncoderConfig(**fields)
    torch.manual_seed(0)
    model = VegaEncoderModel(cfg, VegaEncoder(cfg, d))
    save_model_folder(str(root / "model"), fields, model.state_dict(), symbols, str(root / "spm.model"))
    return root / "model", model


def test_from_pretrained_restores_the_saved_weights(folder):
    path, model = folder
    hub = VegaModel.from_pretrained(str(path))
    saved, loaded = model.state_dict(), hub.model.state_dict()
    assert saved.keys() == loaded.keys() and all(torch.equal(saved[k], loaded[k]) for k in saved)
    assert not hub.model.training


def test_encode_builds_cls_a_sep_b_sep_and_decode_inverts_it(folder):
    hub = VegaModel.from_pretrained(str(folder[0]))
    d = hub.dictionary
    ids = hub.encode("alpha river", "north light")
    assert ids.dtype == torch.long and ids[0] == d.bos() and ids[-1] == d.eos()
    assert (ids == d.eos()).sum() == 2 and not (ids == d.unk()).any()
    assert hub.decode(ids) == ["alpha river", "north light"]
    assert hub.decode(hub.encode("stone cloud")) == "stone cloud"


def test_extract_features_for_1d_and_padded_2d_input(folder):
    hub = VegaModel.from_pretrained(str(folder[0]))
    a, b = hub.encode("alpha beta gamma delta"), hub.encode("dark")
    single = hub.extract_features(a)
    batch = hub.extract_features(hub.collate([a, b]))
    assert single.shape == (1, len(a), 32) and batch.shape == (2, len(a), 32)
    assert torch.allclose(batch[1, : len(b)], hub.extract_features(b)[0], atol=1e-5)


def test_extract_features_is_differentiable_in_train_mode(folder):
    hub = VegaModel.from_pretrained(str(folder[0]))
    hub.train()
    hub.extract_features(hub.encode("east west")).sum().backward()
    assert hub.model.encoder.embed_tokens.weight.grad is not None


def test_predict_with_a_registered_head_gives_log_probabilities(folder):
    hub = VegaModel.from_pretrained(str(folder[0]))
    hub.register_classification_head("pair", num_classes=3)
    out = hub.predict("pair", hub.encode("alpha", "beta"))
    assert out.shape == (1, 3) and torch.allclose(out.exp().sum(), torch.tensor(1.0))


def test_too_long_input_is_rejected_with_the_limit(folder):
    hub = VegaModel.from_pretrained(str(folder[0]))
    with pytest.raises(ValueError, match="512"):
        hub.extract_features(torch.full((600,), 5, dtype=torch.long))


def test_missing_checkpoint_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="model.pt"):
        VegaModel.from_pretrained(str(tmp_path))
