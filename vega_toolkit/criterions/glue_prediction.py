"""`glue_prediction`: fairseq's sentence_prediction criterion with the GLUE task's own metrics switched on.

    vega-train glue_data/CoLA --task glue --glue-task CoLA --criterion glue_prediction \
        --best-checkpoint-metric mcc --maximize-best-checkpoint-metric ...

Same loss (fp32 cross-entropy, MSE for STS-B) and the same logged meters as `sentence_prediction`; the difference
is that the `--report-*` flags follow the `--glue-task` table (CoLA: mcc; MRPC/QQP: f1, acc_and_f1; STS-B: pearson,
spearman, pearson_and_spearman), so the metric a recipe selects checkpoints on is always logged.
"""

from dataclasses import dataclass

from fairseq.criterions import register_criterion
from fairseq.criterions.sentence_prediction import SentencePredictionConfig, SentencePredictionCriterion

# metric name in the GLUE task table -> the sentence_prediction report flag that logs it
_REPORT_FLAG = {
    "mcc": "report_mcc",
    "f1": "report_acc_and_f1",
    "pearson": "report_pearson_and_spearman",
    "spearman": "report_pearson_and_spearman",
}


@dataclass
class GluePredictionConfig(SentencePredictionConfig):
    pass


@register_criterion("glue_prediction", dataclass=GluePredictionConfig)
class GluePredictionCriterion(SentencePredictionCriterion):
    def __init__(self, cfg: GluePredictionConfig, task):
        super().__init__(cfg, task)
        glue = getattr(task, "glue", None)  # the `glue` task (and tasks derived from it) carry their table row
        for metric in glue.metrics if glue is not None else ():
            if metric in _REPORT_FLAG:
                setattr(self, _REPORT_FLAG[metric], True)
        self.keep_pred_and_targ = self.report_mcc or self.report_acc_and_f1 or self.report_pearson_and_spearman

    def logging_outputs_can_be_summed(self) -> bool:
        # per-example predictions (for mcc/f1/correlations) are lists: they cannot be summed across workers
        return not self.keep_pred_and_targ
