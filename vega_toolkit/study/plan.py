"""What a study runs: pretraining arms and scales, declared as data.

An arm is a way to obtain the encoder that GLUE fine-tuning starts from. Adding one is a declaration here, e.g. the
MLM baseline of the ablation study:

    ARMS["masked_lm"] = Arm("masked_lm", pretrain_args=("--task", "masked_lm", "--criterion", "masked_lm"),
                            about="fairseq's masked_lm on the same data-bin, budget and optimizer")

Every arm of a scale gets the same corpus, tokenizer, architecture, pretraining budget, fine-tuning grid and seeds;
only its declared flags differ. A scale fixes everything else and says how long it takes.
"""
from dataclasses import dataclass
from typing import Dict, Optional, Tuple


@dataclass(frozen=True)
class Arm:
    name: str  # the registry names a reader maps to code (rtd_ternary, masked_lm, ...)
    pretrain_args: Tuple[str, ...] = ()  # vega-train flags of the objective; () = no pretraining (random init)
    finetune_args: Tuple[str, ...] = ()  # extra fine-tuning flags of this arm (e.g. SiFT)
    about: str = ""

    @property
    def pretrained(self) -> bool:
        return bool(self.pretrain_args)


ARMS: Dict[str, Arm] = {
    arm.name: arm
    for arm in (
        Arm("random", about="no pretraining: the same architecture and tokenizer, initialised with the fine-tuning "
                            "seed (vega-convert export --random-init)"),
        Arm("rtd_ternary", pretrain_args=("--task", "denoising_pretrain", "--criterion", "rtd_ternary"),
            about="Vega phase 1: shuffle 10% / replace 5%, 3-way token classification"),
    )
}


@dataclass(frozen=True)
class TaskPlan:
    """One GLUE task's fine-tuning budget: whole epochs, optionally capped (SST-2 has 67k examples)."""
    name: str
    epochs: int
    max_update: int = 0  # 0 = no cap
    validate_interval_updates: int = 0  # 0 = validate after every epoch
    in_average: bool = True  # WNLI is reported, not averaged (its dev set is adversarial to train)


@dataclass(frozen=True)
class Scale:
    name: str
    about: str  # what it is for and how long it takes
    arch: str
    model_args: Tuple[str, ...]  # encoder flags shared by pretraining and fine-tuning
    preprocess_args: Tuple[str, ...]  # vega-preprocess flags (tokenizer, split)
    pretrain_args: Tuple[str, ...]  # the pretraining budget and optimizer, identical for every pretrained arm
    finetune_args: Tuple[str, ...]  # everything fixed in fine-tuning except learning rate and seed
    batch_size: int
    tasks: Tuple[TaskPlan, ...]
    learning_rates: Tuple[float, ...]
    seeds: Tuple[int, ...]
    arms: Tuple[str, ...] = ("random", "rtd_ternary")
    # BLAS threads of a pretraining run. 1 on a shared 2-core machine: a 2-thread run next to any other process
    # fell from 1.5 to 0.3-0.5 updates/s (OpenMP threads waiting on each other), and with one thread the random
    # arm's fine-tuning cells, which need no pretraining, use the other core meanwhile.
    pretrain_threads: int = 1
    toy_data: bool = False  # no --glue-dir/--corpus needed: generate the demo's toy data
    # task-adaptive pretraining: the unlabelled *training* text of these tasks joins the corpus (never dev/test)
    task_adaptive_text: Tuple[str, ...] = ()


# Pretraining optimizer of every scale (RoBERTa's pretraining Adam settings, Liu et al. 2019, Table 9).
_PRETRAIN_OPT = ("--optimizer", "adam", "--adam-betas", "(0.9,0.98)", "--adam-eps", "1e-6", "--weight-decay", "0.01",
                 "--clip-norm", "1.0", "--lr-scheduler", "polynomial_decay")
# Fine-tuning optimizer of every scale: the GLUE recipes' (recipes/glue/common.sh GLUE_OPT_ARGS). Classification
# heads read the mean of the last layer's states: a token-level objective (rtd_ternary) never trains [CLS], and
# through [CLS] such an encoder fine-tunes far below random init (README, "Results on real data"). Every arm
# gets the same head, so the comparison stays fair.
_FINETUNE_OPT = ("--optimizer", "adam", "--adam-betas", "(0.9,0.999)", "--adam-eps", "1e-6", "--weight-decay", "0.01",
                 "--clip-norm", "1.0", "--lr-scheduler", "polynomial_decay", "--end-learning-rate", "0",
                 "--criterion", "glue_prediction", "--max-seq-len", "128", "--classification-pooling", "mean")


