"""`glue_self_calibrated`: self-calibrated fine-tuning (Vega v1, Algorithm 2) on any GLUE task.

    vega-train GLUE/CoLA --task glue_self_calibrated --glue-task CoLA --vocab-dir PRETRAINED \
        --finetune-from-model cola-m0/checkpoint_best.pt --external-data external.tsv --external-format labelled \
        --selection-top-k 5000 --max-rounds 2 --save-dir out/cola-sc  [every other `--task glue` flag]

Steps (state in SAVE_DIR/adaptation_state.json; a rerun resumes at the first unfinished step):
1. an n-gram KenLM (--lm-order, lmplz --discount_fallback) on the task's training text D_s selects D*_s from the
   external pool D* (--selection-top-k lowest perplexities, or --selection-max-ppl; Moore-Lewis with
   --selection-general) -> SAVE_DIR/self_calibration/selected.tsv;
2. M0 (--finetune-from-model) relabels D*_s;
3. labelled D* (--external-format labelled: the task's train layout): keep the rows whose pseudo-label equals the
   given label (STS-B: within --regression-tolerance), i.e. drop the pool's label noise; unlabelled D*
   (`unlabelled`: the test layout, or `text`: one sentence per line for single-sentence tasks): keep all,
   pseudo-labelled. Rows under --confidence-threshold are dropped too -> calibrated.tsv;
4. M0 is fine-tuned on the calibrated data (plus train with --calibrate-with-train) -> M0';
5. Algorithm 1 (glue_transductive) from M0'.
Logged: pool size, selection size, agreement rate, calibrated size.
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
        default="labelled", metadata={"help": "labelled: the task's train-file layout; unlabelled: its test-file "
                                              "layout; text: one sentence per line (single-sentence tasks)"})
    selection_top_k: int = field(default=1000, metadata={"help": "keep the K most in-domain pool rows"})
    selection_max_ppl: float = field(
        default=0.0, metadata={"help": "instead of top-k: keep pool rows with in-domain perplexity <= this"})
    selection_general: str = field(
        default="", metadata={"help": "general-domain text (one sentence per line): rank by Moore-Lewis instead of "
                                      "perplexity"})
    lm_order: int = field(default=4, metadata={"help": "n-gram order of the selection LMs"})
    calibrate_with_train: bool = field(
        default=False, metadata={"help": "fine-tune M0 on train + calibrated data (default: calibrated data only)"})


@register_task("glue_self_calibrated", dataclass=GlueSelfCalibratedConfig)
class GlueSelfCalibratedTask(GlueTransductiveTask):
    """GLUE fine-tuning with the flags of Algorithm 2; its loop: vega_toolkit/adaptation/self_calibration.py."""
