"""Hub interface of the vega_encoder, fairseq style (like RobertaModel.from_pretrained).

    from vega_toolkit import VegaModel
    m = VegaModel.from_pretrained("models/deberta-v3-base")                        # model.pt + dict.txt + spm.model
    m = VegaModel.from_pretrained("checkpoints", checkpoint_file="checkpoint_best.pt", data_name_or_path="data-bin")
    ids = m.encode("A sentence.", "Its pair.")        # <s> a </s> b </s>  (= [CLS] a [SEP] b [SEP])
    feats = m.extract_features(ids)                    # [1, T, H]; 2-D input padded with m.dictionary.pad() works
    m.register_classification_head("mnli", num_classes=3); m.predict("mnli", ids)

Loading goes through `load_model` (vega_toolkit/models/loading.py: fairseq's ``load_model_ensemble_and_task``, the
path GLUE prediction takes too), so the model is rebuilt by its own task exactly as in training. A fine-tuned `glue`
checkpoint as a GLUE classifier (label strings, dev scores): vega_toolkit/models/glue_predictor.py.
"""

import os

import torch
import torch.nn.functional as F
from fairseq.data import Dictionary, data_utils
from torch import nn

from vega_toolkit.data.vocabulary import VOCAB_ID_KEY, vocabulary_id
from vega_toolkit.models.loading import load_model
from vega_toolkit.models.model_folder import MODEL_FILE, SPM_FILE, write_model_checkpoint


class VegaHubInterface(nn.Module):
    def __init__(self, cfg, task, model, spm_path: str | None = None, checkpoint_path: str | None = None):
        super().__init__()
        self.cfg, self.task, self.model = cfg, task, model
        self.spm_path = spm_path
        # heads whose weights predict() may use: those loaded from the checkpoint with their stored size, and those
        # the caller registers itself (fairseq's upgrade silently puts fresh weights in place of any other)
        self.checkpoint_path = checkpoint_path
        self._checkpoint_state = None
        self._own_heads = set()
        self._text_encoder = None
        self.register_buffer("_float_tensor", torch.tensor([0], dtype=torch.float))  # tracks the device

    @classmethod
    def from_pretrained(cls, model_name_or_path, checkpoint_file="model.pt", data_name_or_path=None, **overrides):
        path = os.path.join(model_name_or_path, checkpoint_file)
        if not os.path.exists(path):
            raise FileNotFoundError(f"{path} not found (a model folder holds model.pt, dict.txt and spm.model)")
        data = data_name_or_path or model_name_or_path
        arg_overrides = {"data": data, "load_checkpoint_heads": True, **overrides}
        model, cfg, task = load_model(path, arg_overrides)
        spm_candidates = [os.path.join(d, SPM_FILE) for d in (model_name_or_path, data)]
        spm_path = next((p for p in spm_candidates if os.path.exists(p)), None)
        return cls(cfg, task, model, spm_path, path).eval()

    @property
    def device(self):
        return self._float_tensor.device

    @property
    def dictionary(self) -> Dictionary:
        return self.task.source_dictionary

    @property
    def text_encoder(self):
        """sentencepiece + dictionary lookup, the same encoder GLUE fine-tuning uses (control pieces -> <unk>)."""
        if self._text_encoder is None:
            if self.spm_path is None:
                raise FileNotFoundError(
                    f"no {SPM_FILE} next to the checkpoint or in data_name_or_path: "
                    f"encode/decode need the sentencepiece model"
                )
            from vega_toolkit.data.glue_binarize import TextEncoder

            self._text_encoder = TextEncoder(self.spm_path, self.dictionary)
        return self._text_encoder

    @property
    def sp(self):
        return self.text_encoder.sp

    def encode(self, sentence: str, *addl_sentences: str) -> torch.LongTensor:
        """<s> a </s> [b </s> ...]: sentencepiece pieces looked up in the fairseq dictionary (unknown -> <unk>)."""
        d = self.dictionary
        ids = [d.bos()]
        for segment in self.text_encoder.encode([sentence, *addl_sentences]):
            ids += segment.tolist() + [d.eos()]
        return torch.tensor(ids, dtype=torch.long)

    def decode(self, tokens: torch.LongTensor):
        """Inverse of ``encode``: one string, or a list of strings for a pair (split at </s>)."""
        assert tokens.dim() == 1, "decode expects a 1-D tensor"
        d, sentences, current = self.dictionary, [], []
        for t in tokens.tolist():
            if t == d.eos():
                sentences.append(current)
                current = []
            elif t not in (d.bos(), d.pad()):
                current.append(d[t])
        if current:
            sentences.append(current)
        texts = [self.sp.decode_pieces(pieces) for pieces in sentences]
        return texts[0] if len(texts) == 1 else texts

    def collate(self, token_lists: list[torch.LongTensor]) -> torch.LongTensor:
        """Right-pad a list of encoded sentences into a [B, T] batch."""
        return data_utils.collate_tokens(token_lists, pad_idx=self.dictionary.pad())

    def _batch(self, tokens: torch.LongTensor) -> torch.LongTensor:
        if tokens.dim() == 1:
            tokens = tokens.unsqueeze(0)
        if tokens.size(-1) > self.model.max_positions():
            raise ValueError(f"tokens exceeds maximum length: {tokens.size(-1)} > {self.model.max_positions()}")
        return tokens.to(device=self.device)

    def extract_features(self, tokens: torch.LongTensor, return_all_hiddens: bool = False):
        """Last-layer states [B, T, H] (or every layer's, embeddings first); differentiable in train mode."""
        features, extra = self.model(self._batch(tokens), features_only=True, return_all_hiddens=return_all_hiddens)
        return extra["inner_states"] if return_all_hiddens else features

    def register_classification_head(self, name: str, num_classes: int = None, inner_dim: int = None, **kwargs):
        self.model.register_classification_head(name, num_classes=num_classes, inner_dim=inner_dim, **kwargs)
        self._own_heads.add(name)

    def _check_head(self, head: str):
        """A head predict() uses must be the checkpoint's own (same size) or one the caller registered."""
        from vega_toolkit.io.checkpoints import peek_checkpoint
        from vega_toolkit.models.heads import HeadMismatchError, check_classification_head

        if head in self._own_heads:
            return
        if head not in self.model.classification_heads:
            raise HeadMismatchError(
                f"{self.checkpoint_path or 'model'}: no classification head '{head}' (it has: "
                f"{', '.join(self.model.classification_heads) or 'none'}); register one first"
            )
        if self.checkpoint_path is None:
            return
        if self._checkpoint_state is None:
            stored = peek_checkpoint(self.checkpoint_path).get("model") or {}
            self._checkpoint_state = {k: v for k, v in stored.items() if k.startswith("classification_heads.")}
        outputs = self.model.classification_heads[head].out_proj.out_features
        check_classification_head(
            self.checkpoint_path,
            self._checkpoint_state,
            head,
            outputs,
            f"the model built for its task ({self.task.__class__.__name__})",
        )

    def predict(self, head: str, tokens: torch.LongTensor, return_logits: bool = False):
        self._check_head(head)
        logits, _ = self.model(self._batch(tokens), classification_head_name=head)
        return logits if return_logits else F.log_softmax(logits.float(), dim=-1)


