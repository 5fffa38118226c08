"""DeBERTa-v2/v3 (Hugging Face) <-> vega model folder conversion: config, weights and vocabulary.

    vega-convert from-hf ~/hf/deberta-v3-base  models/deberta-v3-base     # config.json + weights + spm.model
    vega-convert to-hf   models/deberta-v3-base  /tmp/hf-again              # the reverse

A model folder holds model.pt ({"cfg", "model"}, a fairseq checkpoint of arch vega_encoder), dict.txt and spm.model.

Vocabulary. The fairseq Dictionary fixes <s>=0, <pad>=1, </s>=2, <unk>=3, then dict.txt's symbols, then <mask>
(added by the task). DeBERTa-v3's ids are the sentencepiece ids ([PAD]=0, [CLS]=1, [SEP]=2, [UNK]=3, pieces) and
[MASK] right after them (then unused rows up to vocab_size). ``hf_vocabulary`` names every HF id: the spm roles
pad/bos/eos/unk become <pad>/<s>/</s>/<unk>, [MASK] becomes <mask>, pieces keep their text (the dictionary symbols
are the sentencepiece pieces), rows without a piece become ``[unused<hf id>]``. dict.txt lists the non-special
names in HF order, so the permutation between the two id spaces is explicit (``fairseq_to_hf``) and the
embedding rows (and the LM bias) are permuted with it in both directions.
"""

import json
import logging
import os
import pickle
import re
import shutil

import torch

from vega_toolkit.errors import UserError

logger = logging.getLogger(__name__)

FAIRSEQ_SPECIALS = ["<s>", "<pad>", "</s>", "<unk>"]  # fairseq Dictionary ids 0..3
UNUSED = re.compile(r"^\[unused(\d+)\]$")
HF_ACT_TO_FAIRSEQ = {
    "gelu": "gelu",
    "gelu_new": "gelu_accurate",
    "gelu_fast": "gelu_fast",
    "relu": "relu",
    "tanh": "tanh",
    "linear": "linear",
    "swish": "swish",
    "silu": "swish",
}

# HF DebertaV2 parameter names (without the "deberta." prefix) -> vega names; {i} is the layer index.
PER_LAYER = {
    "attention.self.query_proj": "self_attn.query_proj",
    "attention.self.key_proj": "self_attn.key_proj",
    "attention.self.value_proj": "self_attn.value_proj",
    "attention.self.pos_key_proj": "self_attn.pos_key_proj",
    "attention.self.pos_query_proj": "self_attn.pos_query_proj",
    "attention.output.dense": "self_attn.out_proj",
    "attention.output.LayerNorm": "self_attn_layer_norm",
    "intermediate.dense": "fc1",
    "output.dense": "fc2",
    "output.LayerNorm": "final_layer_norm",
}
GLOBAL = {
    "embeddings.word_embeddings": "encoder.embeddings.embed_tokens",
    "embeddings.position_embeddings": "encoder.embeddings.embed_positions",
    "embeddings.token_type_embeddings": "encoder.embeddings.embed_token_types",
    "embeddings.embed_proj": "encoder.embeddings.embed_proj",
    "embeddings.LayerNorm": "encoder.embeddings.layer_norm",
    "encoder.rel_embeddings": "encoder.rel_embeddings",
    "encoder.LayerNorm": "encoder.rel_layer_norm",
    "encoder.conv.conv": "encoder.conv.conv",
    "encoder.conv.LayerNorm": "encoder.conv.layer_norm",
    # DebertaV2ForMaskedLM (legacy=True layout); the decoder weight is tied to the word embeddings.
    "cls.predictions.transform.dense": "encoder.lm_head.dense",
    "cls.predictions.transform.LayerNorm": "encoder.lm_head.layer_norm",
    "lm_predictions.lm_head.dense": "encoder.lm_head.dense",
    "lm_predictions.lm_head.LayerNorm": "encoder.lm_head.layer_norm",
}
VOCAB_ROWS = {"encoder.embeddings.embed_tokens.weight", "encoder.lm_head.bias"}


