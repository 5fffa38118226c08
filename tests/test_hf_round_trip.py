"""A model folder of the toolkit's own (vega-preprocess sentencepiece model and dict.txt) through Hugging Face:
`vega-convert to-hf` gives a folder whose HF tokenizer produces the ids VegaModel.encode produces and whose HF model
gives the same last hidden states; `from-hf` brings it back. A fine-tuned model goes over as
DebertaV2ForSequenceClassification with its GLUE task's label names and the same logits.

The pretrained folder is `vega-convert export --random-init` on the session's tiny data-bin: the same files a
pretrained export has (the weights' values do not matter for the conversion); its LayerNorms are perturbed so that
a swapped parameter cannot hide behind ones and zeros.
"""

import json
import os

import pytest
import torch

transformers = pytest.importorskip("transformers")

from vega_toolkit import VegaModel  # noqa: E402
from vega_toolkit.cli.convert import cli_main as vega_convert  # noqa: E402

SENTENCES = ["The cat sat on the mat.", "A big red dog ran fast under the blue tree!", "Quietly, the river went on."]


@pytest.fixture(scope="module")
def toolkit_model(tiny_data_bin, tmp_path_factory):
    from vega_toolkit.models.model_folder import export_random_init, write_model_checkpoint

    root = tmp_path_factory.mktemp("toolkit_model")
    export_random_init("vega_tiny", str(tiny_data_bin), str(root / "model"), seed=3)
    ckpt = torch.load(root / "model" / "model.pt", weights_only=False)
    gen = torch.Generator().manual_seed(0)
    for key, value in ckpt["model"].items():
        if "layer_norm" in key or key.endswith(".bias"):
            value.add_(torch.randn(value.shape, generator=gen) * 0.1)
    write_model_checkpoint(str(root / "model" / "model.pt"), ckpt["cfg"], ckpt["model"])
    vega_convert(["to-hf", str(root / "model"), str(root / "hf")])
    return root


def hf_batch(tokenizer, texts):
    return tokenizer(*texts, return_tensors="pt") if len(texts) == 2 else tokenizer(texts[0], return_tensors="pt")


@pytest.mark.parametrize("texts", [SENTENCES[:1], SENTENCES[1:3]], ids=["single", "pair"])
def test_hf_tokenizer_on_the_exported_folder_gives_the_ids_of_vegamodel_encode(toolkit_model, texts):
    vega = VegaModel.from_pretrained(str(toolkit_model / "model"))
    tokenizer = transformers.DebertaV2Tokenizer.from_pretrained(str(toolkit_model / "hf"))
    assert hf_batch(tokenizer, texts)["input_ids"][0].tolist() == vega.encode(*texts).tolist()
    auto = transformers.AutoTokenizer.from_pretrained(str(toolkit_model / "hf"))
    assert hf_batch(auto, texts)["input_ids"][0].tolist() == vega.encode(*texts).tolist()


@pytest.mark.parametrize("texts", [SENTENCES[:1], SENTENCES[1:3]], ids=["single", "pair"])
def test_hf_tokenizer_and_model_give_the_last_hidden_states_of_vegamodel(toolkit_model, texts):
    vega = VegaModel.from_pretrained(str(toolkit_model / "model"))
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(toolkit_model / "hf"))
    hf = transformers.AutoModel.from_pretrained(str(toolkit_model / "hf")).eval()
    with torch.no_grad():
        ours = vega.extract_features(vega.encode(*texts).unsqueeze(0))
        batch = hf_batch(tokenizer, texts)
        theirs = hf(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
    assert ours.shape == theirs.shape
    assert (ours - theirs).abs().max().item() <= 1e-4


def test_to_hf_then_from_hf_gives_back_the_same_model(toolkit_model, tmp_path):
    vega_convert(["from-hf", str(toolkit_model / "hf"), str(tmp_path / "back")])
    first = VegaModel.from_pretrained(str(toolkit_model / "model"))
    again = VegaModel.from_pretrained(str(tmp_path / "back"))
    for text in SENTENCES:
        tokens = first.encode(text)
        assert again.encode(text).tolist() == tokens.tolist()
        with torch.no_grad():
            assert torch.allclose(
                first.extract_features(tokens.unsqueeze(0)), again.extract_features(tokens.unsqueeze(0)), atol=1e-6
            )


@pytest.mark.slow
def test_fine_tuned_model_goes_to_hf_as_a_sequence_classifier_with_its_labels_and_logits(model_dir, tmp_path):
    vega_convert(["to-hf", model_dir, str(tmp_path / "hf")])
    config = json.loads((tmp_path / "hf" / "config.json").read_text())
    assert config["architectures"] == ["DebertaV2ForSequenceClassification"]
    assert config["id2label"] == {"0": "0", "1": "1"}  # SST-2's label strings, in the task table's order
    vega = VegaModel.from_pretrained(model_dir)
    head = next(iter(vega.model.classification_heads))
    hf = transformers.AutoModelForSequenceClassification.from_pretrained(str(tmp_path / "hf")).eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(tmp_path / "hf"))
    for text in SENTENCES:
        tokens = vega.encode(text)
        assert tokenizer(text)["input_ids"] == tokens.tolist()
        with torch.no_grad():
            ours, _ = vega.model(tokens.unsqueeze(0), features_only=True, classification_head_name=head)
            theirs = hf(input_ids=tokens.unsqueeze(0)).logits
        assert (ours - theirs).abs().max().item() <= 1e-4


@pytest.mark.slow
def test_a_head_hf_cannot_hold_is_refused_rather_than_dropped(model_dir, tmp_path):
    from vega_toolkit.errors import UserError
    from vega_toolkit.models.hf_conversion import convert_to_hf
    from vega_toolkit.models.model_folder import write_model_checkpoint

    ckpt = torch.load(os.path.join(model_dir, "model.pt"), weights_only=False)
    folder = tmp_path / "two_heads"
    folder.mkdir()
    for name in ("dict.txt", "spm.model"):
        (folder / name).write_bytes(open(os.path.join(model_dir, name), "rb").read())
    state = dict(ckpt["model"])
    for key in [k for k in state if k.startswith("classification_heads.")]:
        state[key.replace("classification_heads.", "classification_heads.second_")] = state[key].clone()
    write_model_checkpoint(str(folder / "model.pt"), ckpt["cfg"], state)
    with pytest.raises(UserError, match="2 classification heads"):
        convert_to_hf(str(folder), str(tmp_path / "hf"))
