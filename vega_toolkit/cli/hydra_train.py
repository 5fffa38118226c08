"""`vega-hydra-train`: fairseq-hydra-train with the vega plugins loaded and the shipped configs found by name.

    vega-hydra-train --config-name phase1_tiny task.data=data-bin/gutenberg checkpoint.save_dir=ckpt/phase1
    vega-hydra-train --config-name sst2 task.data=glue_data/SST-2 task.vocab_dir=vega-model \
        checkpoint.finetune_from_model=vega-model/model.pt
    vega-hydra-train --config-name sst2 ... -m 'optimization.lr=[1e-5],[2e-5]' common.seed=1,2,3   # a sweep
    vega-hydra-train --config-name sst2 ... -m hydra/launcher=submitit_slurm ...                    # ... on SLURM

The same configs run with stock fairseq (the plugins found through `common.user_dir`):

    fairseq-hydra-train --config-dir "$(vega-config-dir)/glue" --config-name sst2 \
        common.user_dir="$(dirname "$(vega-config-dir)")" task.data=...

Differences from stock `fairseq-hydra-train` (config dir found by name, a GLUE config without a pretrained model
is an error, each job of a local sweep starts clean, rounds run their whole loop, Hydra's version_base):
docs/design.md#vega-hydra-train. The training guards (docs/design.md#training-guards) apply.
"""

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from vega_toolkit.errors import UserError, console_script
from vega_toolkit.runtime.training import PLUGIN_DIR

CONF_DIR = Path(PLUGIN_DIR) / "conf"


def shipped_config_dir(config_name: str) -> Path | None:
    """The shipped folder holding `<config_name>.yaml` (names are unique across the folders), or None."""
    found = sorted(CONF_DIR.glob(f"*/{config_name}.yaml"))
    return found[0].parent if found else None


def _option(argv: list[str], *names: str) -> str | None:
    """The value of a Hydra command-line option (`--config-name X`, `--config-name=X`, `-cn X`)."""
    for i, arg in enumerate(argv):
        for name in names:
            if arg == name and i + 1 < len(argv):
                return argv[i + 1]
            if arg.startswith(name + "="):
                return arg.split("=", 1)[1]
    return None


# Hydra's options that take a value (`--info` takes one only from its list)
_VALUE_OPTIONS = {
    "--config-name",
    "-cn",
    "--config-dir",
    "-cd",
    "--config-path",
    "-cp",
    "--cfg",
    "-c",
    "--package",
    "-p",
    "--experimental-rerun",
}
_INFO_VALUES = {"all", "config", "defaults", "defaults-tree", "plugins", "searchpath"}


def options_first(argv: list[str]) -> list[str]:
    """Hydra's options before its overrides: its parser rejects overrides followed by an option (`x=1 -m`).
    An argument that is no override (a bare path) is a UserError: Hydra's parser error never says what to write."""
    options, overrides, i = [], [], 0
    while i < len(argv):
        arg = argv[i]
        takes_value = arg in _VALUE_OPTIONS or (arg == "--info" and i + 1 < len(argv) and argv[i + 1] in _INFO_VALUES)
        if arg.startswith("-") and not arg.startswith(("++", "+")):
            options += argv[i : i + 2] if takes_value else [arg]
            i += 2 if takes_value else 1
        else:
            if "=" not in arg and not arg.startswith("~"):
                raise UserError(f"{arg!r} is not a Hydra override KEY=VALUE (e.g. task.data={arg})")
            overrides.append(arg)
            i += 1
    return options + overrides


def _overridden(argv: list[str], key: str) -> bool:
    return any(a.lstrip("+~").startswith(key + "=") for a in argv)


def hydra_argv(argv: list[str]) -> list[str]:
    """`argv` plus what vega-hydra-train adds: the shipped config folder, `common.user_dir` and
    `hydra.job.chdir=False`, unless given; Hydra's options are moved before the overrides. A --config-name that
    names no config is a UserError here (Hydra's own error never names it)."""
    argv = options_first(list(argv))
    name = _option(argv, "--config-name", "-cn")
    folder = _option(argv, "--config-dir", "-cd")
    if name and folder is None:
        folder = shipped_config_dir(name)
        if folder is None:
            raise UserError(
                f"--config-name {name}: no such config; the shipped ones are "
                f"{', '.join(shipped_config_names())} (or give --config-dir FOLDER holding {name}.yaml)"
            )
        argv = ["--config-dir", str(folder)] + argv
    elif name and not any(os.path.isfile(os.path.join(folder, name + ext)) for ext in (".yaml", ".yml")):
        raise UserError(f"--config-name {name}: --config-dir {folder} has no {name}.yaml")
    if not _overridden(argv, "common.user_dir"):
        argv.append(f"common.user_dir={PLUGIN_DIR}")
    return [shell_relative(a) for a in argv]


# Overrides naming files or folders. Hydra (version_base 1.1, which fairseq needs) runs the job inside
# outputs/<date>/<time>, so a relative path given on the command line would mean a folder there, not the one it
# names in the user's shell (and the log would still print it as given).
PATH_KEYS = {
    "task.data",
    "task.vocab_dir",
    "task.glue_cache_dir",
    "task.external_data",
    "task.selection_general",
    "task.extra_train_data",
    "checkpoint.save_dir",
    "checkpoint.finetune_from_model",
    "checkpoint.restore_file",
    "common.tensorboard_logdir",
    "common.user_dir",
}