# ---------------------------------------------------------------------------------------------- configuration
def check_model_type(hf: dict):
    if hf.get("model_type", "deberta-v2") != "deberta-v2":
        raise ValueError(
            f"config.json: model_type {hf.get('model_type')!r} is not supported; vega-convert converts "
            f"model_type 'deberta-v2' only (the DeBERTa-v2 and DeBERTa-v3 checkpoints)"
        )


def vega_config_from_hf(hf: dict) -> dict:
    """VegaEncoderConfig fields from a DeBERTa-v2/v3 config.json (absent keys take HF's code defaults)."""
    check_model_type(hf)
    if not hf.get("relative_attention", False):
        raise ValueError("config.json: relative_attention=false models are not disentangled-attention models")
    act = hf.get("hidden_act", "gelu")
    if act not in HF_ACT_TO_FAIRSEQ:
        raise ValueError(f"config.json: hidden_act {act!r} has no fairseq equivalent")
    pos_att_type = hf.get("pos_att_type") or []
    if isinstance(pos_att_type, str):
        pos_att_type = pos_att_type.lower().split("|")
    hidden = hf["hidden_size"]
    return {
        "encoder_layers": hf["num_hidden_layers"],
        "encoder_embed_dim": hidden,
        "encoder_ffn_embed_dim": hf["intermediate_size"],
        "encoder_attention_heads": hf["num_attention_heads"],
        "attention_head_dim": hf.get("attention_head_size", hidden // hf["num_attention_heads"]),
        "embedding_dim": hf.get("embedding_size", hidden),
        "activation_fn": HF_ACT_TO_FAIRSEQ[act],
        "dropout": hf.get("hidden_dropout_prob", 0.1),
        "attention_dropout": hf.get("attention_probs_dropout_prob", 0.1),
        "layer_norm_eps": hf.get("layer_norm_eps", 1e-7),
        "max_positions": hf.get("max_position_embeddings", 512),
        "position_buckets": hf.get("position_buckets", -1),
        "max_relative_positions": hf.get("max_relative_positions", -1),
        "norm_rel_ebd": "layer_norm" if "layer_norm" in hf.get("norm_rel_ebd", "none") else "none",
        "pos_att_type": "|".join(t.strip() for t in pos_att_type if t.strip()),
        "separate_pos_proj": not hf.get("share_att_key", False),
        "position_biased_input": hf.get("position_biased_input", True),
        "type_vocab_size": hf.get("type_vocab_size", 0),
        "conv_kernel_size": hf.get("conv_kernel_size", 0),
        "conv_groups": hf.get("conv_groups", 1),
        "conv_act": HF_ACT_TO_FAIRSEQ[hf.get("conv_act", "tanh")],
    }


def hf_config_from_vega(m, vocab_size: int, pad_token_id: int) -> dict:
    """config.json of DebertaV2ForMaskedLM for a vega model config ``m``."""
    fairseq_to_hf_act = {v: k for k, v in HF_ACT_TO_FAIRSEQ.items() if k != "silu"}
    return {
        "model_type": "deberta-v2",
        "architectures": ["DebertaV2ForMaskedLM"],
        "vocab_size": vocab_size,
        "hidden_size": m.encoder_embed_dim,
        "num_hidden_layers": m.encoder_layers,
        "num_attention_heads": m.encoder_attention_heads,
        "attention_head_size": m.attention_head_dim or m.encoder_embed_dim // m.encoder_attention_heads,
        "intermediate_size": m.encoder_ffn_embed_dim,
        "embedding_size": m.embedding_dim or m.encoder_embed_dim,
        "hidden_act": fairseq_to_hf_act[str(m.activation_fn)],  # str(): fairseq ChoiceEnum -> plain str
        "hidden_dropout_prob": m.dropout,
        "attention_probs_dropout_prob": m.attention_dropout,
        "layer_norm_eps": m.layer_norm_eps,
        "max_position_embeddings": m.max_positions,
        "relative_attention": True,
        "position_buckets": m.position_buckets,
        "max_relative_positions": m.max_relative_positions,
        "norm_rel_ebd": str(m.norm_rel_ebd),
        "pos_att_type": [t for t in m.pos_att_type.split("|") if t],
        "share_att_key": not m.separate_pos_proj,
        "position_biased_input": m.position_biased_input,
        "type_vocab_size": m.type_vocab_size,
        "conv_kernel_size": m.conv_kernel_size,
        "conv_groups": m.conv_groups,
        "conv_act": fairseq_to_hf_act[str(m.conv_act)],
        "pad_token_id": pad_token_id,
        "initializer_range": 0.02,
        "legacy": True,
    }


# ---------------------------------------------------------------------------------------------- vocabulary
def hf_vocabulary(spm_path: str, vocab_size: int, mask_id: int = None) -> list[str]:
    """The name of every HF token id 0..vocab_size-1, in fairseq's terms (specials as <s>, <pad>, ...)."""
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=spm_path)
    roles = {sp.bos_id(): "<s>", sp.pad_id(): "<pad>", sp.eos_id(): "</s>", sp.unk_id(): "<unk>"}
    if any(i < 0 for i in (sp.bos_id(), sp.pad_id(), sp.eos_id(), sp.unk_id())):
        raise ValueError(
            f"{spm_path}: the sentencepiece model must define pad, bos ([CLS]), eos ([SEP]) and unk "
            f"ids (DeBERTa-v3 style); got pad={sp.pad_id()} bos={sp.bos_id()} eos={sp.eos_id()}"
        )
    mask_id = sp.get_piece_size() if mask_id is None else mask_id  # DebertaV2Tokenizer appends [MASK]
    names = []
    for i in range(vocab_size):
        if i in roles:
            names.append(roles[i])
        elif i == mask_id:
            names.append("<mask>")
        elif i < sp.get_piece_size():
            names.append(sp.id_to_piece(i))
        else:
            names.append(f"[unused{i}]")
    if "<mask>" not in names:
        raise ValueError(f"[MASK] id {mask_id} is outside the HF vocabulary of {vocab_size} rows")
    return names


