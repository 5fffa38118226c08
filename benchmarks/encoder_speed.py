"""Training-step speed and memory: vega_encoder vs HF DebertaV2Model vs a plain SDPA encoder (no relative terms).

    OMP_NUM_THREADS=2 python benchmarks/encoder_speed.py                       # CPU, fp32
    OMP_NUM_THREADS=1 python benchmarks/encoder_speed.py --clock process --stat min --reps 7   # shared, loaded CPU
    OMP_NUM_THREADS=1 python benchmarks/encoder_speed.py --dim 768 --heads 12 --clock process --stat min
    python benchmarks/encoder_speed.py --device cuda --dtype bf16 --layers 12 --dim 768 --heads 12
    python benchmarks/encoder_speed.py --device cuda --dtype bf16 --layers 12 --dim 768 --heads 12 \
        --vega-impls sdpa,fused,reference --lengths 2048,4096 --max-positions 4096 --tokens 65536
    python benchmarks/encoder_speed.py --device cuda --dtype bf16 --layers 12 --dim 768 --heads 12 \
        --models vega,plain --vega-impls fused,sdpa --lengths 512,128          # no HF (83.7 GiB at L = 512)

What a step is, how repetitions are interleaved, OOM/error rows and what "memory" means on CPU and CUDA:
docs/design.md#benchmark-encoder-training-step.
"""

import argparse
import logging
import statistics
import sys
import time
import traceback

import torch
import torch.nn.functional as F
from torch import nn


class PlainSDPAEncoder(nn.Module):
    """Post-LN encoder of the same shape without relative terms: the speed of light for this width/depth."""

    def __init__(self, vocab, dim, heads, ffn, layers, dropout=0.1):
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.embed = nn.Embedding(vocab, dim)
        self.ln = nn.LayerNorm(dim, eps=1e-7)
        self.layers = nn.ModuleList(
            nn.ModuleDict(
                dict(
                    qkv=nn.Linear(dim, 3 * dim),
                    out=nn.Linear(dim, dim),
                    ln1=nn.LayerNorm(dim, eps=1e-7),
                    fc1=nn.Linear(dim, ffn),
                    fc2=nn.Linear(ffn, dim),
                    ln2=nn.LayerNorm(dim, eps=1e-7),
                )
            )
            for _ in range(layers)
        )

    def forward(self, tokens):
        x = F.dropout(self.ln(self.embed(tokens)), self.dropout, self.training)
        b, t, d = x.shape
        for layer in self.layers:
            q, k, v = layer["qkv"](x).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
            a = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0)
            a = layer["out"](a.transpose(1, 2).reshape(b, t, d))
            x = layer["ln1"](x + F.dropout(a, self.dropout, self.training))
            h = layer["fc2"](F.gelu(layer["fc1"](x)))
            x = layer["ln2"](x + F.dropout(h, self.dropout, self.training))
        return x


# Rows, timed in the order given: "vega" once per --vega-impls entry, "vega:<impl>" one implementation (so that a
# row likely to run out of memory can come last), "hf", "plain".
MODELS = ("vega", "hf", "plain")


