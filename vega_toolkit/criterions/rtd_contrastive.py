"""`rtd_contrastive`: Vega v1 phase-2 loss, ternary RTD + SimCSE-style InfoNCE between clean and corrupted views.

    vega-train DATA_BIN --task denoising_pretrain --criterion rtd_contrastive --arch vega_tiny \
        --finetune-from-model PHASE1/checkpoint_last.pt --temperature 0.05 --contrastive-weight 1.0 ...

One forward pass over cat([corrupted, original]) (DDP sees a single forward per step): the token head on the
corrupted half gives the `rtd_ternary` loss; the pooled vector ([CLS] or masked mean) of original i is the anchor,
its corrupted copy the positive, and every other corrupted sequence of the *global* batch a negative (gathered
from all data-parallel ranks; the local shard keeps its gradient, SimCSE's recipe). Similarity = cosine / tau,
tau = 0.05 as SimCSE (Gao et al. 2021, §3; princeton-nlp/SimCSE simcse/models.py).

Objective = mean RTD CE per eligible token + contrastive_weight * mean InfoNCE per sequence. fairseq divides the
summed loss by sample_size (eligible tokens), so the per-sequence InfoNCE mean is scaled by the local
sample_size before it is added. Logs loss, rtd_loss, contrastive_loss (base 2, like `loss`), contrastive_acc
(the positive ranks first among the global batch; chance = 1 / global batch size) and all rtd_ternary metrics.
"""

import math
from dataclasses import dataclass, field

import torch
import torch.distributed as dist
import torch.nn.functional as F
from fairseq import utils
from fairseq.criterions import register_criterion
from fairseq.dataclass import ChoiceEnum, FairseqDataclass
from fairseq.distributed import utils as distributed_utils
from fairseq.logging import metrics

from vega_toolkit.criterions.rtd_ternary import RTDTernaryCriterion, reduce_rtd_metrics, rtd_loss_and_counts
from vega_toolkit.data.noising import RTD_HEAD_NAME
from vega_toolkit.errors import UserError
from vega_toolkit.models.heads import pool


@dataclass
class RTDContrastiveConfig(FairseqDataclass):
    temperature: float = field(default=0.05, metadata={"help": "InfoNCE temperature tau (SimCSE: 0.05)"})
    contrastive_weight: float = field(
        default=1.0, metadata={"help": "weight of the per-sequence InfoNCE mean added to the per-token RTD mean"}
    )
    contrastive_pooling: ChoiceEnum(["cls", "mean"]) = field(
        default="cls", metadata={"help": "sentence vector: the [CLS] (<s>) state, or the mean over non-pad tokens"}
    )


def gather_across_data_parallel(z: torch.Tensor):
    """[b, H] -> ([sum_r b_r, H], offset of this rank's rows). Other ranks' rows carry no gradient; this rank's
    rows are the local tensor itself, so its gradient flows. Handles unequal batch sizes across ranks."""
    if not (dist.is_available() and dist.is_initialized()):
        return z, 0
    world_size = distributed_utils.get_data_parallel_world_size()
    if world_size == 1:
        return z, 0
    group = distributed_utils.get_data_parallel_group()
    rank = distributed_utils.get_data_parallel_rank()
    size = torch.tensor([z.size(0)], device=z.device)
    sizes = [torch.zeros_like(size) for _ in range(world_size)]
    dist.all_gather(sizes, size, group=group)
    sizes = [int(s) for s in sizes]
    padded = z.new_zeros((max(sizes),) + z.shape[1:])
    padded[: z.size(0)] = z.detach()
    shards = [torch.empty_like(padded) for _ in range(world_size)]
    dist.all_gather(shards, padded, group=group)
    shards = [s[:n] for s, n in zip(shards, sizes, strict=True)]
    shards[rank] = z
    return torch.cat(shards), sum(sizes[:rank])


@register_criterion("rtd_contrastive", dataclass=RTDContrastiveConfig)
class RTDContrastiveCriterion(RTDTernaryCriterion):
    def __init__(self, cfg: RTDContrastiveConfig, task):
        super().__init__(cfg, task)
        if cfg.temperature <= 0:
            raise UserError(f"--temperature must be > 0, got {cfg.temperature}")
        self.temperature = cfg.temperature
        self.contrastive_weight = cfg.contrastive_weight
        self.contrastive_pooling = cfg.contrastive_pooling

    @staticmethod
    def replaces_with_generator(cfg) -> bool:
        return False  # the task's random replacements: this config has no --replace-with

    def forward(self, model, sample, reduce=True):
        corrupted = sample["net_input"]["src_tokens"]
        bsz = corrupted.size(0)
        both = torch.cat([corrupted, sample["original_tokens"]], dim=0)
        logits, extra = model(both, token_head_name=RTD_HEAD_NAME)
        rtd_loss, counts = rtd_loss_and_counts(logits[:bsz], sample["target"])

        pooled = pool(extra["inner_states"][-1], extra["padding_mask"], self.contrastive_pooling).float()
        pooled = F.normalize(pooled, dim=-1)
        anchors, positives = pooled[bsz:], pooled[:bsz]  # anchor = clean view, positive = its corrupted copy
        candidates, offset = gather_across_data_parallel(positives)
        sim = anchors @ candidates.t() / self.temperature
        targets = torch.arange(bsz, device=sim.device) + offset
        cl_loss = F.cross_entropy(sim, targets, reduction="sum")
        cl_correct = (sim.argmax(-1) == targets).sum()

        sample_size = counts["rtd_n"]
        loss = rtd_loss + self.contrastive_weight * (cl_loss / max(bsz, 1)) * sample_size
        logging_output = {
            "loss": loss.data,
            "rtd_loss": rtd_loss.data,
            "contrastive_loss": cl_loss.data,
            "cl_n": bsz,
            "cl_correct": cl_correct,
            "cl_candidates": candidates.size(0) * bsz,  # sum over anchors of the number of candidates
            "ntokens": sample["ntokens"],
            "nsentences": sample["nsentences"],
            "sample_size": sample_size,
            **counts,
        }
        return loss, sample_size, logging_output

    @staticmethod
    def reduce_metrics(logging_outputs) -> None:
        reduce_rtd_metrics(logging_outputs, loss_key="rtd_loss")

        def total(key):
            return utils.item(sum(log.get(key, 0) for log in logging_outputs))

        n_tok, n_seq = total("rtd_n"), total("cl_n")
        metrics.log_scalar("loss", total("loss") / max(n_tok, 1) / math.log(2), n_tok, round=3)
        metrics.log_scalar("contrastive_loss", total("contrastive_loss") / max(n_seq, 1) / math.log(2), n_seq, round=3)
        metrics.log_scalar_sum("_cl_n", n_seq)
        metrics.log_scalar_sum("_cl_correct", total("cl_correct"))
        metrics.log_scalar_sum("_cl_candidates", total("cl_candidates"))
        metrics.log_derived("contrastive_acc", lambda m: float(m["_cl_correct"].sum) / max(float(m["_cl_n"].sum), 1.0))
        # chance level of contrastive_acc = 1 / (mean number of candidates per anchor)
        metrics.log_derived(
            "contrastive_chance", lambda m: float(m["_cl_n"].sum) / max(float(m["_cl_candidates"].sum), 1.0)
        )
