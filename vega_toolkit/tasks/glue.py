"""`glue`: fine-tune a vega_encoder on one GLUE task straight from the official TSV files.

    vega-train glue_data/RTE --task glue --glue-task RTE --vocab-dir vega-small/ \
        --finetune-from-model mnli-out/checkpoint_best.pt --arch vega_small \
        --criterion glue_prediction --classification-head-name rte_head \
        --best-checkpoint-metric accuracy --maximize-best-checkpoint-metric ...

Data: `DATA` is the task's folder of the GLUE release (or the glue_data/ root); `--vocab-dir` is the model folder
whose spm.model + dict.txt encode the text ([CLS] a [SEP] b [SEP], longest-first truncation to --max-positions).
Encoded ids are cached once per file/tokenizer (vega_toolkit/data/glue_binarize.py). Split names follow fairseq:
`train`, `valid`, `test`; MNLI has `valid` = dev_matched, `valid1` = dev_mismatched (`--valid-subset valid,valid1`),
`test`/`test1` = test_matched/test_mismatched. Labels, number of classes and regression come from the task table
(vega_toolkit/data/glue_tasks.py); STS-B regresses the raw 0-5 score and needs `--regression-target`.

Intermediate-task start (RTE/STS-B/MRPC from MNLI): `--finetune-from-model MNLI_DIR/checkpoint_best.pt` with a
task-specific `--classification-head-name`; the model's state-dict upgrade drops the checkpoint's MNLI head and keeps
the fresh one. fairseq only reads --finetune-from-model when SAVE_DIR has no checkpoint_last.pt, so a requeued job
resumes its own checkpoint instead of restarting from MNLI.
"""

import logging
import os
from dataclasses import dataclass, field

import numpy as np
import torch
from fairseq.data import (
    Dictionary,
    IdDataset,
    ListDataset,
    NestedDictionaryDataset,
    NumelDataset,
    NumSamplesDataset,
    RawLabelDataset,
    RightPadDataset,
    SortDataset,
    data_utils,
)
from fairseq.tasks import register_task
from fairseq.tasks.sentence_prediction import SentencePredictionConfig, SentencePredictionTask
from omegaconf import MISSING, open_dict

from vega_toolkit.data.glue_binarize import TextEncoder, load_encoded_split
from vega_toolkit.data.glue_readers import glue_split_path, read_glue_file
from vega_toolkit.data.glue_tasks import GLUE_TASK_NAMES, get_glue_task
from vega_toolkit.data.vocabulary import RecordsVocabulary, check_embedding_rows
from vega_toolkit.errors import UserError

logger = logging.getLogger(__name__)


@dataclass
class GlueConfig(SentencePredictionConfig):
    glue_task: str = field(default=MISSING, metadata={"help": f"GLUE task name: {', '.join(GLUE_TASK_NAMES)}"})
    vocab_dir: str = field(
        default=MISSING, metadata={"help": "model folder holding spm.model and dict.txt (the pretrained model's)"}
    )
    max_seq_len: int = field(
        default=0,
        metadata={
            "help": "truncate examples to this many tokens, specials included (DeBERTa's "
            "max_seq_len); 0 = --max-positions. Keeps the model's --max-positions (and so "
            "its relative-position bucketing) as pretrained"
        },
    )
    glue_cache_dir: str = field(
        default="",
        metadata={
            "help": "where encoded splits are cached (default $VEGA_CACHE_DIR/glue or ~/.cache/vega_toolkit/glue)"
        },
    )


def load_vega_dictionary(vocab_dir: str) -> Dictionary:
    """The model folder's dictionary, loaded exactly as for pretraining (no <mask> symbol is appended)."""
    path = os.path.join(vocab_dir, "dict.txt")
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"--vocab-dir {vocab_dir}: no dict.txt (expected a model folder: model.pt, dict.txt, spm.model)"
        )
    return Dictionary.load(path)


def label_dictionary_for(glue_task) -> Dictionary:
    """Labels in task-table order, so class i is `glue_task.labels[i]` (fairseq's criterion decodes through it)."""
    labels = Dictionary()
    for label in glue_task.labels:
        labels.add_symbol(label)
    return labels