def _pretrain_budget(updates: int, lr: float, batch: int, tokens: int, warmup: int) -> Tuple[str, ...]:
    return _PRETRAIN_OPT + ("--tokens-per-sample", str(tokens), "--batch-size", str(batch), "--lr", str(lr),
                            "--warmup-updates", str(warmup), "--total-num-update", str(updates),
                            "--max-update", str(updates), "--validate-interval-updates", str(max(1, updates // 5)),
                            "--save-interval-updates", str(max(1, updates // 10)), "--keep-interval-updates", "2")


_GLUE_TASKS_WITH_TRAIN = (  # every task of ../shared/glue with a training file
    TaskPlan("CoLA", epochs=3),
    TaskPlan("SST-2", epochs=1, max_update=1000, validate_interval_updates=250),
    TaskPlan("MRPC", epochs=5),
    TaskPlan("STS-B", epochs=4),
    TaskPlan("RTE", epochs=6),
    TaskPlan("WNLI", epochs=5, in_average=False),
)

SCALES: Dict[str, Scale] = {
    scale.name: scale
    for scale in (
        Scale(
            name="smoke",
            about="CI: toy data from vega_toolkit/demo, a few updates per cell, 2 seeds; about 2 minutes on 2 cores",
            arch="vega_tiny",
            model_args=(),
            preprocess_args=("--vocab-size", "200", "--valid-fraction", "0.05"),
            pretrain_args=_pretrain_budget(updates=6, lr=1e-3, batch=8, tokens=64, warmup=1),
            finetune_args=_FINETUNE_OPT,
            batch_size=8,
            tasks=(TaskPlan("SST-2", epochs=1, max_update=4), TaskPlan("RTE", epochs=1, max_update=4),
                   TaskPlan("CoLA", epochs=1, max_update=4)),
            learning_rates=(1e-3,),
            seeds=(1, 2),
            toy_data=True,
            task_adaptive_text=("SST-2", "RTE", "CoLA"),
        ),
        Scale(
            name="cpu",
            about="the 2-core CPU machine: vega_tiny pretrained 10,000 updates on the Gutenberg books plus the GLUE "
                  "training text, 5 GLUE tasks + WNLI, 3 learning rates x 3 seeds; see README 'Results on real data' "
                  "for the measured time",
            arch="vega_tiny",
            model_args=(),
            preprocess_args=("--paragraphs", "--vocab-size", "8000", "--valid-fraction", "0.02"),
            pretrain_args=_pretrain_budget(updates=10000, lr=3e-3, batch=32, tokens=128, warmup=100),
            finetune_args=_FINETUNE_OPT,
            batch_size=32,
            tasks=_GLUE_TASKS_WITH_TRAIN,
            learning_rates=(3e-4, 1e-3, 2e-3),
            seeds=(1, 2, 3),
            task_adaptive_text=tuple(t.name for t in _GLUE_TASKS_WITH_TRAIN),
        ),
        Scale(
            name="gpu",
            about="one GPU (bf16 pretraining): vega_small pretrained 20k updates of 64 x 128 tokens, the same tasks "
                  "and grid with 5 seeds; estimated (not yet run on a GPU) from the H200 step times in README "
                  "'Benchmarks': about 20 min of pretraining and 180 fine-tuning cells of 30-60 s each, about "
                  "1.5 h with --jobs 4",
            arch="vega_small",
            model_args=(),
            preprocess_args=("--paragraphs", "--vocab-size", "8000", "--valid-fraction", "0.02"),
            pretrain_args=_pretrain_budget(updates=20000, lr=1.5e-3, batch=64, tokens=128, warmup=1000)
            + ("--bf16",),
            finetune_args=_FINETUNE_OPT,
            batch_size=32,
            tasks=_GLUE_TASKS_WITH_TRAIN,
            learning_rates=(1e-4, 3e-4, 1e-3),
            seeds=(1, 2, 3, 4, 5),
            task_adaptive_text=tuple(t.name for t in _GLUE_TASKS_WITH_TRAIN),
        ),
    )
}


def get_scale(name: str) -> Scale:
    if name not in SCALES:
        raise ValueError(f"--scale {name!r}: choose one of {', '.join(SCALES)}")
    return SCALES[name]


def get_arm(name: str) -> Arm:
    if name not in ARMS:
        raise ValueError(f"arm {name!r}: declared arms are {', '.join(ARMS)} (vega_toolkit/study/plan.py)")
    return ARMS[name]


def find_task(scale: Scale, name: str) -> Optional[TaskPlan]:
    return next((t for t in scale.tasks if t.name == name), None)