def build_models(args):
    """The step functions of the chosen rows and every module to move / zero (HF's config converts to vega's)."""
    import transformers
    from fairseq.data import Dictionary

    from vega_toolkit.models.hf_conversion import vega_config_from_hf, vega_state_from_hf
    from vega_toolkit.models.vega_encoder import VegaEncoder, VegaEncoderConfig, VegaEncoderModel

    models = args.models.split(",")
    hf_config = transformers.DebertaV2Config(
        vocab_size=args.vocab,
        hidden_size=args.dim,
        num_hidden_layers=args.layers,
        num_attention_heads=args.heads,
        intermediate_size=4 * args.dim,
        max_position_embeddings=args.max_positions,
        max_relative_positions=512,
        relative_attention=True,
        position_buckets=256,
        norm_rel_ebd="layer_norm",
        share_att_key=True,
        pos_att_type=["p2c", "c2p"],
        position_biased_input=False,
        type_vocab_size=0,
        layer_norm_eps=1e-7,
        hidden_act="gelu",
    )
    torch.manual_seed(0)
    hf = transformers.DebertaV2Model(hf_config)  # built even when not timed: vega takes its weights
    fns, modules = {}, []
    vega = None
    for model in models:
        if model.startswith("vega"):
            if vega is None:
                dictionary = Dictionary()
                for i in range(args.vocab - len(dictionary)):
                    dictionary.add_symbol(f"w{i}")
                cfg = VegaEncoderConfig(**vega_config_from_hf(hf_config.to_dict()))
                vega = VegaEncoderModel(cfg, VegaEncoder(cfg, dictionary))
                vega.load_state_dict(vega_state_from_hf(hf.state_dict(), list(range(args.vocab))))  # HF's weights
                modules.append(vega)
            impls = args.vega_impls.split(",") if model == "vega" else [model.split(":", 1)[1]]
            fns.update({f"vega_encoder {impl}": vega_with(vega, impl) for impl in impls})
        elif model == "hf":
            fns["HF DebertaV2Model"] = lambda t: hf(input_ids=t).last_hidden_state
            modules.append(hf)
        else:
            plain = PlainSDPAEncoder(args.vocab, args.dim, args.heads, 4 * args.dim, args.layers)
            fns["plain SDPA encoder"] = plain
            modules.append(plain)
    return fns, modules


def vega_with(vega, impl):
    """The vega model's forward with every layer switched to attention implementation ``impl`` (same weights)."""

    def forward(tokens):
        vega.encoder.set_attention_impl(impl)
        return vega(tokens, features_only=True)[0]

    return forward


def saved_bytes(fn, tokens):
    """Bytes of the distinct tensors autograd saves during the forward (CPU memory proxy)."""
    seen = {}

    def pack(t):
        seen[(t.untyped_storage().data_ptr(), t.device)] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn(tokens)
    del out
    return sum(seen.values())


def warm_up(fn, tokens, args, modules):
    """One untimed step, then the memory of one step: peak allocated on CUDA, saved-for-backward bytes on CPU."""
    for m in modules:
        m.zero_grad(set_to_none=True)
    try:
        step(fn, tokens, args)
        if not args.device.startswith("cuda"):
            with torch.autocast(args.device, dtype=torch.bfloat16, enabled=args.dtype == "bf16"):
                return saved_bytes(fn, tokens)
        torch.cuda.reset_peak_memory_stats()
        step(fn, tokens, args)
        return torch.cuda.max_memory_allocated()
    finally:
        for m in modules:
            m.zero_grad(set_to_none=True)
        if args.device.startswith("cuda"):
            torch.cuda.empty_cache()


def guarded(name, length, action):
    """Run ``action``; on failure, the row's text (OOM, or ERR: <type> with the traceback on stderr) instead of
    ending the run: a Triton compile or resource error in one model must not take the other rows with it."""
    try:
        action()
        return None
    except torch.OutOfMemoryError:
        return "OOM"
    except Exception as error:  # noqa: BLE001 -- reported in the table and on stderr, the run goes on
        print(f"{name} at L = {length}: {type(error).__name__}", file=sys.stderr)
        traceback.print_exc()
        return f"ERR: {type(error).__name__}"
    finally:
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def timed_step(fn, tokens, args, modules, clock, sync):
    for m in modules:
        m.zero_grad(set_to_none=True)
    sync()
    start = clock()
    step(fn, tokens, args)
    sync()
    return clock() - start