def mask_id_from_tokenizer_files(hf_dir: str):
    """[MASK]'s id from added_tokens.json / tokenizer.json when present (else None: the spm size is used)."""
    added = os.path.join(hf_dir, "added_tokens.json")
    if os.path.exists(added):
        with open(added) as f:
            return json.load(f).get("[MASK]")
    tok = os.path.join(hf_dir, "tokenizer.json")
    if os.path.exists(tok):
        with open(tok) as f:
            for entry in json.load(f).get("added_tokens", []):
                if entry.get("content") == "[MASK]":
                    return entry["id"]
    return None


def fairseq_to_hf(names: list[str]) -> list[int]:
    """HF id of every fairseq id: the dictionary specials + dict.txt (non-special names in HF order) + <mask>."""
    index = {name: i for i, name in enumerate(names)}
    ordinary = [n for n in names if n not in FAIRSEQ_SPECIALS and n != "<mask>"]
    return [index[n] for n in FAIRSEQ_SPECIALS + ordinary + ["<mask>"]]


def hf_names_from_dictionary(symbols: list[str], spm_path: str) -> list[str]:
    """Inverse of the above for to-hf: the HF id of each fairseq symbol, following the same naming rules.

    Pieces keep their sentencepiece id, ``[unused<id>]`` its id, [MASK] goes right after the pieces; fairseq
    symbols the sentencepiece model does not know (e.g. fairseq-preprocess's madeupword padding) go at the end.
    Returns the HF vocabulary (names by HF id); sentencepiece pieces missing from the dictionary are <unk> rows.
    """
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=spm_path)
    roles = {
        "<s>": sp.bos_id(),
        "<pad>": sp.pad_id(),
        "</s>": sp.eos_id(),
        "<unk>": sp.unk_id(),
        "<mask>": sp.get_piece_size(),
    }
    hf_id, extra = {}, []
    for s in symbols:
        unused = UNUSED.match(s)
        if s in roles:
            hf_id[s] = roles[s]
        elif unused:
            hf_id[s] = int(unused.group(1))
        elif sp.piece_to_id(s) != sp.unk_id() or s == sp.id_to_piece(sp.unk_id()):
            hf_id[s] = sp.piece_to_id(s)
        else:
            extra.append(s)
    size = max([sp.get_piece_size() + 1] + [i + 1 for i in hf_id.values()])
    for s in extra:
        hf_id[s] = size
        size += 1
    names = ["<unk>"] * size  # rows no fairseq symbol owns are filled from the <unk> row
    for s, i in hf_id.items():
        names[i] = s
    return names


