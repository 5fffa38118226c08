"""`denoising_pretrain`: Vega v1 phase-1/phase-2 pretraining data (shuffle 10% / replace 5%, ternary labels).

    vega-train DATA_BIN --task denoising_pretrain --criterion rtd_ternary --arch vega_tiny \
        --tokens-per-sample 128 --shuffle-prob 0.10 --replace-prob 0.05 --batch-size 16 --optimizer adam --lr 5e-4

DATA_BIN comes from `vega-preprocess` (sharded data: one shard per epoch). Each block is corrupted on the fly by
`vega_toolkit.data.noising`; a batch carries `net_input.src_tokens` (corrupted), `original_tokens` (clean) and
`target` (0 original, 1 shuffled, 2 replaced, -100 special/pad). The task registers the ternary RTD head.
Blocks, seeding and validation noise: docs/design.md#denoising_pretrain-pretraining-data.
"""

import logging
import os
from dataclasses import dataclass, field

import numpy as np
from fairseq.data import (
    AppendTokenDataset,
    Dictionary,
    PrependTokenDataset,
    SortDataset,
    StripTokenDataset,
    TokenBlockDataset,
    TruncateDataset,
    data_utils,
)
from fairseq.dataclass import ChoiceEnum, FairseqDataclass
from fairseq.tasks import FairseqTask, register_task
from fairseq.tasks.language_modeling import SAMPLE_BREAK_MODE_CHOICES
from omegaconf import II, MISSING

from vega_toolkit.data.corpus_pipeline import data_paths
from vega_toolkit.data.noising import NUM_RTD_CLASSES, RTD_HEAD_NAME, RTDNoisingDataset, TokenNoiser
from vega_toolkit.data.vocabulary import RecordsVocabulary, check_embedding_rows
from vega_toolkit.errors import UserError

logger = logging.getLogger(__name__)


@dataclass
class DenoisingPretrainConfig(FairseqDataclass):
    data: str = field(
        default=MISSING,
        metadata={
            "help": "data-bin from vega-preprocess; ':'-separated list (or a folder of "
            "shard0, shard1, ...) = one per epoch"
        },
    )
    tokens_per_sample: int = field(default=512, metadata={"help": "maximum block length, <s> and </s> included"})
    sample_break_mode: SAMPLE_BREAK_MODE_CHOICES = field(
        default="complete",
        metadata={
            "help": "fairseq block breaking: none (fixed-size blocks), complete (whole lines up to the "
            "block size, RoBERTa's FULL-SENTENCES), complete_doc, eos (one line per block)"
        },
    )
    shuffle_prob: float = field(
        default=0.10, metadata={"help": "fraction of eligible tokens permuted within their sequence (label 1)"}
    )
    replace_prob: float = field(
        default=0.05, metadata={"help": "disjoint fraction of eligible tokens replaced by random pieces (label 2)"}
    )
    replace_weighting: ChoiceEnum(["uniform", "frequency"]) = field(
        default="uniform",
        metadata={
            "help": "replacement distribution: uniform over non-special pieces, or proportional to the dict.txt counts"
        },
    )
    seed: int = II("common.seed")


