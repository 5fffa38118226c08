"""A random HF DebertaV2Model converted with `vega-convert from-hf` gives the same hidden states through VegaModel.

No network: the HF model is built from a v3-style config, its spm.model is trained here on generated sentences.
"""

import json
import random

import pytest
import torch

transformers = pytest.importorskip("transformers")
spm = pytest.importorskip("sentencepiece")

from vega_toolkit import VegaModel  # noqa: E402
from vega_toolkit.cli.convert import cli_main as vega_convert  # noqa: E402
from vega_toolkit.models.hf_conversion import load_hf_weights  # noqa: E402

WORDS = (
    "the a cat dog sat on mat ran fast slow big small red blue tree house river stone bird sang loud quiet "
    "morning night under over near far walked jumped"
).split()
SENTENCES = [
    "The cat sat on the mat.",
    "A big red dog ran fast under the blue tree!",
    "Birds sang loud in the morning near the river.",
    "Small stone.",
]


def train_spm(folder):
    rng = random.Random(0)
    corpus = folder / "corpus.txt"
    lines = [
        " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 12))).capitalize() + rng.choice(".!?")
        for _ in range(300)
    ]
    corpus.write_text("\n".join(lines))
    # DeBERTa-v3's sentencepiece layout: [PAD]=0, [CLS]=1, [SEP]=2, [UNK]=3, then the pieces.
    spm.SentencePieceTrainer.train(
        input=str(corpus),
        model_prefix=str(folder / "spm"),
        vocab_size=60,
        hard_vocab_limit=False,
        model_type="unigram",
        pad_id=0,
        bos_id=1,
        eos_id=2,
        unk_id=3,
        pad_piece="[PAD]",
        bos_piece="[CLS]",
        eos_piece="[SEP]",
        unk_piece="[UNK]",
        minloglevel=2,
    )
    return folder / "spm.model"


def random_hf_model(spm_size, **overrides):
    config = transformers.DebertaV2Config(
        vocab_size=spm_size + 8,  # [MASK] = spm_size, then unused rows, like the 128100-row v3 vocabulary
        hidden_size=64,
        num_hidden_layers=3,
        num_attention_heads=4,
        intermediate_size=128,
        max_position_embeddings=512,
        relative_attention=True,
        position_buckets=256,
        norm_rel_ebd="layer_norm",
        share_att_key=True,
        pos_att_type=["p2c", "c2p"],
        position_biased_input=False,
        type_vocab_size=0,
        layer_norm_eps=1e-7,
        max_relative_positions=-1,
        hidden_act="gelu",
        pad_token_id=0,
        **overrides,
    )
    torch.manual_seed(0)
    model = transformers.DebertaV2Model(config).eval()
    with torch.no_grad():  # random LayerNorm affine weights (fresh ones are exactly 1 / 0 and would hide swaps)
        for module in model.modules():
            if isinstance(module, torch.nn.LayerNorm):
                module.weight.uniform_(0.5, 1.5)
                module.bias.normal_(0.0, 0.1)
            if isinstance(module, torch.nn.Linear) and module.bias is not None:
                module.bias.normal_(0.0, 0.02)
    return model


def build_converted(tmp_path_factory, name, **overrides):
    root = tmp_path_factory.mktemp(name)
    spm_path = train_spm(root)
    size = spm.SentencePieceProcessor(model_file=str(spm_path)).get_piece_size()
    hf = random_hf_model(size, **overrides)
    hf_dir = root / "hf"
    hf.save_pretrained(hf_dir)
    (hf_dir / "spm.model").write_bytes(spm_path.read_bytes())
    vega_convert(["from-hf", str(hf_dir), str(root / "vega")])
    return hf, hf_dir, root, VegaModel.from_pretrained(str(root / "vega"))


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    return build_converted(tmp_path_factory, "v3")


@pytest.fixture(scope="module")
def converted_conv(tmp_path_factory):  # DeBERTa-v2-xlarge/xxlarge style: conv layer after layer 0
    return build_converted(tmp_path_factory, "v2conv", conv_kernel_size=3, conv_act="gelu")


