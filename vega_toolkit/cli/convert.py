"""`vega-convert`: DeBERTa-v2/v3 checkpoints <-> vega model folders, and parameter counts of architectures.

    vega-convert from-hf HF_DIR OUT_DIR          # config.json + model.safetensors|pytorch_model.bin + spm.model
    vega-convert to-hf MODEL_DIR OUT_DIR         # model.pt + dict.txt + spm.model -> DebertaV2ForMaskedLM folder
    vega-convert count-params --arch vega_v1_1_3b [--vocab-size 128100]
    vega-convert export CHECKPOINT --data-bin DATA_BIN OUT_DIR     # pretraining checkpoint -> model folder
    vega-convert export --random-init --arch vega_tiny --seed 1 --data-bin DATA_BIN OUT_DIR   # untrained, same spm

count-params builds the model on the meta device (no memory, no init time) and prints the total, the embedding
part, the encoder body (layers + relative table: the "backbone" DeBERTa's README quotes) and the LM head.
"""

import argparse
import logging
import os
import sys

from vega_toolkit.errors import UserError, check_not_overwriting, check_output_dir, console_script

HF_FILES = ("config.json", "model.safetensors", "spm.model", "tokenizer_config.json")
MODEL_FOLDER_FILES = ("model.pt", "dict.txt", "spm.model")
FORCE_HELP = "overwrite the files of an existing output folder"


def count_parameters(arch: str, vocab_size: int = 128100):
    """(total, embedding, lm_head, body) parameter counts of ``arch`` with ``vocab_size`` rows (tied LM head)."""
    import torch
    from fairseq.data import Dictionary
    from fairseq.models import ARCH_CONFIG_REGISTRY, ARCH_MODEL_REGISTRY

    import vega_toolkit  # noqa: F401
    from vega_toolkit.models.vega_encoder import VegaEncoder, VegaEncoderConfig

    if arch not in ARCH_MODEL_REGISTRY or not arch.startswith("vega"):
        raise UserError(f"--arch {arch!r} is not a vega_encoder architecture")
    args = argparse.Namespace()
    if arch in ARCH_CONFIG_REGISTRY:
        ARCH_CONFIG_REGISTRY[arch](args)
    cfg = VegaEncoderConfig(**{k: v for k, v in vars(args).items() if k in VegaEncoderConfig.__dataclass_fields__})
    dictionary = Dictionary()
    for i in range(vocab_size - len(dictionary)):
        dictionary.add_symbol(f"w{i}")
    with torch.device("meta"):
        encoder = VegaEncoder(cfg, dictionary)
    total = sum(p.numel() for p in encoder.parameters())  # the tied LM weight is counted once
    embedding = encoder.embed_tokens.weight.numel()
    lm_head = sum(p.numel() for n, p in encoder.lm_head.named_parameters() if n != "weight")
    return total, embedding, lm_head, total - embedding - lm_head