HF_SPECIALS = {"<s>": "[CLS]", "<pad>": "[PAD]", "</s>": "[SEP]", "<unk>": "[UNK]"}


def defines_deberta_specials(spm_path: str) -> bool:
    """Whether the sentencepiece model has pad, bos ([CLS]), eos ([SEP]) and unk ids, as DeBERTa-v3's has."""
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=spm_path)
    return min(sp.pad_id(), sp.bos_id(), sp.eos_id(), sp.unk_id()) >= 0


def write_dictionary_ordered_spm(spm_path: str, symbols: list[str], out_path: str) -> None:
    """A sentencepiece model for HF whose piece ids are the fairseq ids of `symbols` (the whole dictionary, its
    four specials first, as [CLS], [PAD], [SEP], [UNK]).

    The toolkit's own sentencepiece models (vega-preprocess) have no pad and keep <unk>, <s>, </s> at spm ids
    0..2, so HF's DebertaV2Tokenizer on them gives ids that are neither fairseq's nor inside the embedding. With the
    pieces laid out in dictionary order (same texts, scores and normalizer, so the same segmentation), the
    tokenizer's ids are the ones VegaModel.encode gives, and no permutation of embedding rows is needed. A
    dictionary symbol the model lacks (fairseq's madeupword padding) becomes an unused piece; [MASK] is appended by
    the tokenizer right after the pieces, as DeBERTa-v3 does."""
    from sentencepiece import sentencepiece_model_pb2 as pb

    model = pb.ModelProto()
    with open(spm_path, "rb") as f:
        model.ParseFromString(f.read())
    Piece = pb.ModelProto.SentencePiece
    kept_types = (Piece.NORMAL, Piece.USER_DEFINED, Piece.BYTE)
    by_text = {p.piece: p for p in model.pieces if p.type in kept_types}
    lowest = min((p.score for p in by_text.values()), default=0.0) - 100.0  # never preferred by the segmenter
    pieces = []
    for symbol in symbols:
        piece = Piece()
        if symbol in HF_SPECIALS:
            piece.piece, piece.score = HF_SPECIALS[symbol], 0.0
            piece.type = Piece.UNKNOWN if symbol == "<unk>" else Piece.CONTROL
        elif symbol in by_text:
            piece.CopyFrom(by_text[symbol])
        else:
            piece.piece, piece.score, piece.type = symbol, lowest, Piece.UNUSED
        pieces.append(piece)
    dropped = [t for t in by_text if t not in set(symbols)]
    if dropped:
        logger.warning(
            f"{spm_path}: {len(dropped)} piece(s) not in dict.txt left out of the HF tokenizer "
            f"(VegaModel.encode maps them to <unk>): {dropped[:5]}"
        )
    del model.pieces[:]
    model.pieces.extend(pieces)
    spec = model.trainer_spec
    spec.bos_id, spec.pad_id, spec.eos_id, spec.unk_id = (symbols.index(s) for s in HF_SPECIALS)
    spec.bos_piece, spec.pad_piece, spec.eos_piece, spec.unk_piece = HF_SPECIALS.values()
    with open(out_path, "wb") as f:
        f.write(model.SerializeToString())