def step(fn, tokens, args):
    with torch.autocast(args.device, dtype=torch.bfloat16, enabled=args.dtype == "bf16"):
        out = fn(tokens)
    out.float().pow(2).mean().backward()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32")
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--dim", type=int, default=384)
    p.add_argument("--heads", type=int, default=6)
    p.add_argument("--vocab", type=int, default=8000)
    p.add_argument("--tokens", type=int, default=2048, help="tokens per batch: batch = tokens / L")
    p.add_argument("--lengths", default="128,512")
    p.add_argument("--max-positions", type=int, default=512, help="longest length the models accept")
    p.add_argument(
        "--models",
        default="vega,hf,plain",
        help="comma-separated rows in the order to run them: vega (once per --vega-impls), vega:<impl>, hf, plain",
    )
    p.add_argument(
        "--vega-impls",
        default="sdpa",
        help="comma-separated --attention-impl values to measure for vega (sdpa, reference, fused)",
    )
    p.add_argument(
        "--bias-block",
        type=int,
        default=0,
        help="query rows per GEMM of vega's relative bias (0: DisentangledSelfAttention's BLOCK / CUDA_BLOCK)",
    )
    p.add_argument("--reps", type=int, default=5)
    p.add_argument(
        "--stat",
        choices=["median", "min"],
        default="median",
        help="statistic over the repetitions (min: on a loaded machine noise only ever adds time)",
    )
    p.add_argument(
        "--clock",
        choices=["wall", "process"],
        default="wall",
        help="process: CPU time of this process (time.process_time), robust on a shared, loaded machine "
        "when run with one thread; with N threads it sums their CPU time, so use wall there",
    )
    args = p.parse_args()
    from vega_toolkit.modules.disentangled_attention import ATTENTION_IMPLS

    known = set(MODELS) | {f"vega:{impl}" for impl in ATTENTION_IMPLS}
    unknown = set(args.models.split(",")) - known
    if unknown:
        p.error(f"--models: unknown {sorted(unknown)} (choose from {', '.join(sorted(known))})")
    # the fused kernel logs each compiled kernel's registers, spills and shared memory once (INFO)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s", stream=sys.stderr)

    if args.bias_block:
        from vega_toolkit.modules.disentangled_attention import DisentangledSelfAttention

        DisentangledSelfAttention.BLOCK = DisentangledSelfAttention.CUDA_BLOCK = args.bias_block
    fns, modules = build_models(args)
    for m in modules:
        m.to(args.device).train()
    clock = time.process_time if args.clock == "process" else time.perf_counter
    sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)
    mem_label = "peak MiB" if args.device.startswith("cuda") else "saved-for-backward MiB"
    # Rows are printed as each length finishes: a run stopped by a timeout keeps the lengths it measured.
    print(
        f"\n{args.layers} layers x {args.dim} hidden, {args.heads} heads, {args.device} {args.dtype}, "
        f"torch {torch.__version__}, threads {torch.get_num_threads()}, {args.clock} clock, "
        f"{args.stat} of {args.reps} interleaved reps, vega bias block {args.bias_block or 'default'}\n"
    )
    print(f"| L | batch | model | fwd+bwd ms | {mem_label} | speed vs HF | time vs plain SDPA |")
    print("|---|---|---|---|---|---|---|", flush=True)
    for length in map(int, args.lengths.split(",")):
        tokens = torch.randint(4, args.vocab, (max(1, args.tokens // length), length), device=args.device)
        memory, failed = {}, {}
        for name, fn in fns.items():  # warm-up + memory
            failure = guarded(name, length, lambda: memory.__setitem__(name, warm_up(fn, tokens, args, modules)))
            if failure:
                failed[name] = failure
        times = {name: [] for name in fns if name not in failed}
        for _ in range(args.reps):  # interleaved repetitions
            for name in [n for n in times if n not in failed]:
                failure = guarded(
                    name, length, lambda: times[name].append(timed_step(fns[name], tokens, args, modules, clock, sync))
                )
                if failure:
                    failed[name] = failure
        stat = statistics.median if args.stat == "median" else min
        med = {name: stat(t) for name, t in times.items() if name not in failed}
        hf, plain = med.get("HF DebertaV2Model"), med.get("plain SDPA encoder")
        for name in fns:
            batch = tokens.size(0)
            if name in failed:
                print(f"| {length} | {batch} | {name} | {failed[name]} | {failed[name]} | - | - |", flush=True)
                continue
            sec = med[name]
            hf_failure = failed.get("HF DebertaV2Model")
            vs_hf = f"{hf / sec:.2f}x" if hf else f"HF {hf_failure}" if hf_failure else "-"
            vs_plain = f"{sec / plain:.2f}x" if plain else "-"
            print(
                f"| {length} | {batch} | {name} | {sec * 1e3:.1f} | {memory[name] / 2**20:.1f} | {vs_hf} | "
                f"{vs_plain} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