@console_script("vega-convert")
def cli_main(argv=None):
    logging.basicConfig(format="%(asctime)s | %(levelname)s | %(name)s | %(message)s", level=logging.INFO)
    parser = argparse.ArgumentParser(prog="vega-convert", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("from-hf", help="HF DeBERTa-v2/v3 folder -> vega model folder")
    p.add_argument("hf_dir")
    p.add_argument("out_dir")
    p.add_argument("--force", action="store_true", help=FORCE_HELP)
    p = sub.add_parser(
        "to-hf",
        help="vega model folder -> HF DebertaV2ForMaskedLM folder (a fine-tuned model: "
        "DebertaV2ForSequenceClassification)",
    )
    p.add_argument("model_dir")
    p.add_argument("out_dir")
    p.add_argument("--force", action="store_true", help=FORCE_HELP)
    p.add_argument("--checkpoint-file", default="model.pt", help="checkpoint inside MODEL_DIR (default model.pt)")
    p = sub.add_parser("count-params", help="parameter count of a vega architecture")
    p.add_argument("--arch", required=True)
    p.add_argument("--vocab-size", type=int, default=128100, help="vocabulary rows (DeBERTa-v3 spm: 128100)")
    p = sub.add_parser("export", help="pretraining checkpoint (or --random-init) -> model folder for the GLUE recipes")
    p.add_argument(
        "paths",
        nargs="+",
        metavar="[CHECKPOINT] OUT_DIR",
        help="vega-train checkpoint (denoising_pretrain or masked_lm; omitted with --random-init), then "
        "the model folder to write",
    )
    p.add_argument(
        "--data-bin",
        required=True,
        help="the data-bin the model was (or would be) pretrained on: its dict.txt and spm.model go into the folder",
    )
    p.add_argument("--random-init", action="store_true", help="no checkpoint: a freshly initialised --arch")
    p.add_argument("--arch", help="architecture of --random-init (e.g. vega_tiny)")
    p.add_argument("--seed", type=int, default=1, help="initialisation seed of --random-init")
    p.add_argument("--force", action="store_true", help=FORCE_HELP)
    # argparse cannot split one positional list around options (`export CKPT --data-bin D OUT`): gather the rest
    args, rest = parser.parse_known_args(argv)
    if rest and (args.command != "export" or any(r.startswith("-") for r in rest)):
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    if args.command == "export":
        args.paths += rest
        if len(args.paths) != (1 if args.random_init else 2):
            parser.error("export takes CHECKPOINT OUT_DIR, or --random-init --arch NAME OUT_DIR")
        if args.random_init and not args.arch:
            parser.error("export --random-init needs --arch")

    # every output is checked before anything is read or written: a file in place of the folder, the output
    # folder being an input (one conversion had written into the model folder before failing), earlier results
    if args.command == "from-hf":
        from vega_toolkit.models.hf_conversion import convert_from_hf

        check_output_dir(args.out_dir, "OUT_DIR", [args.hf_dir])
        check_not_overwriting(args.out_dir, MODEL_FOLDER_FILES, args.force)
        try:
            print(convert_from_hf(args.hf_dir, args.out_dir))
        except (FileNotFoundError, ValueError) as err:
            raise UserError(f"vega-convert from-hf: {err}") from err  # a folder it cannot convert: says why
    elif args.command == "to-hf":
        from vega_toolkit.models.hf_conversion import convert_to_hf

        check_output_dir(args.out_dir, "OUT_DIR", [args.model_dir])
        check_not_overwriting(args.out_dir, HF_FILES, args.force)
        try:
            print(convert_to_hf(args.model_dir, args.out_dir, args.checkpoint_file))
        except (FileNotFoundError, ValueError) as err:
            raise UserError(f"vega-convert to-hf: {err}") from err
    elif args.command == "export":
        from vega_toolkit.models.model_folder import export_checkpoint, export_random_init

        out_dir = args.paths[-1]
        inputs = [args.data_bin] + ([os.path.dirname(os.path.abspath(args.paths[0]))] if not args.random_init else [])
        check_output_dir(out_dir, "OUT_DIR", inputs)
        check_not_overwriting(out_dir, MODEL_FOLDER_FILES, args.force)
        try:
            if args.random_init:
                print(export_random_init(args.arch, args.data_bin, out_dir, args.seed))
            else:
                print(export_checkpoint(args.paths[0], args.data_bin, out_dir))
        except (ValueError, FileNotFoundError) as e:
            raise UserError(f"vega-convert export: {e}") from e
    else:
        total, embedding, lm_head, body = count_parameters(args.arch, args.vocab_size)
        print(
            f"{args.arch}: {total:,} parameters ({total / 1e9:.3f}B) = word embedding {embedding:,} "
            f"+ encoder body {body:,} ({body / 1e9:.3f}B) + LM head {lm_head:,} "
            f"(vocab {args.vocab_size}, output embedding tied, no task heads)"
        )


if __name__ == "__main__":
    sys.exit(cli_main())