# ---------------------------------------------------------------------------------------------- weights
def _rename(hf_key: str) -> str:
    key = hf_key[len("deberta.") :] if hf_key.startswith("deberta.") else hf_key
    layer = re.match(r"encoder\.layer\.(\d+)\.(.+)\.(weight|bias)$", key)
    if layer:
        i, module, param = layer.groups()
        if module in PER_LAYER:
            return f"encoder.layers.{i}.{PER_LAYER[module]}.{param}"
    if key in ("cls.predictions.bias", "lm_predictions.lm_head.bias"):
        return "encoder.lm_head.bias"
    module, _, param = key.rpartition(".")
    if module in GLOBAL:
        return f"{GLOBAL[module]}.{param}"
    return None


def vega_state_from_hf(hf_state: dict[str, torch.Tensor], fs_to_hf: list[int]) -> dict[str, torch.Tensor]:
    state, skipped = {}, []
    perm = torch.tensor(fs_to_hf)
    for k, v in hf_state.items():
        name = _rename(k)
        if name is None:
            skipped.append(k)
            continue
        state[name] = v.index_select(0, perm).clone() if name in VOCAB_ROWS else v.clone()
    real_skips = [
        k
        for k in skipped
        if not k.endswith("decoder.weight") and not k.endswith("decoder.bias") and "position_ids" not in k
    ]
    if real_skips:
        logger.warning(f"not converted (no vega equivalent): {real_skips}")
    embeddings = state["encoder.embeddings.embed_tokens.weight"]
    state["encoder.lm_head.weight"] = embeddings  # tied
    if "encoder.lm_head.dense.weight" not in state:  # a DebertaV2Model (no MLM head): DeBERTa's initialisation
        logger.info("no MLM head in the HF checkpoint: the LM head is freshly initialised")
        hidden, embed_dim = state["encoder.rel_embeddings.weight"].size(1), embeddings.size(1)
        state["encoder.lm_head.dense.weight"] = torch.randn(embed_dim, hidden) * 0.02
        state["encoder.lm_head.dense.bias"] = torch.zeros(embed_dim)
        state["encoder.lm_head.layer_norm.weight"] = torch.ones(embed_dim)
        state["encoder.lm_head.layer_norm.bias"] = torch.zeros(embed_dim)
        state["encoder.lm_head.bias"] = torch.zeros(embeddings.size(0))
    return state


def hf_state_from_vega(state: dict[str, torch.Tensor], hf_to_fs: list[int]) -> dict[str, torch.Tensor]:
    # to-hf writes DebertaV2ForMaskedLM's legacy layout (cls.predictions.*), HF's default (config.legacy = True).
    inverse = {vega: hf for hf, vega in GLOBAL.items() if not hf.startswith("lm_predictions.")}
    out, perm = {}, torch.tensor(hf_to_fs)
    for k, v in state.items():
        if k == "encoder.lm_head.weight" or k.startswith(("classification_heads.", "token_heads.")):
            continue  # tied / task heads have no DebertaV2ForMaskedLM equivalent
        if k in VOCAB_ROWS:
            v = v.index_select(0, perm)
        layer = re.match(r"encoder\.layers\.(\d+)\.(.+)\.(weight|bias)$", k)
        if layer:
            i, module, param = layer.groups()
            hf_module = {v2: k2 for k2, v2 in PER_LAYER.items()}[module]
            out[f"deberta.encoder.layer.{i}.{hf_module}.{param}"] = v.contiguous()
        elif k == "encoder.lm_head.bias":
            out["cls.predictions.bias"] = v.contiguous()
        else:
            module, _, param = k.rpartition(".")
            hf_module = inverse[module]
            prefix = "" if hf_module.startswith("cls.") else "deberta."
            out[f"{prefix}{hf_module}.{param}"] = v.contiguous()
    return out


