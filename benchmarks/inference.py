"""Sentences/s of vega-generate's prediction path vs HF DebertaV2ForSequenceClassification, same weights, SST-2 dev.

    python benchmarks/inference.py --glue-dir $VEGA_GLUE_DIR --vocab-dir MODEL_DIR --arch vega_base
    python benchmarks/inference.py --glue-dir $VEGA_GLUE_DIR --checkpoint runs/glue/SST-2/checkpoint_best.pt

The vega side is exactly what `vega-generate` runs (vega_toolkit.tasks.glue.predict_logits: examples sorted by
length, batches of at most --max-tokens padded tokens, inference_mode). The HF side gets the same weights through
the model engineer's converter (vega_toolkit.models.hf_conversion.convert_to_hf) plus the classification head
(pooler.dense <- head.dense, classifier <- head.out_proj: DeBERTa's ContextPooler has the same shape), and is timed
twice: the usual fixed-size batches in file order, and with the same length-sorted batches (isolates model speed).
Parity (max |logit difference|) is checked before timing. Without --checkpoint a randomly initialised SST-2 model of
--arch is built with the dictionary and sentencepiece model of --vocab-dir (speed does not depend on the weights).
"""

import argparse
import os
import sys
import tempfile
import time

import numpy as np
import torch


def build_checkpoint(args, workdir):
    """A `glue` SST-2 checkpoint of --arch (random init) in fairseq's layout, via fairseq's own parser and task."""
    from fairseq import tasks
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf
    from omegaconf import OmegaConf

    from vega_toolkit.runtime.training import parse_training_args, with_user_dir

    argv = [
        os.path.join(args.glue_dir, "SST-2"),
        "--task",
        "glue",
        "--glue-task",
        "SST-2",
        "--vocab-dir",
        args.vocab_dir,
        "--arch",
        args.arch,
        "--criterion",
        "glue_prediction",
        "--max-positions",
        "512",
        "--max-seq-len",
        str(args.max_seq_len),
        "--cpu",
    ]
    cfg = convert_namespace_to_omegaconf(parse_training_args(with_user_dir(argv)))
    torch.manual_seed(0)
    model = tasks.setup_task(cfg.task).build_model(cfg.model)
    path = os.path.join(workdir, "sst2.pt")
    torch.save(
        {
            "cfg": OmegaConf.to_container(cfg, resolve=True),
            "model": model.state_dict(),
            "args": None,
            "extra_state": {"epoch": 1},
            "optimizer_history": [
                {
                    "criterion_name": "GluePredictionCriterion",
                    "optimizer_name": "Adam",
                    "lr_scheduler_state": {},
                    "num_updates": 0,
                }
            ],
        },
        path,
    )
    return path


def hf_model_from(predictor, workdir):
    """DebertaV2ForSequenceClassification with the predictor's encoder and classification head."""
    import shutil

    from transformers import DebertaV2Config, DebertaV2ForSequenceClassification

    from vega_toolkit.models.hf_conversion import convert_to_hf

    folder = os.path.join(workdir, "vega")
    os.makedirs(folder, exist_ok=True)
    torch.save(
        {
            "cfg": predictor.task_cfg_container,
            "model": predictor.model.state_dict(),
            "args": None,
            "extra_state": {"epoch": 1},
            "optimizer_history": [
                {
                    "criterion_name": "GluePredictionCriterion",
                    "optimizer_name": "Adam",
                    "lr_scheduler_state": {},
                    "num_updates": 0,
                }
            ],
        },
        os.path.join(folder, "model.pt"),
    )
    vocab_dir = predictor.task.cfg.vocab_dir
    for name in ("dict.txt", "spm.model"):
        shutil.copyfile(os.path.join(vocab_dir, name), os.path.join(folder, name))
    hf_dir = convert_to_hf(folder, os.path.join(workdir, "hf"))
    config = DebertaV2Config.from_pretrained(hf_dir, num_labels=predictor.glue.num_classes)
    config.pooler_hidden_size = config.hidden_size
    config.pooler_hidden_act = predictor.model.cfg.pooler_activation_fn
    config.pooler_dropout = 0.0
    hf = DebertaV2ForSequenceClassification(config)
    from safetensors.torch import load_file

    missing, unexpected = hf.load_state_dict(load_file(os.path.join(hf_dir, "model.safetensors")), strict=False)
    head = predictor.model.classification_heads[predictor.head]
    with torch.no_grad():
        hf.pooler.dense.weight.copy_(head.dense.weight)
        hf.pooler.dense.bias.copy_(head.dense.bias)
        hf.classifier.weight.copy_(head.out_proj.weight)
        hf.classifier.bias.copy_(head.out_proj.bias)
    left = [k for k in missing if not k.startswith(("pooler.", "classifier."))]
    if left:
        raise RuntimeError(f"HF model misses converted weights: {left[:5]}")
    # the converter permutes embedding rows into HF's id space (sentencepiece ids): map fairseq ids the same way
    from vega_toolkit.models.hf_conversion import hf_names_from_dictionary

    d = predictor.task.source_dictionary
    names = hf_names_from_dictionary([d[i] for i in range(len(d))], os.path.join(vocab_dir, "spm.model"))
    fs_to_hf = torch.empty(len(d), dtype=torch.long)
    for hf_id, name in enumerate(names):
        fs_to_hf[d.index(name)] = hf_id
    return hf.eval(), fs_to_hf


