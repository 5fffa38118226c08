"""The whole Vega v1 recipe end to end at toy scale: `make demo` (or `python -m vega_toolkit.demo --out demo_out`).

    python -m vega_toolkit.demo --out demo_out                        # embedded toy data, ~5 min on 2 cores
    python -m vega_toolkit.demo --out demo_out --glue-dir glue_data --corpus corpus/   # the same on real data
    python -m vega_toolkit.demo --out /tmp/smoke --size smoke          # the CI setting: same stages, seconds each

Stages (each one a real CLI call, printed before it runs, so every step can be re-run by hand):
 1. data             toy corpus + three GLUE-format tasks (vega_toolkit/demo/toy_data.py), or your folders
 2. preprocess       vega-preprocess: sentencepiece -> dict.txt -> fairseq data-bin
 3. phase 1          vega-train --task denoising_pretrain --criterion rtd_ternary (shuffle 10% / replace 5%)
 4. phase 2          vega-train --criterion rtd_contrastive, from phase 1's weights with a fresh optimizer
 5. SST-2            vega-train --task glue --criterion adversarial_ce (SiFT)
 6. RTE              vega-train --task glue_transductive (pseudo-labelled test set, rounds until stable)
 7. CoLA             vega-train --task glue_self_calibrated (real KenLM selects from an external pool)
 8. generate         vega-generate: GLUE submission TSVs + zip, dev scores
 9. report           report.md (results table) + curves.png (pretraining and fine-tuning curves from TensorBoard)
"""
import json
import os
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional

from vega_toolkit.demo import report
from vega_toolkit.demo.toy_data import write_toy_data

BIN = Path(sys.executable).parent


@dataclass
class Size:
    """How big each stage is. `demo` is the README's `make demo`; `smoke` is the CI test of the same pipeline."""
    corpus_paragraphs: int
    task_sizes: tuple
    vocab_size: int
    phase1_updates: int
    phase2_updates: int
    finetune_epochs: int
    finetune_max_updates: int  # per training: only bites on real GLUE data (SST-2 alone has 67k examples)
    batch_size: int
    tokens_per_sample: int
    rounds: int


SIZES = {
    "demo": Size(corpus_paragraphs=4000, task_sizes=(600, 200, 200), vocab_size=400, phase1_updates=500,
                 phase2_updates=100, finetune_epochs=6, finetune_max_updates=400, batch_size=16, tokens_per_sample=128,
                 rounds=2),
    "smoke": Size(corpus_paragraphs=300, task_sizes=(64, 32, 32), vocab_size=200, phase1_updates=8,
                  phase2_updates=4, finetune_epochs=1, finetune_max_updates=8, batch_size=8, tokens_per_sample=64,
                  rounds=1),
}