def load_hf_weights(hf_dir: str) -> dict[str, torch.Tensor]:
    st = os.path.join(hf_dir, "model.safetensors")
    if os.path.exists(st):
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(st)
        except (SafetensorError, OSError, ValueError) as e:  # a 0-byte or cut download
            raise UserError(
                f"{st} is not a readable safetensors file ({e}): an empty or truncated download? Download it again"
            ) from e
    binary = os.path.join(hf_dir, "pytorch_model.bin")
    if os.path.exists(binary):
        try:
            return torch.load(binary, map_location="cpu", weights_only=True)
        except (RuntimeError, EOFError, OSError, pickle.UnpicklingError) as e:
            raise UserError(
                f"{binary} cannot be read ({type(e).__name__}: {e}): an empty or truncated download? Download it again"
            ) from e
    raise FileNotFoundError(f"{hf_dir}: neither model.safetensors nor pytorch_model.bin found")


# ---------------------------------------------------------------------------------------------- folders
def convert_from_hf(hf_dir: str, out_dir: str) -> str:
    """HF DeBERTa-v2/v3 folder -> vega model folder (model.pt, dict.txt, spm.model). Returns out_dir."""
    from vega_toolkit.models.hub_interface import save_model_folder

    def require(name):
        if not os.path.exists(os.path.join(hf_dir, name)):
            raise FileNotFoundError(
                f"{hf_dir}: {name} is missing (a DeBERTa-v2/v3 folder needs config.json, "
                f"model.safetensors or pytorch_model.bin, and spm.model)"
            )

    require("config.json")
    with open(os.path.join(hf_dir, "config.json")) as f:
        hf_cfg = json.load(f)
    try:  # the model type first: another model's folder (BERT, RoBERTa) fails on its missing files or keys otherwise
        check_model_type(hf_cfg)
    except ValueError as e:
        raise ValueError(f"{hf_dir}/{e}") from None
    require("spm.model")
    spm_path = os.path.join(hf_dir, "spm.model")
    names = hf_vocabulary(spm_path, hf_cfg["vocab_size"], mask_id_from_tokenizer_files(hf_dir))
    fs_to_hf = fairseq_to_hf(names)
    state = vega_state_from_hf(load_hf_weights(hf_dir), fs_to_hf)
    symbols = [names[i] for i in fs_to_hf[len(FAIRSEQ_SPECIALS) : -1]]
    save_model_folder(out_dir, vega_config_from_hf(hf_cfg), state, symbols, spm_path)
    return out_dir


def sequence_classification_head(hub) -> tuple[str, dict] | None:
    """(head name, HF config fields) of the one classification head of a fine-tuned model, or None without heads.
    A head HF's DebertaV2ForSequenceClassification cannot hold (several heads, mean pooling, a pooler of another
    width) is a UserError: dropping it silently would hand over an encoder where a classifier was asked for."""
    heads = dict(hub.model.classification_heads.items()) if hasattr(hub.model, "classification_heads") else {}
    if not heads:
        return None
    where = hub.checkpoint_path
    if len(heads) > 1:
        raise UserError(
            f"{where} has {len(heads)} classification heads ({', '.join(heads)}); an HF "
            f"DebertaV2ForSequenceClassification folder holds one"
        )
    name, head = next(iter(heads.items()))
    hidden = hub.model.cfg.encoder_embed_dim
    if head.pooling != "cls" or head.dense.out_features != hidden:
        raise UserError(
            f"{where}: classification head '{name}' ({head.pooling} pooling, pooler width "
            f"{head.dense.out_features}) has no DebertaV2ForSequenceClassification equivalent ([CLS] "
            f"pooling, pooler width {hidden})"
        )
    glue = getattr(hub.task, "glue", None)
    classes = head.out_proj.out_features
    if glue is not None and glue.is_regression:
        labels, problem = ["score"], "regression"
    else:
        labels = list(glue.labels) if glue is not None else [f"LABEL_{i}" for i in range(classes)]
        problem = "single_label_classification"
    fairseq_to_hf_act = {v: k for k, v in HF_ACT_TO_FAIRSEQ.items() if k != "silu"}
    return name, {
        "architectures": ["DebertaV2ForSequenceClassification"],
        "num_labels": classes,
        "id2label": dict(enumerate(labels)),
        "label2id": {label: i for i, label in enumerate(labels)},
        "problem_type": problem,
        "pooler_hidden_size": hidden,
        "pooler_dropout": 0.0,
        "pooler_hidden_act": fairseq_to_hf_act[str(hub.model.cfg.pooler_activation_fn)],
        "cls_dropout": hub.model.cfg.pooler_dropout,
    }


