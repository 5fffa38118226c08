"""`glue_transductive`: transductive fine-tuning (Vega v1, Algorithm 1) on any GLUE task.

    vega-train GLUE/WNLI --task glue_transductive --glue-task WNLI --vocab-dir PRETRAINED \
        --finetune-from-model wnli-m0/checkpoint_best.pt --max-rounds 3 --converge-eps 0.01 \
        --confidence-threshold 0.9 --save-dir out/wnli-td  [every other `--task glue` flag]
    # or start from the pretrained model, round 0 being the vanilla fine-tune:
    vega-train ... --finetune-from-model PRETRAINED/model.pt --train-initial-model

The loop is vega-train's (vega_toolkit/adaptation/rounds.py); the task itself is `glue` plus `--extra-train-data`
and refuses a plain fairseq-train without `--adaptation-round`. Pseudo-labels, convergence, what each round writes:
docs/design.md#glue_transductive-algorithm-1.
"""

import logging
from dataclasses import dataclass, field

from fairseq.tasks import register_task

from vega_toolkit.data.glue_binarize import EncodedSplit, load_encoded_split
from vega_toolkit.tasks.glue import GlueConfig, GlueTask

logger = logging.getLogger(__name__)


@dataclass
class GlueTransductiveConfig(GlueConfig):
    max_rounds: int = field(default=3, metadata={"help": "at most this many pseudo-label fine-tuning rounds"})
    converge_eps: float = field(
        default=0.01,
        metadata={
            "help": "stop when the fraction of test pseudo-labels that changed since the previous "
            "round is below this (0.5-1% is the usual range; 0 disables)"
        },
    )
    confidence_threshold: float = field(
        default=0.0,
        metadata={
            "help": "only test predictions with max softmax probability >= this join the "
            "training data (0 = all; classification only)"
        },
    )
    regression_tolerance: float = field(
        default=0.5,
        metadata={"help": "regression (STS-B): a pseudo-label counts as changed when it moved by more than this"},
    )
    pseudo_label_split: str = field(
        default="test", metadata={"help": "fairseq split to pseudo-label (an unlabelled test split: test, test1)"}
    )
    train_initial_model: bool = field(
        default=False,
        metadata={
            "help": "--finetune-from-model is a pretrained model: fine-tune it on train first (round 0) to obtain M0"
        },
    )
    extra_train_data: str = field(
        default="",
        metadata={
            "help": "comma-separated TSV files in the task's train layout appended to the train "
            "split (the loop sets this per round)"
        },
    )
    train_on_extra_only: bool = field(
        default=False, metadata={"help": "train on --extra-train-data alone, without the task's train split"}
    )
    adaptation_round: bool = field(
        default=False,
        metadata={
            "help": "this training is one round of vega-train's loop (the loop sets it); "
            "without it a training of this task stops at setup: run the loop with "
            "vega-train"
        },
    )


def needs_vega_train(task_name: str) -> str:
    """Why a plain fairseq training of a round-based task stops (vega-train runs the loop)."""
    return (
        f"--task {task_name} is a loop of several trainings (vega_toolkit/adaptation), which vega-train runs: "
        f"`vega-train <same arguments>` instead of fairseq-train or fairseq-hydra-train (vega-hydra-train for a "
        f"Hydra config). A plain fairseq training would silently train one round only. To train a single round "
        f"on purpose, pass --adaptation-round."
    )


@register_task("glue_transductive", dataclass=GlueTransductiveConfig)
class GlueTransductiveTask(GlueTask):
    @classmethod
    def setup_task(cls, cfg: GlueTransductiveConfig, **kwargs):
        # a checkpoint being loaded (prediction, the hub) is no training; a training outside the loop is refused
        if not kwargs.get("from_checkpoint") and not cfg.adaptation_round:
            raise ValueError(needs_vega_train(cfg._name))
        return super().setup_task(cfg, **kwargs)

    def encoded_split(self, split: str) -> EncodedSplit:
        if split != "train" or not self.cfg.extra_train_data:
            return super().encoded_split(split)
        parts = [] if self.cfg.train_on_extra_only else [super().encoded_split("train")]
        for path in self.cfg.extra_train_data.split(","):
            parts.append(load_encoded_split(path, self.glue, "train", self.encoder, self.cfg.glue_cache_dir or None))
        merged = EncodedSplit(
            a=[x for p in parts for x in p.a],
            b=None if parts[0].b is None else [x for p in parts for x in p.b],
            labels=[x for p in parts for x in p.labels],
            indices=[x for p in parts for x in p.indices],
        )
        logger.info(
            f"train split: {' + '.join(str(len(p)) for p in parts)} = {len(merged)} examples "
            f"(extra: {self.cfg.extra_train_data})"
        )
        return merged