def hf_ids(vega, hf_dir, tokens):
    """Map fairseq ids to HF ids through the vocabulary names (tokenizer pieces and specials)."""
    sp = spm.SentencePieceProcessor(model_file=str(hf_dir / "spm.model"))
    specials = {
        "<s>": sp.bos_id(),
        "</s>": sp.eos_id(),
        "<pad>": sp.pad_id(),
        "<unk>": sp.unk_id(),
        "<mask>": sp.get_piece_size(),
    }
    d = vega.dictionary
    return torch.tensor([[specials.get(d[t], sp.piece_to_id(d[t])) for t in row] for row in tokens.tolist()])


def assert_same_states(hf, hf_dir, vega, tokens):
    pad = tokens.eq(vega.dictionary.pad())
    with torch.no_grad():
        ours = vega.extract_features(tokens)
        theirs = hf(input_ids=hf_ids(vega, hf_dir, tokens), attention_mask=(~pad).long()).last_hidden_state
    assert ours.shape == theirs.shape
    assert (ours - theirs)[~pad].abs().max().item() <= 1e-4


@pytest.mark.parametrize("impl", ["sdpa", "reference"])
def test_single_sentence_matches_hf(converted, impl):
    hf, hf_dir, _, vega = converted
    vega.model.encoder.set_attention_impl(impl)
    for sentence in SENTENCES:
        assert_same_states(hf, hf_dir, vega, vega.encode(sentence).unsqueeze(0))


def test_sentence_pair_matches_hf(converted):
    hf, hf_dir, _, vega = converted
    assert_same_states(hf, hf_dir, vega, vega.encode(SENTENCES[0], SENTENCES[1]).unsqueeze(0))


def test_padded_batch_matches_hf_on_real_tokens(converted):
    hf, hf_dir, _, vega = converted
    batch = vega.collate([vega.encode(s) for s in SENTENCES] + [vega.encode(SENTENCES[2], SENTENCES[3])])
    assert batch.eq(vega.dictionary.pad()).any()
    assert_same_states(hf, hf_dir, vega, batch)


def test_long_input_beyond_the_bucket_identity_range_matches_hf(converted):
    hf, hf_dir, _, vega = converted
    sentence = " ".join(SENTENCES * 12)
    tokens = vega.encode(sentence)[:400].unsqueeze(0)  # distances up to 399: log buckets beyond 128
    assert_same_states(hf, hf_dir, vega, tokens)


def test_encode_agrees_with_the_hf_tokenizer(converted):
    hf, hf_dir, _, vega = converted
    tokenizer = transformers.DebertaV2Tokenizer.from_pretrained(str(hf_dir))
    for a, b in [(SENTENCES[0], None), (SENTENCES[1], SENTENCES[2])]:
        expected = tokenizer(a, b)["input_ids"] if b else tokenizer(a)["input_ids"]
        ours = vega.encode(a, b) if b else vega.encode(a)
        assert hf_ids(vega, hf_dir, ours.unsqueeze(0))[0].tolist() == expected


def test_conv_layer_model_matches_hf(converted_conv):
    hf, hf_dir, _, vega = converted_conv
    batch = vega.collate([vega.encode(s) for s in SENTENCES])
    assert_same_states(hf, hf_dir, vega, batch)