def convert_to_hf(model_dir: str, out_dir: str, checkpoint_file: str = "model.pt") -> str:
    """vega model folder -> HF folder (config.json, model.safetensors, spm.model, tokenizer_config.json):
    DebertaV2ForMaskedLM, or DebertaV2ForSequenceClassification (label names of its GLUE task) for a fine-tuned
    model. A sentencepiece model without DeBERTa's specials (the toolkit's own) is rewritten in dictionary order
    (write_dictionary_ordered_spm), so that HF's tokenizer gives the ids VegaModel.encode gives."""
    from safetensors.torch import save_file

    from vega_toolkit.models.hub_interface import VegaHubInterface

    hub = VegaHubInterface.from_pretrained(model_dir, checkpoint_file=checkpoint_file)
    spm_path = os.path.join(model_dir, "spm.model")
    if not os.path.isfile(spm_path):
        raise UserError(f"{model_dir}: no spm.model (a model folder holds model.pt, dict.txt and spm.model)")
    classifier = sequence_classification_head(hub)
    dictionary = hub.dictionary
    symbols = [dictionary[i] for i in range(len(dictionary))]
    os.makedirs(out_dir, exist_ok=True)
    if defines_deberta_specials(spm_path):  # a converted DeBERTa: its own ids, bit-identical round trip
        names = hf_names_from_dictionary(symbols, spm_path)
        shutil.copyfile(spm_path, os.path.join(out_dir, "spm.model"))
    else:
        write_dictionary_ordered_spm(spm_path, symbols, os.path.join(out_dir, "spm.model"))
        names = symbols + (["<mask>"] if "<mask>" not in symbols else [])
    hf_to_fs = [dictionary.index(n) for n in names]
    state = hf_state_from_vega(hub.model.state_dict(), hf_to_fs)
    config = hf_config_from_vega(hub.model.cfg, len(names), names.index("<pad>"))
    if classifier is not None:
        name, fields = classifier
        state = {k: v for k, v in state.items() if not k.startswith("cls.")}  # no LM head in a classifier
        head = hub.model.classification_heads[name]
        state.update(
            {
                "pooler.dense.weight": head.dense.weight,
                "pooler.dense.bias": head.dense.bias,
                "classifier.weight": head.out_proj.weight,
                "classifier.bias": head.out_proj.bias,
            }
        )
        state = {k: v.detach().contiguous() for k, v in state.items()}
        config.update(fields)
    save_file(state, os.path.join(out_dir, "model.safetensors"))
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    with open(os.path.join(out_dir, "tokenizer_config.json"), "w") as f:
        json.dump(
            {
                "tokenizer_class": "DebertaV2Tokenizer",
                "do_lower_case": False,
                "bos_token": "[CLS]",
                "eos_token": "[SEP]",
                "unk_token": "[UNK]",
                "sep_token": "[SEP]",
                "pad_token": "[PAD]",
                "cls_token": "[CLS]",
                "mask_token": "[MASK]",
            },
            f,
            indent=2,
        )
    return out_dir