VegaModel = VegaHubInterface  # `from vega_toolkit import VegaModel; VegaModel.from_pretrained(DIR)`


def save_model_folder(
    out_dir: str,
    model_fields: dict,
    state: dict[str, torch.Tensor],
    symbols: list[str],
    spm_path: str | None = None,
    task: str = "masked_lm",
):
    """Write a model folder: model.pt (fairseq checkpoint of arch vega_encoder), dict.txt, spm.model.

    ``symbols`` are dict.txt's entries (the ids after fairseq's four specials); the task adds <mask> after them.
    The stored config is a complete fairseq config, so fairseq's own loaders rebuild the model.
    """
    from fairseq import options
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf
    from omegaconf import OmegaConf, open_dict

    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "dict.txt"), "w", encoding="utf-8") as f:
        f.writelines(f"{s} 1\n" for s in symbols)
    if spm_path is not None and os.path.abspath(spm_path) != os.path.abspath(os.path.join(out_dir, SPM_FILE)):
        with open(spm_path, "rb") as src, open(os.path.join(out_dir, SPM_FILE), "wb") as dst:
            dst.write(src.read())
    max_positions = model_fields.get("max_positions", 512)
    args = options.parse_args_and_arch(
        options.get_training_parser(),
        [out_dir, "--task", task, "--arch", "vega_encoder", "--tokens-per-sample", str(max_positions)],
    )
    cfg = convert_namespace_to_omegaconf(args)
    with open_dict(cfg):
        cfg.task.data = "."  # from_pretrained points it at the folder it loads from
        for k, v in model_fields.items():
            cfg.model[k] = v
    # fairseq's trainer stores the config as a plain container too (what its loader expects).
    container = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    write_model_checkpoint(
        os.path.join(out_dir, MODEL_FILE),
        container,
        state,
        criterion_name="MaskedLmLoss",
        task_state={VOCAB_ID_KEY: vocabulary_id(out_dir)},
    )