@torch.inference_mode()
def hf_logits(hf, tokens, pad, batch_size=None, max_tokens=None):
    """HF forward over `tokens` (list of 1-D tensors): fixed-size batches in order, or length-sorted max_tokens ones."""
    from fairseq.data import data_utils

    order = np.argsort([len(t) for t in tokens], kind="stable") if max_tokens else np.arange(len(tokens))
    batches, start = [], 0
    while start < len(order):
        end = start + 1
        if max_tokens:
            while end < len(order) and (end - start + 1) * len(tokens[order[end]]) <= max_tokens:
                end += 1
        else:
            end = min(start + batch_size, len(order))
        batches.append(order[start:end])
        start = end
    out = [None] * len(tokens)
    for idx in batches:
        batch = data_utils.collate_tokens([tokens[i] for i in idx], pad_idx=pad)
        logits = hf(input_ids=batch, attention_mask=batch.ne(pad).long()).logits
        for row, i in enumerate(idx):
            out[i] = logits[row].float()
    return torch.stack(out)


def timed(fn, repeats):
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--glue-dir", default=os.environ.get("VEGA_GLUE_DIR"), help="GLUE folder with SST-2/dev.tsv")
    parser.add_argument("--checkpoint", help="a fine-tuned SST-2 `glue` checkpoint (else: random --arch model)")
    parser.add_argument("--vocab-dir", help="model folder with dict.txt + spm.model (without --checkpoint)")
    parser.add_argument("--arch", default="vega_base", help="architecture of the random model")
    parser.add_argument("--max-seq-len", type=int, default=128, help="truncation (DeBERTa's SST-2 setting)")
    parser.add_argument("--max-tokens", type=int, default=8192, help="vega-generate's padded tokens per batch")
    parser.add_argument("--hf-batch-size", type=int, default=32, help="HF batch size in file order")
    parser.add_argument("--limit", type=int, default=0, help="only the first N dev sentences (0 = all 872)")
    parser.add_argument("--repeats", type=int, default=2, help="timed runs per system (best is reported)")
    parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0 = torch default)")
    args = parser.parse_args(argv)
    if not args.glue_dir:
        sys.exit("inference.py: pass --glue-dir or set VEGA_GLUE_DIR")
    if not args.checkpoint and not args.vocab_dir:
        sys.exit("inference.py: pass --checkpoint, or --vocab-dir for a randomly initialised --arch model")
    if args.threads:
        torch.set_num_threads(args.threads)

    from omegaconf import OmegaConf

    import vega_toolkit  # noqa: F401
    from vega_toolkit.data.glue_binarize import EncodedSplit
    from vega_toolkit.io.checkpoints import load_checkpoint_to_cpu
    from vega_toolkit.models.glue_predictor import GluePredictor

    with tempfile.TemporaryDirectory() as workdir:
        path = args.checkpoint or build_checkpoint(args, workdir)
        predictor = GluePredictor.from_checkpoint(
            path, glue_dir=args.glue_dir, device="cpu", cache_dir=os.path.join(workdir, "cache")
        )
        cfg = load_checkpoint_to_cpu(path)["cfg"]
        predictor.task_cfg_container = OmegaConf.to_container(cfg, resolve=True)
        encoded = predictor.task.encoded_split("valid")
        if args.limit:
            encoded = EncodedSplit(
                encoded.a[: args.limit], None, encoded.labels[: args.limit], encoded.indices[: args.limit]
            )
        enc = predictor.task.encoder
        tokens = [encoded.tokens(i, enc.bos, enc.eos, predictor.task.max_length) for i in range(len(encoded))]
        hf, fs_to_hf = hf_model_from(predictor, workdir)
        hf_tokens = [fs_to_hf[t] for t in tokens]
        hf_pad = int(fs_to_hf[enc.pad])

        vega_out = predictor.logits_for(encoded, args.max_tokens)
        hf_out = hf_logits(hf, hf_tokens, hf_pad, batch_size=args.hf_batch_size)
        diff = (vega_out - hf_out).abs().max().item()
        agree = (vega_out.argmax(-1) == hf_out.argmax(-1)).float().mean().item()
        n = len(tokens)
        t_vega, _ = timed(lambda: predictor.logits_for(encoded, args.max_tokens), args.repeats)
        t_hf, _ = timed(lambda: hf_logits(hf, hf_tokens, hf_pad, batch_size=args.hf_batch_size), args.repeats)
        t_hf_sorted, _ = timed(lambda: hf_logits(hf, hf_tokens, hf_pad, max_tokens=args.max_tokens), args.repeats)
        params = sum(p.numel() for p in predictor.model.parameters()) / 1e6
        arch = predictor.model.cfg.get("_name", "?") if hasattr(predictor.model.cfg, "get") else "?"
        print(
            f"SST-2 dev: {n} sentences, arch {arch}"
            f" ({params:.1f}M params), torch threads {torch.get_num_threads()}, max_seq_len {predictor.task.max_length}"
        )
        print(f"parity: max |logit diff| {diff:.2e}, argmax agreement {100 * agree:.1f}%")
        print(f"{'system':<58} {'sent/s':>9} {'speedup':>8}")
        for name, t in (
            ("vega-generate path (length-sorted, max_tokens batches)", t_vega),
            (f"HF DebertaV2ForSequenceClassification (batch {args.hf_batch_size}, file order)", t_hf),
            ("HF DebertaV2ForSequenceClassification (same sorted batches)", t_hf_sorted),
        ):
            print(f"{name:<58} {n / t:>9.1f} {t_hf / t:>7.2f}x")


if __name__ == "__main__":
    main()