@register_task("glue", dataclass=GlueConfig)
class GlueTask(RecordsVocabulary, SentencePredictionTask):
    def __init__(self, cfg: GlueConfig, data_dictionary, label_dictionary, encoder: TextEncoder):
        super().__init__(cfg, data_dictionary, label_dictionary)
        self.glue = get_glue_task(cfg.glue_task)
        self.encoder = encoder
        self.record_vocabulary(cfg.vocab_dir, "--vocab-dir")

    @classmethod
    def setup_task(cls, cfg: GlueConfig, **kwargs):
        glue = get_glue_task(cfg.glue_task)
        if glue.predicted_by:
            raise UserError(
                f"--glue-task {glue.name} has no training data; it is predicted by the "
                f"{glue.predicted_by} model (vega-generate)"
            )
        if bool(cfg.regression_target) != glue.is_regression:
            raise UserError(
                f"--glue-task {glue.name} is a "
                + (
                    "regression task: pass --regression-target"
                    if glue.is_regression
                    else "classification task: drop --regression-target"
                )
            )
        if cfg.num_classes not in (-1, glue.num_classes):
            raise UserError(
                f"--num-classes {cfg.num_classes} contradicts --glue-task {glue.name} "
                f"({glue.num_classes}); leave it unset"
            )
        with open_dict(cfg):
            cfg.num_classes = glue.num_classes
        dictionary = load_vega_dictionary(cfg.vocab_dir)
        encoder = TextEncoder.from_model_dir(cfg.vocab_dir, dictionary)
        logger.info(f"GLUE {glue.name}: {glue.num_classes} output(s), dictionary {len(dictionary)} types")
        return cls(cfg, dictionary, label_dictionary_for(glue) if not glue.is_regression else dictionary, encoder)

    @property
    def max_length(self) -> int:
        """Tokens per example after truncation ([CLS] and [SEP]s included)."""
        return min(self.cfg.max_seq_len or self.cfg.max_positions, self.cfg.max_positions)

    def encoded_split(self, split: str):
        """The cached encoding of fairseq split `split` (train, valid, valid1, test, test1)."""
        name = self.glue.split_name(split)
        path = glue_split_path(self.cfg.data, self.glue, name)
        return load_encoded_split(path, self.glue, name, self.encoder, self.cfg.glue_cache_dir or None)

    def label_ids(self, labels):
        if self.glue.is_regression:
            return [float(x) for x in labels]
        index = {label: i for i, label in enumerate(self.glue.labels)}
        return [index[x] for x in labels]

    def check_test_splits(self):
        """Read the task's test files now: a broken one (e.g. header only) should stop training at its start, not
        fail vega-generate after the whole run. A missing one is only a warning (dev-only experiments need none)."""
        for split in self.glue.submission:
            path = glue_split_path(self.cfg.data, self.glue, split)
            if os.path.isfile(path):
                read_glue_file(path, self.glue, split)
            else:
                logger.warning(f"{path}: no {self.glue.name} {split} file; vega-generate will need it")

    def load_dataset(self, split, combine=False, **kwargs):
        if split == "train":
            self.check_test_splits()
        encoded = self.encoded_split(split)
        bos, eos, max_pos = self.encoder.bos, self.encoder.eos, self.max_length
        tokens = [encoded.tokens(i, bos, eos, max_pos) for i in range(len(encoded))]
        sizes = np.asarray([len(t) for t in tokens], dtype=np.int64)
        src_tokens = ListDataset(tokens, sizes)
        dataset = {
            "id": IdDataset(),
            "net_input": {
                "src_tokens": RightPadDataset(src_tokens, pad_idx=self.source_dictionary.pad()),
                "src_lengths": NumelDataset(src_tokens, reduce=False),
            },
            "nsentences": NumSamplesDataset(),
            "ntokens": NumelDataset(src_tokens, reduce=True),
        }
        if encoded.labels is not None:
            dataset["target"] = RawLabelDataset(self.label_ids(encoded.labels))
        nested = NestedDictionaryDataset(dataset, sizes=[sizes])
        if self.cfg.no_shuffle:
            self.datasets[split] = nested
        else:
            with data_utils.numpy_seed(self.cfg.seed):
                shuffle = np.random.permutation(len(nested))
            self.datasets[split] = SortDataset(nested, sort_order=[shuffle])
        logger.info(f"loaded {self.glue.name} {split}: {len(nested)} examples")
        return self.datasets[split]

    def build_model(self, cfg, from_checkpoint=False):
        model = super().build_model(cfg, from_checkpoint)
        emb = model.encoder.embed_tokens if hasattr(model.encoder, "embed_tokens") else None
        if emb is not None:
            check_embedding_rows(
                "the model", emb.num_embeddings, len(self.source_dictionary), self.cfg.vocab_dir, "--vocab-dir"
            )
        return model

    def predict_logits(self, model, split: str, max_tokens: int = 8192) -> torch.Tensor:
        """Logits [N, C] for every example of fairseq split `split`, in file order."""
        return predict_logits(
            model,
            self.encoded_split(split),
            self.cfg.classification_head_name,
            self.encoder,
            self.max_length,
            max_tokens,
        )


@torch.inference_mode()
def predict_logits(
    model, encoded, head_name: str, encoder: TextEncoder, max_positions: int, max_tokens: int = 8192
) -> torch.Tensor:
    """Batched prediction over an EncodedSplit: length-sorted batches of at most `max_tokens` padded tokens (so
    little compute is spent on padding), results returned in the split's original order."""
    tokens = [encoded.tokens(i, encoder.bos, encoder.eos, max_positions) for i in range(len(encoded))]
    order = np.argsort([len(t) for t in tokens], kind="stable")
    device = next(model.parameters()).device
    out = [None] * len(tokens)
    start = 0
    while start < len(order):
        # ascending lengths: the batch's last example is its longest, so the padded size is count x its length
        end = start + 1
        while end < len(order) and (end - start + 1) * len(tokens[order[end]]) <= max_tokens:
            end += 1
        batch = data_utils.collate_tokens([tokens[i] for i in order[start:end]], pad_idx=encoder.pad).to(device)
        logits, _ = model(batch, features_only=True, classification_head_name=head_name)
        for row, i in enumerate(order[start:end]):
            out[i] = logits[row].float().cpu()
        start = end
    return torch.stack(out)
