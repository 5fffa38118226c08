"""Pretraining step time and peak memory: RTD (rtd_ternary), RTD + contrastive (rtd_contrastive), MLM (masked_lm),
and the generator objectives: ELECTRA-style RTD (rtd_electra, GDES and ES) and RTD with generator replacements
(rtd_ternary --replace-with generator).

    OMP_NUM_THREADS=2 python benchmarks/pretrain_step.py                     # CPU: 2 layers, B=4, L=512, V=128k
    python benchmarks/pretrain_step.py --device cuda --layers 12 --batch-size 32 --bf16

Each objective runs in its own subprocess through fairseq's Trainer on a vega_base-width encoder; median over
interleaved steps. Method and the corruption share: docs/design.md#benchmark-pretraining-step-per-objective.
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

OBJECTIVES = {  # name: (task, criterion, criterion flags)
    "RTD": ("denoising_pretrain", "rtd_ternary", ()),
    "RTD+contrastive": ("denoising_pretrain", "rtd_contrastive", ()),
    "MLM": ("masked_lm", "masked_lm", ()),
    "ELECTRA (gdes)": ("denoising_pretrain", "rtd_electra", ("--embedding-sharing", "gdes")),
    "ELECTRA (es)": ("denoising_pretrain", "rtd_electra", ("--embedding-sharing", "es")),
    "RTD+generator": ("denoising_pretrain", "rtd_ternary", ("--replace-with", "generator")),
}


def write_dictionary(directory, vocab):
    with open(os.path.join(directory, "dict.txt"), "w") as f:
        for i in range(vocab - 4):  # fairseq adds <s> <pad> </s> <unk>
            f.write(f"w{i} {vocab - i}\n")


def random_blocks(dictionary, batch_size, length, seed):
    import torch

    g = torch.Generator().manual_seed(seed)
    blocks = torch.randint(dictionary.nspecial, len(dictionary) - 1, (batch_size, length), generator=g)
    blocks[:, 0], blocks[:, -1] = dictionary.bos(), dictionary.eos()
    return list(blocks)


def build_batch(task, criterion_name, blocks, seed, epoch):
    """The batch the task's data pipeline would produce; returns (sample, seconds spent building it)."""
    import torch
    from fairseq.data import MaskTokensDataset, data_utils

    from vega_toolkit.data.noising import RTDNoisingDataset

    class Blocks(torch.utils.data.Dataset):
        sizes = [len(b) for b in blocks]

        def __getitem__(self, i):
            return blocks[i]

        def __len__(self):
            return len(blocks)

    d = task.source_dictionary
    start = time.perf_counter()
    if criterion_name.startswith("rtd"):
        ds = RTDNoisingDataset(Blocks(), task.noiser, d.pad(), seed=seed)
        ds.set_epoch(epoch)
        sample = ds.collater([ds[i] for i in range(len(blocks))])
    else:
        src, tgt = MaskTokensDataset.apply_mask(
            Blocks(), d, pad_idx=d.pad(), mask_idx=task.mask_idx, seed=seed, mask_prob=0.15
        )
        src.set_epoch(epoch)
        tgt.set_epoch(epoch)
        src_tokens = data_utils.collate_tokens([src[i] for i in range(len(blocks))], d.pad())
        sample = {
            "id": torch.arange(len(blocks)),
            "net_input": {"src_tokens": src_tokens, "src_lengths": (src_tokens != d.pad()).sum(1)},
            "target": data_utils.collate_tokens([tgt[i] for i in range(len(blocks))], d.pad()),
            "nsentences": len(blocks),
            "ntokens": int((src_tokens != d.pad()).sum()),
        }
    return sample, time.perf_counter() - start