def shell_relative(arg: str) -> str:
    """A path override with its relative path(s) made absolute against the shell's folder (`:`-separated lists
    too). Sweeps (`a,b`), interpolations and `checkpoint.restore_file=checkpoint_last.pt` (fairseq reads it inside
    the save dir) stay as given; so does the default save dir, which stays inside Hydra's run folder."""
    key, sep, value = arg.partition("=")
    if (
        not sep
        or key.lstrip("+") not in PATH_KEYS
        or not value
        or any(c in value for c in ",[]{}$()'\"")
        or (key.lstrip("+") == "checkpoint.restore_file" and value == "checkpoint_last.pt")
    ):
        return arg
    return key + "=" + ":".join(p if os.path.isabs(p) or not p else os.path.abspath(p) for p in value.split(":"))


def config_to_namespace(cfg) -> argparse.Namespace:
    """A resolved fairseq config flattened into the Namespace that fairseq's legacy parser would have produced
    (what the round drivers of vega_toolkit/adaptation take): every group's fields, and the component names
    (`task`, `arch`, `criterion`, ...) from the groups' `_name`."""
    from omegaconf import OmegaConf

    container = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    flat = {}
    for values in container.values():
        if isinstance(values, dict):
            flat.update({k: v for k, v in values.items() if k != "_name"})
    for group, values in container.items():
        if group in ("model", "task", "criterion", "optimizer", "lr_scheduler", "bpe", "tokenizer", "scoring"):
            name = values.get("_name") if isinstance(values, dict) else values
            flat["arch" if group == "model" else group] = name
    return argparse.Namespace(**flat)


def shipped_config_names() -> list[str]:
    """Every config a user can run (files starting with `_` are the shared pieces they include)."""
    return sorted(p.stem for p in CONF_DIR.glob("*/*.yaml") if not p.name.startswith("_"))


def compose_config(config_name: str, overrides: Sequence[str] = (), config_dir: str | None = None):
    """The config `fairseq-hydra-train --config-name NAME OVERRIDES` trains with, resolved: composed by Hydra with
    fairseq's schema, the plugins of `common.user_dir` imported, the components' dataclass defaults added
    (fairseq's add_defaults), interpolations resolved. Call it in a process that uses no other Hydra context."""
    from fairseq import utils
    from fairseq.dataclass.initialize import add_defaults, hydra_init
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf

    folder = config_dir or shipped_config_dir(config_name)
    if folder is None:
        raise FileNotFoundError(f"no shipped config named {config_name!r} (known: {shipped_config_names()})")
    hydra_init(config_name)
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(folder), version_base="1.1"):  # never >= 1.2 next to fairseq
        cfg = compose(config_name, overrides=list(overrides))
    utils.import_user_module(cfg.common)
    add_defaults(cfg)
    return OmegaConf.create(OmegaConf.to_container(cfg, resolve=True, enum_to_str=True))


def check_init_model(cfg):
    """GLUE fine-tuning without `checkpoint.finetune_from_model` would silently start from a random encoder (a
    config cannot require it: fairseq's schema default, None, wins over a `???`)."""
    if (
        cfg.task.get("glue_task")
        and not cfg.checkpoint.finetune_from_model
        and cfg.checkpoint.restore_file == "checkpoint_last.pt"
    ):
        sys.exit(
            f"vega-hydra-train: {cfg.task.glue_task} fine-tunes a pretrained model: give "
            f"checkpoint.finetune_from_model=<model folder>/model.pt (RTE, STS-B, MRPC: the MNLI model)"
        )


def train_from_config(cfg):
    """Hydra's task function: fairseq-hydra-train's training inside vega-train's guards
    (docs/design.md#training-guards), or the whole loop of a round-based task (vega_toolkit/launch/local.py
    `run_guarded`, as vega-train)."""
    from fairseq.dataclass.initialize import add_defaults
    from fairseq_cli.hydra_train import _hydra_main
    from hydra.core.hydra_config import HydraConfig

    from vega_toolkit.errors import PATH_ERRORS, one_line
    from vega_toolkit.launch.local import run_guarded
    from vega_toolkit.runtime.training import reset_fairseq_globals

    reset_fairseq_globals()  # a local sweep (-m, basic launcher) runs every job in this process
    check_init_model(cfg)
    add_defaults(cfg)
    given = [
        a.split("=", 1)[1]
        for a in HydraConfig.get().overrides.task  # as written: 0 is refused
        if a.lstrip("+").startswith("optimization.max_update=")
    ]
    try:
        return run_guarded(config_to_namespace(cfg), lambda: _hydra_main(cfg), given[-1] if given else None)
    except (UserError, *PATH_ERRORS) as err:  # Hydra would print a traceback; SystemExit passes through it
        sys.exit(f"vega-hydra-train: {one_line(err)}")


@console_script("vega-hydra-train")
def cli_main(argv: list[str] | None = None):
    import hydra
    from fairseq.dataclass.initialize import hydra_init

    import vega_toolkit  # noqa: F401  (registers the plugins before Hydra composes)

    sys.argv = [sys.argv[0]] + hydra_argv(sys.argv[1:] if argv is None else argv)
    # as fairseq-hydra-train: the FairseqConfig schema is stored under the primary config's name, and fairseq's
    # bundled config folder is the primary search path (its defaults list is used when --config-name is not given)
    hydra_init(_option(sys.argv, "--config-name", "-cn") or "config")
    import fairseq_cli

    fairseq_config = os.path.join(os.path.dirname(os.path.dirname(fairseq_cli.__file__)), "fairseq", "config")
    hydra.main(config_path=fairseq_config, config_name="config")(train_from_config)()


if __name__ == "__main__":
    # through the package's module, not __main__: SLURM jobs (hydra/launcher=submitit_slurm) unpickle the task
    # function by its importable name
    from vega_toolkit.cli.hydra_train import cli_main as main

    main()