class Pipeline:
    def __init__(self, out: Path, size: Size, glue_dir: Optional[Path], corpus: Optional[Path], seed: int = 1):
        self.out, self.size, self.seed = out, size, seed
        self.glue_dir, self.corpus = glue_dir, corpus
        self.timings: Dict[str, float] = {}
        self.stage_no = 0
        self.start = time.time()
        out.mkdir(parents=True, exist_ok=True)
        self.log = open(out / "demo.log", "a")

    # ---------------------------------------------------------------- plumbing
    def banner(self, name: str):
        self.stage_no += 1
        line = f"===== [{self.stage_no}/9] {name} ====="
        print("\n" + line, flush=True)
        self.log.write(line + "\n")
        return time.time()

    def done(self, name: str, t0: float):
        self.timings[name] = time.time() - t0
        print(f"----- {name}: {self.timings[name]:.1f} s (total {time.time() - self.start:.0f} s)", flush=True)

    def run(self, program: str, args: List[str]):
        cmd = [str(BIN / program)] + [str(a) for a in args]
        print("$ " + " ".join(shlex.quote(c) for c in cmd), flush=True)
        self.log.write("$ " + " ".join(shlex.quote(c) for c in cmd) + "\n")
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        tail = []
        for line in proc.stdout:
            self.log.write(line)
            tail = (tail + [line])[-40:]
            if _worth_showing(line):
                print("  " + line.rstrip(), flush=True)
        if proc.wait() != 0:
            raise RuntimeError(f"stage command failed (exit {proc.returncode}): {' '.join(cmd)}\n"
                               + "".join(tail) + f"\nfull log: {self.out / 'demo.log'}")
        return "".join(tail)

    def common_train_flags(self, save_dir: Path, tb: str) -> List[str]:
        return ["--cpu", "--seed", self.seed, "--save-dir", save_dir, "--tensorboard-logdir", self.out / "tb" / tb,
                "--log-format", "simple", "--log-interval", 10, "--num-workers", 0, "--no-epoch-checkpoints"]

    # ---------------------------------------------------------------- stages
    def data(self):
        t0 = self.banner("data: pretraining corpus and GLUE-format tasks (generated unless given)")
        if self.glue_dir is None or self.corpus is None:
            toy = write_toy_data(self.out / "data", seed=self.seed, corpus_paragraphs=self.size.corpus_paragraphs,
                                 task_sizes=self.size.task_sizes)
            self.glue_dir = self.glue_dir or toy / "glue"
            self.corpus = self.corpus or toy / "corpus"
            self.external = toy / "external" / "cola_pool.tsv"
        else:
            self.external = None
        print(f"  corpus: {self.corpus}\n  GLUE tasks: {self.glue_dir}")
        self.done("data", t0)

    def preprocess(self):
        t0 = self.banner("preprocess: sentencepiece + fairseq binarization (vega-preprocess)")
        self.data_bin = self.out / "data-bin"
        self.run("vega-preprocess", [self.corpus, "--destdir", self.data_bin, "--vocab-size", self.size.vocab_size,
                                     "--workers", 2, "--valid-fraction", 0.05, "--seed", self.seed])
        self.done("preprocess", t0)

    def pretrain_flags(self, updates: int) -> List[str]:
        s = self.size
        return [self.data_bin, "--task", "denoising_pretrain", "--arch", "vega_tiny",
                "--tokens-per-sample", s.tokens_per_sample, "--batch-size", s.batch_size,
                "--optimizer", "adam", "--adam-betas", "(0.9,0.98)", "--weight-decay", 0.01, "--clip-norm", 1.0,
                "--lr-scheduler", "polynomial_decay", "--warmup-updates", max(1, updates // 10),
                "--total-num-update", updates, "--max-update", updates, "--validate-interval-updates",
                max(2, updates // 5), "--save-interval-updates", max(2, updates // 2)]

    def phase1(self):
        t0 = self.banner("phase 1: ternary replaced-token detection (rtd_ternary)")
        self.phase1_dir = self.out / "pretrain" / "phase1"
        self.run("vega-train", self.pretrain_flags(self.size.phase1_updates)
                 + ["--criterion", "rtd_ternary", "--lr", 1e-3]
                 + self.common_train_flags(self.phase1_dir, "phase1"))
        self.done("phase 1", t0)

    def phase2(self):
        t0 = self.banner("phase 2: RTD + SimCSE-style contrastive (rtd_contrastive), from phase 1")
        self.phase2_dir = self.out / "pretrain" / "phase2"
        self.run("vega-train", self.pretrain_flags(self.size.phase2_updates)
                 + ["--criterion", "rtd_contrastive", "--lr", 5e-4,
                    "--finetune-from-model", self.phase1_dir / "checkpoint_last.pt"]
                 + self.common_train_flags(self.phase2_dir, "phase2"))
        self.pretrained = self.phase2_dir / "checkpoint_last.pt"
        self.done("phase 2", t0)

    def finetune_flags(self, task: str, save_dir: Path, metric: str) -> List[str]:
        s = self.size
        return [self.glue_dir / task, "--task", "glue", "--glue-task", task, "--vocab-dir", self.data_bin,
                "--glue-cache-dir", self.out / "cache",
                "--arch", "vega_tiny", "--finetune-from-model", self.pretrained,
                "--classification-head-name", f"{task.lower().replace('-', '')}_head",
                "--batch-size", s.batch_size, "--max-positions", s.tokens_per_sample,
                "--optimizer", "adam", "--adam-betas", "(0.9,0.98)", "--lr", 3e-4, "--clip-norm", 1.0,
                "--lr-scheduler", "fixed", "--max-epoch", s.finetune_epochs, "--max-update", s.finetune_max_updates,
                "--best-checkpoint-metric", metric, "--maximize-best-checkpoint-metric",
                "--valid-subset", "valid"] + self.common_train_flags(save_dir, f"finetune_{task}")

    def sst2(self):
        t0 = self.banner("SST-2: fine-tuning with SiFT (adversarial_ce)")
        self.sst2_dir = self.out / "finetune" / "SST-2"
        self.run("vega-train", self.finetune_flags("SST-2", self.sst2_dir, "accuracy")
                 + ["--criterion", "adversarial_ce", "--adv-lambda", 1.0])
        self.done("SST-2", t0)

    def rte(self):
        t0 = self.banner("RTE: transductive fine-tuning (glue_transductive)")
        self.rte_dir = self.out / "finetune" / "RTE"
        flags = self.finetune_flags("RTE", self.rte_dir, "accuracy")
        flags[flags.index("glue")] = "glue_transductive"
        self.run("vega-train", flags + ["--criterion", "glue_prediction", "--train-initial-model",
                                        "--max-rounds", self.size.rounds])
        self.done("RTE", t0)

    def cola(self):
        t0 = self.banner("CoLA: self-calibrated fine-tuning with KenLM selection (glue_self_calibrated)")
        self.cola_dir = self.out / "finetune" / "CoLA"
        flags = self.finetune_flags("CoLA", self.cola_dir, "mcc")
        flags[flags.index("glue")] = "glue_self_calibrated"
        if self.external is None:  # real CoLA without a pool: its own test sentences, unlabelled (never dev)
            pool = ["--external-data", self.glue_dir / "CoLA" / "test.tsv", "--external-format", "unlabelled"]
        else:
            pool = ["--external-data", self.external, "--external-format", "labelled"]
        self.run("vega-train", flags + ["--criterion", "glue_prediction", "--train-initial-model",
                                        "--max-rounds", self.size.rounds, "--selection-top-k",
                                        self.size.task_sizes[0]] + pool)
        self.done("CoLA", t0)

    def generate(self):
        t0 = self.banner("generate: GLUE submission files + zip (vega-generate)")
        self.submission = self.out / "submission"
        # adaptation tasks copy their final round's model to checkpoint_best.pt
        checkpoints = [d / "checkpoint_best.pt" for d in (self.sst2_dir, self.rte_dir, self.cola_dir)]
        self.run("vega-generate", checkpoints + ["--glue-dir", self.glue_dir, "--out-dir", self.submission,
                                                 "--dev", "--cpu"])
        self.done("generate", t0)

    def report(self):
        t0 = self.banner("report: results table and curves")
        paths = report.write_report(self.out, self.glue_dir, {"SST-2": self.sst2_dir, "RTE": self.rte_dir,
                                                              "CoLA": self.cola_dir}, self.timings,
                                     contrastive_batch=self.size.batch_size)
        self.done("report", t0)
        print(f"\nDemo finished in {time.time() - self.start:.0f} s.")
        print(f"  report:     {paths['report']}")
        print(f"  figure:     {paths['figure']}")
        print(f"  submission: {self.submission} ({self.submission / 'submission.zip'})")
        return paths

    def run_all(self):
        for stage in (self.data, self.preprocess, self.phase1, self.phase2, self.sst2, self.rte, self.cola,
                      self.generate):
            stage()
        paths = self.report()
        (self.out / "timings.json").write_text(json.dumps(self.timings, indent=1))
        return paths


def _worth_showing(line: str) -> bool:
    # fairseq's progress lines and our own summaries; model dumps and INFO chatter stay in demo.log
    keys = ("INFO:train:", "INFO:valid:", "INFO:train_inner:", "round", "pseudo", "selected", "agreement",
            "calibrated", "dev ", "wrote", "GLUE score", "rror", "Traceback")
    return any(k in line for k in keys)