def test_to_hf_then_from_hf_round_trip_is_exact(converted, tmp_path):
    hf, hf_dir, root, vega = converted
    vega_convert(["to-hf", str(root / "vega"), str(tmp_path / "hf2")])
    original, exported = load_hf_weights(str(hf_dir)), load_hf_weights(str(tmp_path / "hf2"))
    for key, value in original.items():  # every DebertaV2Model weight comes back bit-identical, vocab order too
        assert torch.equal(exported["deberta." + key if not key.startswith("deberta.") else key], value), key
    vega_convert(["from-hf", str(tmp_path / "hf2"), str(tmp_path / "vega2")])
    assert (tmp_path / "vega2" / "dict.txt").read_text() == (root / "vega" / "dict.txt").read_text()
    again = VegaModel.from_pretrained(str(tmp_path / "vega2"))
    first, second = vega.model.state_dict(), again.model.state_dict()
    assert first.keys() == second.keys()
    assert all(torch.equal(first[k], second[k]) for k in first)
    config = json.loads((tmp_path / "hf2" / "config.json").read_text())
    reloaded = transformers.DebertaV2Model.from_pretrained(str(tmp_path / "hf2")).eval()
    assert config["vocab_size"] == hf.config.vocab_size
    tokens = vega.encode(SENTENCES[1]).unsqueeze(0)
    assert_same_states(reloaded, hf_dir, vega, tokens)


@pytest.mark.slow
def test_exported_rtd_electra_discriminator_converts_to_hf_with_the_same_states(tiny_data_bin, tmp_path):
    """A 3-update rtd_electra (GDES) pretraining, `vega-convert export` (the discriminator, E_G + E_delta merged),
    then `to-hf`: transformers loads it and gives the exported model's hidden states."""
    from glue_helpers import vega_train

    save = tmp_path / "electra"
    proc = vega_train(
        [
            str(tiny_data_bin),
            "--task",
            "denoising_pretrain",
            "--criterion",
            "rtd_electra",
            "--embedding-sharing",
            "gdes",
            "--arch",
            "vega_tiny",
            "--tokens-per-sample",
            "64",
            "--batch-size",
            "8",
            "--optimizer",
            "adam",
            "--lr",
            "1e-2",
            "--max-update",
            "3",
            "--cpu",
            "--num-workers",
            "0",
            "--disable-validation",
            "--save-dir",
            str(save),
        ]
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    vega_convert(["export", str(save / "checkpoint_last.pt"), "--data-bin", str(tiny_data_bin), str(tmp_path / "vega")])
    vega_convert(["to-hf", str(tmp_path / "vega"), str(tmp_path / "hf")])
    vega = VegaModel.from_pretrained(str(tmp_path / "vega"))
    delta = torch.load(save / "checkpoint_last.pt", weights_only=False)["criterion"]["generator.embedding_delta"]
    assert torch.count_nonzero(delta) > 0  # the merged embedding differs from the generator's alone
    hf = transformers.DebertaV2Model.from_pretrained(str(tmp_path / "hf")).eval()
    batch = vega.collate([vega.encode(s) for s in ("the cat sat on the mat", "a dog ran", "it rained")])
    # to-hf writes a toolkit vocabulary in dictionary order: HF's ids are ours (tests/test_hf_round_trip.py)
    pad = batch.eq(vega.dictionary.pad())
    with torch.no_grad():
        ours = vega.extract_features(batch)
        theirs = hf(input_ids=batch, attention_mask=(~pad).long()).last_hidden_state
    assert pad.any() and (ours - theirs)[~pad].abs().max().item() <= 1e-4


def test_missing_spm_model_is_reported_with_the_folder(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(SystemExit, match=f"{tmp_path}: spm.model is missing"):  # a message, not a traceback
        vega_convert(["from-hf", str(tmp_path), str(tmp_path / "out")])


@pytest.mark.slow
@pytest.mark.parametrize("with_spm", [False, True])
def test_another_model_type_is_refused_first_naming_the_supported_one(tmp_path, with_spm):
    from glue_helpers import vega_cli
    from transformers import BertConfig, BertModel

    hf_dir = tmp_path / "bert"
    BertModel(
        BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32)
    ).save_pretrained(hf_dir)
    if with_spm:  # past the missing-file check, the old code died on a KeyError of the weight names
        (hf_dir / "spm.model").write_bytes(b"not read")
    r = vega_cli("convert", ["from-hf", str(hf_dir), str(tmp_path / "out")])
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert (
        f"{hf_dir}/config.json: model_type 'bert' is not supported; vega-convert converts model_type "
        f"'deberta-v2' only" in r.stderr
    )
