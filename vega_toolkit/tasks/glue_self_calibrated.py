"""`glue_self_calibrated`: self-calibrated fine-tuning (Vega v1, Algorithm 2) on any GLUE task.

    vega-train GLUE/CoLA --task glue_self_calibrated --glue-task CoLA --vocab-dir PRETRAINED \
        --finetune-from-model cola-m0/checkpoint_best.pt --external-data external.tsv --external-format labelled \
        --selection-top-k 5000 --max-rounds 2 --save-dir out/cola-sc  [every other `--task glue` flag]

KenLM selects in-domain rows of the external pool, M0 relabels them (labelled pools: disagreeing rows dropped),
M0 is fine-tuned on them, then Algorithm 1 runs from there; a rerun resumes at the first unfinished step.
The steps and their flags: docs/design.md#glue_self_calibrated-algorithm-2.
"""

import logging
from dataclasses import dataclass, field

from fairseq.tasks import register_task

from vega_toolkit.tasks.glue_transductive import GlueTransductiveConfig, GlueTransductiveTask

logger = logging.getLogger(__name__)

EXTERNAL_FORMATS = ("labelled", "unlabelled", "text")


@dataclass
class GlueSelfCalibratedConfig(GlueTransductiveConfig):
    external_data: str = field(default="", metadata={"help": "the external pool D* (see --external-format)"})
    external_format: str = field(
        default="labelled",
        metadata={
            "help": "labelled: the task's train-file layout; unlabelled: its test-file "
            "layout; text: one sentence per line (single-sentence tasks)"
        },
    )
    selection_top_k: int = field(default=1000, metadata={"help": "keep the K most in-domain pool rows"})
    selection_max_ppl: float = field(
        default=0.0, metadata={"help": "instead of top-k: keep pool rows with in-domain perplexity <= this"}
    )
    selection_general: str = field(
        default="",
        metadata={"help": "general-domain text (one sentence per line): rank by Moore-Lewis instead of perplexity"},
    )
    lm_order: int = field(default=4, metadata={"help": "n-gram order of the selection LMs"})
    calibrate_with_train: bool = field(
        default=False, metadata={"help": "fine-tune M0 on train + calibrated data (default: calibrated data only)"}
    )


@register_task("glue_self_calibrated", dataclass=GlueSelfCalibratedConfig)
class GlueSelfCalibratedTask(GlueTransductiveTask):
    """GLUE fine-tuning with the flags of Algorithm 2; its loop: vega_toolkit/adaptation/self_calibration.py."""