def serve(args):
    """Child process: build one objective, then run one step per "step" line on stdin (JSON timing on stdout);
    "stats" prints peak memory and the batched-noiser time and exits."""
    import torch
    from fairseq import tasks
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf
    from fairseq.trainer import Trainer

    from vega_toolkit.data.noising import seeded_generator
    from vega_toolkit.runtime.training import parse_training_args

    task_name, criterion_name, criterion_flags = OBJECTIVES[args.objective]
    with tempfile.TemporaryDirectory() as data:
        write_dictionary(data, args.vocab)
        argv = [
            data,
            "--task",
            task_name,
            "--criterion",
            criterion_name,
            *criterion_flags,
            "--arch",
            "vega_base",
            "--encoder-layers",
            str(args.layers),
            "--tokens-per-sample",
            str(args.length),
            "--batch-size",
            str(args.batch_size),
            "--optimizer",
            "adam",
            "--lr",
            "1e-4",
            "--seed",
            "1",
        ]
        argv += ["--cpu"] if args.device == "cpu" else (["--bf16"] if args.bf16 else [])
        cfg = convert_namespace_to_omegaconf(parse_training_args(argv))
        task = tasks.setup_task(cfg.task)
        model = task.build_model(cfg.model)
        criterion = task.build_criterion(cfg.criterion)
        trainer = Trainer(cfg, task, model, criterion)
    blocks = random_blocks(task.source_dictionary, args.batch_size, args.length, seed=0)
    print("ready", flush=True)
    step = 0
    for line in sys.stdin:
        if line.strip() == "step":
            step += 1
            sample, build_s = build_batch(task, criterion_name, blocks, seed=1, epoch=step)
            if args.device == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            trainer.train_step([sample])
            if args.device == "cuda":
                torch.cuda.synchronize()
            print(json.dumps({"step_s": time.perf_counter() - start, "build_s": build_s}), flush=True)
        elif line.strip() == "stats":
            break
    result = {}
    if args.device == "cuda":
        result["peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
    else:
        result["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if criterion_name.startswith("rtd"):
        stacked = torch.stack(blocks)
        times = []
        for i in range(5):
            start = time.perf_counter()
            task.noiser(stacked, generator=seeded_generator(1, i, 0))
            times.append(time.perf_counter() - start)
        result["batched_noise_s"] = statistics.median(times)
    print(json.dumps(result), flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--layers", type=int, default=2, help="encoder layers (vega_base has 12)")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--length", type=int, default=512, help="tokens per sequence, <s> and </s> included")
    parser.add_argument("--vocab", type=int, default=128_000, help="dictionary size")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--bf16", action="store_true", help="CUDA only")
    parser.add_argument(
        "--objectives",
        default=",".join(OBJECTIVES),
        help=f"comma-separated subset of: {', '.join(OBJECTIVES)} (MLM is the reference, always run)",
    )
    parser.add_argument("--objective", choices=list(OBJECTIVES), help=argparse.SUPPRESS)  # child mode
    args = parser.parse_args()
    if args.objective:
        return serve(args)
    chosen = [o.strip() for o in args.objectives.split(",") if o.strip()]
    unknown = [o for o in chosen if o not in OBJECTIVES]
    if unknown:
        parser.error(f"--objectives: unknown {', '.join(unknown)} (choose from {', '.join(OBJECTIVES)})")
    objectives = [o for o in OBJECTIVES if o in chosen or o == "MLM"]

    # All children stay alive and step in turn (RTD, RTD+contrastive, MLM, ..., RTD, ...), so that load from
    # other processes on the machine hits every objective alike; the median per objective is reported.
    children = {}
    forwarded = []
    skip = False
    for a in sys.argv[1:]:  # the parent's flags minus --objectives
        if skip or a.startswith("--objectives="):
            skip = False
            continue
        if a == "--objectives":
            skip = True
            continue
        forwarded.append(a)
    for objective in objectives:
        child = [sys.executable, __file__, "--objective", objective] + forwarded
        children[objective] = subprocess.Popen(child, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def ask(objective, command):
        proc = children[objective]
        proc.stdin.write(command + "\n")
        proc.stdin.flush()
        line = proc.stdout.readline()
        if not line:
            sys.exit(f"{objective} child died (see its stderr above)")
        return json.loads(line)

    for objective, proc in children.items():
        if proc.stdout.readline().strip() != "ready":
            sys.exit(f"{objective} child failed to start")
    times = {objective: [] for objective in objectives}
    for step in range(args.warmup + args.steps):
        for objective in objectives:
            timing = ask(objective, "step")
            if step >= args.warmup:
                times[objective].append(timing)
    results = {}
    for objective, proc in children.items():
        results[objective] = ask(objective, "stats")
        results[objective]["step_s"] = statistics.median(t["step_s"] for t in times[objective])
        results[objective]["build_s"] = statistics.median(t["build_s"] for t in times[objective])
        proc.wait()

    mlm = results["MLM"]["step_s"]
    print(
        f"device {args.device}, vega_base width (768) x {args.layers} layers, B={args.batch_size}, "
        f"L={args.length}, V={args.vocab}, median of {args.steps} steps\n"
    )
    print("| objective | step (s) | vs MLM | peak memory (MB) | batch build (s) | build % of step |")
    print("|---|---|---|---|---|---|")
    for name, r in results.items():
        print(
            f"| {name} | {r['step_s']:.3f} | {r['step_s'] / mlm:.2f}x | {r['peak_mb']:.0f} | {r['build_s']:.4f} | "
            f"{100 * r['build_s'] / r['step_s']:.2f}% |"
        )
    if "RTD" not in results:
        return
    rtd = results["RTD"]
    print(
        f"\nRTD corruption (task path: per-item noise + collate): {1000 * rtd['build_s']:.1f} ms = "
        f"{100 * rtd['build_s'] / rtd['step_s']:.2f}% of the RTD step; one batched noiser call: "
        f"{1000 * rtd['batched_noise_s']:.1f} ms = {100 * rtd['batched_noise_s'] / rtd['step_s']:.2f}%"
    )
    print(
        f"targets: RTD step <= 0.8x MLM -> {rtd['step_s'] / mlm:.2f}x; corruption <= 3% -> "
        f"{100 * rtd['build_s'] / rtd['step_s']:.2f}%"
    )


if __name__ == "__main__":
    main()