@register_task("denoising_pretrain", dataclass=DenoisingPretrainConfig)
class DenoisingPretrainTask(RecordsVocabulary, FairseqTask):
    cfg: DenoisingPretrainConfig

    def __init__(self, cfg: DenoisingPretrainConfig, dictionary: Dictionary):
        super().__init__(cfg)
        self.dictionary = dictionary
        self.record_vocabulary(data_paths(cfg.data)[0], "DATA")
        self.noiser = TokenNoiser.from_dictionary(
            dictionary, cfg.shuffle_prob, cfg.replace_prob, replace_weighting=cfg.replace_weighting
        )

    @classmethod
    def setup_task(cls, cfg: DenoisingPretrainConfig, **kwargs):
        paths = data_paths(cfg.data) if cfg.data else []
        if not paths:
            raise ValueError("denoising_pretrain: no data directory given")
        dict_path = os.path.join(paths[0], "dict.txt")
        if not os.path.isfile(dict_path):
            raise FileNotFoundError(f"denoising_pretrain: {dict_path} not found (run vega-preprocess first)")
        if cfg.tokens_per_sample < 3:
            raise UserError(f"--tokens-per-sample must be >= 3 (<s> token </s>), got {cfg.tokens_per_sample}")
        dictionary = Dictionary.load(dict_path)
        logger.info("dictionary: %d types", len(dictionary))
        return cls(cfg, dictionary)

    def load_blocks(self, split: str, epoch: int = 1, combine: bool = False):
        """`<s> ... </s>` blocks of at most tokens_per_sample tokens (the clean text)."""
        paths = data_paths(self.cfg.data)
        split_path = os.path.join(paths[(epoch - 1) % len(paths)], split)
        if os.path.isfile(split_path + ".bin") and os.path.getsize(split_path + ".bin") == 0:
            # fairseq's mmap reader fails on it with "cannot mmap an empty file"
            raise UserError(
                f"{split_path}.bin is empty (a data-bin written with --valid-fraction 0 has no {split} "
                f"text): pass --disable-validation to train without validation, or rebuild the "
                f"data-bin with --valid-fraction above 0"
            )
        dataset = data_utils.load_indexed_dataset(split_path, self.dictionary, combine=combine)
        if dataset is None:
            raise FileNotFoundError(f"denoising_pretrain: dataset not found: {split} ({split_path}.bin/.idx)")
        body = self.cfg.tokens_per_sample - 2  # room for <s> and </s>
        eos = self.dictionary.eos()
        # Mode "eos" (one line per block) is the indexed dataset itself; fairseq's TokenBlockDataset would
        # take its np.compat path there, which numpy 2 removed.
        if self.cfg.sample_break_mode != "eos":
            dataset = TokenBlockDataset(
                dataset, dataset.sizes, body, pad=self.dictionary.pad(), eos=eos, break_mode=self.cfg.sample_break_mode
            )
        # Blocks may start or end on a line's </s> (break mode none) or hold one long line (complete/eos modes
        # let a line exceed the block size): strip the edges, cap the length, then frame as <s> ... </s>.
        # Inner </s> (line separators in complete mode) stay: they are [SEP]s, special, never corrupted.
        dataset = TruncateDataset(StripTokenDataset(dataset, eos), body)
        dataset = PrependTokenDataset(AppendTokenDataset(dataset, eos), self.dictionary.bos())
        logger.info("loaded %d blocks from %s", len(dataset), split_path)
        return dataset

    def load_dataset(self, split, epoch=1, combine=False, **kwargs):
        blocks = self.load_blocks(split, epoch, combine)
        noised = RTDNoisingDataset(
            blocks,
            self.noiser,
            self.dictionary.pad(),
            seed=self.cfg.seed,
            vary_with_epoch=not split.startswith(("valid", "test")),
        )
        with data_utils.numpy_seed(self.cfg.seed + epoch):
            order = np.random.permutation(len(noised))
        self.datasets[split] = SortDataset(noised, sort_order=[order, blocks.sizes])

    def has_sharded_data(self, split):
        # fairseq reloads the train set every epoch (to move to the next shard) only when this says so; its own
        # test is a ':' in --data, which misses a folder of shards
        return len(data_paths(self.cfg.data)) > 1

    def build_model(self, cfg, from_checkpoint=False):
        model = super().build_model(cfg, from_checkpoint)
        if not hasattr(model, "register_token_head"):
            raise ValueError(
                f"--task denoising_pretrain needs a model with token heads (e.g. --arch vega_base); "
                f"{type(model).__name__} has no register_token_head"
            )
        if model.max_positions() < self.cfg.tokens_per_sample:
            raise UserError(
                f"--tokens-per-sample {self.cfg.tokens_per_sample} is longer than the model's "
                f"--max-positions {model.max_positions()}: every block would be too long. Lower "
                f"--tokens-per-sample or raise --max-positions"
            )
        check_embedding_rows(
            "the model",
            model.encoder.embed_tokens.num_embeddings,
            len(self.dictionary),
            data_paths(self.cfg.data)[0],
            "DATA",
        )
        if RTD_HEAD_NAME not in model.token_heads:
            model.register_token_head(RTD_HEAD_NAME, NUM_RTD_CLASSES)
        return model

    def begin_epoch(self, epoch, model):
        model.set_epoch(epoch)

    def max_positions(self):
        return self.cfg.tokens_per_sample

    @property
    def source_dictionary(self):
        return self.dictionary

    @property
    def target_dictionary(self):
        return self.dictionary
