"""vega_toolkit/conf: every shipped Hydra config resolves through fairseq's own composition, equals its shell recipe
field by field, and the tiny ones train with stock fairseq-hydra-train and with vega-hydra-train."""

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from glue_helpers import FIXTURES, model_overrides, recipe_env
from omegaconf import OmegaConf

from vega_toolkit.cli.hydra_train import CONF_DIR, PLUGIN_DIR, compose_config, shipped_config_names

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
STOCK = [sys.executable, "-m", "fairseq_cli.hydra_train"]  # fairseq-hydra-train, unmodified
VEGA = [sys.executable, "-m", "vega_toolkit.cli.hydra_train"]
# what a user must give each config (`???` in the yaml), with stand-in values
REQUIRED = {"task.data": "DATA", "task.vocab_dir": "VOCAB", "task.external_data": "POOL.tsv"}
# fairseq-generate's groups: the legacy parser fills them (and its flat namespace copies criterion.temperature into
# generation.temperature), training never reads them
NOT_TRAINING = {"generation", "scoring"}


def required_overrides(name):
    missing = OmegaConf.missing_keys(_compose_unresolved(name))
    assert missing <= set(REQUIRED), missing  # nothing left open but the documented paths
    return [f"{key}={REQUIRED[key]}" for key in sorted(missing)]


def _compose_unresolved(name):
    from fairseq.dataclass.initialize import hydra_init
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from vega_toolkit.cli.hydra_train import shipped_config_dir

    hydra_init(name)
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(shipped_config_dir(name)), version_base="1.1"):
        return compose(name)


@pytest.mark.slow
def test_config_dir_holds_the_pretrain_and_glue_configs():
    out = subprocess.run(
        [sys.executable, "-m", "vega_toolkit.cli.config_dir"], capture_output=True, text=True, env=ENV, check=True
    ).stdout.strip()
    assert Path(out) == CONF_DIR and Path(out).parent == Path(PLUGIN_DIR)
    names = {p.relative_to(out).as_posix() for p in Path(out).glob("*/*.yaml") if not p.name.startswith("_")}
    assert {
        "pretrain/phase1_paper.yaml",
        "pretrain/phase1_tiny.yaml",
        "pretrain/phase2_paper.yaml",
        "pretrain/phase2_tiny.yaml",
        "pretrain/mlm_tiny.yaml",
        "pretrain/rtd_electra_tiny.yaml",
        "pretrain/rtd_electra_paper.yaml",
    } <= names
    assert {f"glue/{t}.yaml" for t in ("cola", "sst2", "mrpc", "stsb", "qqp", "mnli", "qnli", "rte", "wnli")} <= names


@pytest.mark.parametrize("name", shipped_config_names())
def test_every_shipped_config_resolves_to_registered_components(name):
    from fairseq.criterions import CRITERION_REGISTRY
    from fairseq.models import ARCH_MODEL_REGISTRY
    from fairseq.tasks import TASK_REGISTRY

    cfg = compose_config(name, required_overrides(name))
    assert cfg.task._name in TASK_REGISTRY and cfg.criterion._name in CRITERION_REGISTRY
    assert cfg.model._name in ARCH_MODEL_REGISTRY and cfg.common.user_dir is None  # stock runs pass it
    assert cfg.lr_scheduler.total_num_update == cfg.optimization.max_update > 0
    if name.endswith("_paper"):
        assert cfg.model.encoder_layers == 48 and cfg.model.checkpoint_activations and cfg.common.bf16
        assert not cfg.common.tpu  # fairseq's legacy --bf16 would set it; the Hydra path does not


@pytest.mark.slow
@pytest.mark.parametrize("entry_point", ["fairseq-hydra-train", "vega-hydra-train"])
@pytest.mark.parametrize("name", shipped_config_names())
def test_every_shipped_config_loads_through_both_entry_points(name, entry_point, monkeypatch, capsys):
    """`--cfg job --resolve`: the entry point composes the config, resolves it and prints it (training nothing)."""
    import fairseq_cli.hydra_train
    from hydra.core.global_hydra import GlobalHydra

    from vega_toolkit.cli import hydra_train
    from vega_toolkit.cli.hydra_train import shipped_config_dir

    argv = ["--config-name", name, "--cfg", "job", "--resolve"] + required_overrides(name)
    GlobalHydra.instance().clear()
    if entry_point == "fairseq-hydra-train":
        argv = ["--config-dir", str(shipped_config_dir(name))] + argv + [f"common.user_dir={PLUGIN_DIR}"]
        monkeypatch.setattr(sys, "argv", [entry_point] + argv)
        fairseq_cli.hydra_train.cli_main()
    else:
        monkeypatch.setattr(sys, "argv", [entry_point])
        hydra_train.cli_main(argv)
    printed = OmegaConf.create(capsys.readouterr().out)
    # vega-hydra-train reads a relative path in the shell's folder, fairseq-hydra-train in Hydra's run folder
    data = "DATA" if entry_point == "fairseq-hydra-train" else os.path.abspath("DATA")
    assert printed.common.user_dir == PLUGIN_DIR and printed.task.data == data
    assert printed.lr_scheduler.total_num_update == printed.optimization.max_update > 0  # resolved


# --- one source of truth: each recipe's resolved config equals its yaml's, field by field ----------------------
def recipe_config(argv):
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf

    from vega_toolkit.runtime.training import parse_training_args, with_user_dir

    return OmegaConf.create(
        OmegaConf.to_container(convert_namespace_to_omegaconf(parse_training_args(with_user_dir(argv))), resolve=True)
    )


def dry_run(recipe, env):
    out = subprocess.run(
        ["bash", str(REPO / "recipes" / recipe)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**ENV, "DRY_RUN": "1", "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"], **env},
    )
    assert out.returncode == 0, out.stderr[-2000:]
    line = [x for x in out.stdout.splitlines() if x.startswith("vega-train ")][0]
    return shlex.split(line)[1:]


def assert_same_config(yaml_cfg, recipe_cfg):
    differences = []
    for group in sorted((set(recipe_cfg) | set(yaml_cfg)) - NOT_TRAINING):
        a, b = recipe_cfg.get(group), yaml_cfg.get(group)
        if not (OmegaConf.is_dict(a) and OmegaConf.is_dict(b)):
            if a != b:
                differences.append(f"{group}: recipe {a!r} yaml {b!r}")
            continue
        for key in sorted(set(a) | set(b)):
            if a.get(key) != b.get(key):
                differences.append(f"{group}.{key}: recipe {a.get(key)!r} yaml {b.get(key)!r}")
    assert not differences, "\n".join(differences)


PRETRAIN = [
    ("phase1_rtd.sh", "tiny", "phase1_tiny"),
    ("phase1_rtd.sh", "paper", "phase1_paper"),
    ("phase2_contrastive.sh", "tiny", "phase2_tiny"),
    ("phase2_contrastive.sh", "paper", "phase2_paper"),
    ("rtd_electra.sh", "tiny", "rtd_electra_tiny"),
    ("rtd_electra.sh", "paper", "rtd_electra_paper"),
]


@pytest.mark.parametrize("recipe,scale,name", PRETRAIN)
def test_pretrain_recipe_and_its_config_resolve_to_the_same_fairseq_config(recipe, scale, name):
    paths = {"DATA_BIN": "DATA", "SAVE_DIR": "SAVE", "PHASE1_CKPT": "INIT.pt"}
    argv = dry_run(f"pretrain/{recipe}", {"SCALE": scale, **paths})
    overrides = required_overrides(name) + ["checkpoint.save_dir=SAVE", f"common.user_dir={PLUGIN_DIR}"]
    if recipe.startswith("phase2"):
        overrides.append("checkpoint.finetune_from_model=INIT.pt")
    assert_same_config(compose_config(name, overrides), recipe_config(argv))


@pytest.fixture(scope="module")
def official_glue(tmp_path_factory, model_dir):
    """The GLUE fixtures with train.tsv repeated to the official row count, so the recipes compute the paper's
    number of updates from it (vega-glue info counts the rows), and a tiny pretrained model folder."""
    from vega_toolkit.data.glue_tasks import GLUE_TASKS

    root = tmp_path_factory.mktemp("official_glue")
    for task in GLUE_TASKS.values():
        if "train" not in task.splits:
            continue
        shutil.copytree(os.path.join(FIXTURES, task.folder), root / "glue" / task.folder)
        train = root / "glue" / task.folder / "train.tsv"
        lines = train.read_text().splitlines()
        header, rows = (lines[:1], lines[1:]) if task.splits["train"].header else ([], lines)
        train.write_text("\n".join(header + [rows[i % len(rows)] for i in range(task.splits["train"].rows)]) + "\n")
    return str(root / "glue"), model_dir


GLUE = [
    ("mnli.sh", "paper", "mnli"),
    ("qqp.sh", "paper", "qqp"),
    ("qnli.sh", "paper", "qnli"),
    ("sst2.sh", "paper", "sst2"),
    ("rte.sh", "paper", "rte"),
    ("mrpc.sh", "paper", "mrpc"),
    ("stsb.sh", "paper", "stsb"),
    ("cola_selfcal.sh", "paper", "cola"),
    ("wnli_transductive.sh", "paper", "wnli"),
    ("sst2.sh", "tiny", "sst2_tiny"),
]


@pytest.mark.slow
@pytest.mark.parametrize("recipe,scale,name", GLUE)
def test_glue_recipe_and_its_config_resolve_to_the_same_fairseq_config(recipe, scale, name, official_glue):
    glue_dir, model_dir = official_glue
    env = recipe_env(glue_dir, model_dir, "OUT", "CACHE", SCALE=scale, MNLI_CHECKPOINT="INIT.pt", EXTERNAL="POOL.tsv")
    argv = dry_run(f"glue/{recipe}", env)
    # the paths, and the encoder's size: the recipe reads it from the pretrained model folder, a config user passes
    # it as overrides (the config's own is vega_v1_1_3b, or vega_tiny at tiny scale)
    model = model_overrides(model_dir)
    overrides = [
        f"task.data={argv[0]}",
        f"task.vocab_dir={model_dir}",
        "checkpoint.save_dir=" + argv[argv.index("--save-dir") + 1],
        "checkpoint.finetune_from_model=" + argv[argv.index("--finetune-from-model") + 1],
        f"common.user_dir={PLUGIN_DIR}",
    ] + model
    if "task.external_data" in {o.split("=")[0] for o in required_overrides(name)}:
        overrides.append("task.external_data=POOL.tsv")
    assert_same_config(compose_config(name, overrides), recipe_config(argv))


# --- one home per hyperparameter ----------------------------------------------------------------------------------
def disagreements(where, section, home):
    """`home` is {field: value} of the dataclass that holds the values; `section` one place's resolved config."""
    return [
        f"{where}: {key}={section.get(key)!r}, its home says {value!r}"
        for key, value in home.items()
        if section.get(key) != value
    ]


def sift_home():
    from dataclasses import fields

    from vega_toolkit.criterions.adversarial_ce import AdversarialCEConfig

    return {f.name: f.default for f in fields(AdversarialCEConfig) if f.name.startswith("adv_")}


def corruption_home():
    from dataclasses import fields

    from vega_toolkit.tasks.denoising_pretrain import DenoisingPretrainConfig

    return {f.name: f.default for f in fields(DenoisingPretrainConfig) if f.name in ("shuffle_prob", "replace_prob")}


def test_sift_hyperparameters_are_the_criterions_defaults_in_every_recipe_config_and_the_study(model_dir, tmp_path):
    """AdversarialCEConfig holds SiFT's values; the GLUE recipes, their Hydra configs and vega-study's SiFT arm
    resolve to them (a value written into any of those places that differs from it fails here)."""
    from vega_toolkit.study.plan import ARMS

    home, found = sift_home(), []
    env = recipe_env(FIXTURES, model_dir, str(tmp_path / "out"), str(tmp_path / "cache"), SCALE="paper")
    # qqp.sh and qnli.sh pass the same SIFT_ARGS of common.sh (and equal their configs: the test above)
    found += disagreements("recipes/glue/mnli.sh", recipe_config(dry_run("glue/mnli.sh", env)).criterion, home)
    for name in ("mnli", "qqp", "qnli"):
        found += disagreements(f"conf/glue/{name}.yaml", compose_config(name, required_overrides(name)).criterion, home)
    study = recipe_config(
        ["DATA", "--task", "glue", "--glue-task", "SST-2", "--arch", "vega_tiny", *ARMS["adversarial_ce"].finetune_args]
    )
    found += disagreements("vega-study's adversarial_ce arm", study.criterion, home)
    assert study.criterion._name == "adversarial_ce" and not found, "\n".join(found)


def electra_home():
    from dataclasses import fields

    from vega_toolkit.criterions.rtd_electra import RTDElectraConfig

    return {
        f.name: f.default
        for f in fields(RTDElectraConfig)
        if f.name in ("mask_prob", "generator_layers", "generator_width_fraction")
    }


def test_pretraining_objectives_take_their_values_from_the_task_and_criterion_defaults():
    """DenoisingPretrainConfig holds the corruption rates (shuffle 10%, replace 5%) and RTDElectraConfig the
    generator's masking and size; the pretraining recipes, their Hydra configs and vega-study's arms resolve to
    them."""
    from vega_toolkit.study.plan import ARMS

    found = []
    for recipe, scale, name in PRETRAIN:
        argv = dry_run(
            f"pretrain/{recipe}", {"SCALE": scale, "DATA_BIN": "DATA", "SAVE_DIR": "SAVE", "PHASE1_CKPT": "INIT.pt"}
        )
        places = (
            (f"recipes/pretrain/{recipe} SCALE={scale}", recipe_config(argv)),
            (f"conf/pretrain/{name}.yaml", compose_config(name, required_overrides(name))),
        )
        for where, cfg in places:
            found += disagreements(where, cfg.task, corruption_home())
            if recipe.startswith("rtd_electra"):
                found += disagreements(where, cfg.criterion, electra_home())
    for arm in ("rtd_ternary", "rtd_electra"):
        study = recipe_config(["DATA", "--arch", "vega_tiny", *ARMS[arm].pretrain_args])
        found += disagreements(f"vega-study's {arm} arm", study.task, corruption_home())
        if arm == "rtd_electra":
            found += disagreements(f"vega-study's {arm} arm", study.criterion, electra_home())
    assert not found, "\n".join(found)


# --- tiny configs train ---------------------------------------------------------------------------------------
def run(cmd, cwd, timeout=300):
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=ENV)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


def last_valid(log):
    return [line for line in log.splitlines() if "valid on 'valid' subset" in line][-1]


@pytest.mark.slow
def test_pretraining_configs_train_with_stock_fairseq_and_with_vega_hydra_train(tiny_data_bin, tmp_path):
    short = ["optimization.max_update=3", "dataset.validate_interval_updates=3", "common.log_interval=1"]
    # stock fairseq-hydra-train: the plugins come only from common.user_dir
    log = run(
        STOCK
        + [
            "--config-dir",
            str(CONF_DIR / "pretrain"),
            "--config-name",
            "phase1_tiny",
            f"common.user_dir={PLUGIN_DIR}",
            f"task.data={tiny_data_bin}",
            f"checkpoint.save_dir={tmp_path / 'phase1'}",
        ]
        + short,
        cwd=tmp_path,
    )
    assert "rtd_acc" in last_valid(log) and "num_updates 3" in last_valid(log)
    # vega-hydra-train keeps vega-train's guards: the same finished run again is a no-op that says so
    log = run(
        VEGA
        + ["--config-name", "phase1_tiny", f"task.data={tiny_data_bin}", f"checkpoint.save_dir={tmp_path / 'phase1'}"]
        + short,
        cwd=tmp_path,
    )
    assert "this run has finished, nothing to do" in log
    # vega-hydra-train: no config dir, no user_dir; phase 2 starts from phase 1's weights
    log = run(
        VEGA
        + [
            "--config-name",
            "phase2_tiny",
            f"task.data={tiny_data_bin}",
            f"checkpoint.save_dir={tmp_path / 'phase2'}",
            f"checkpoint.finetune_from_model={tmp_path / 'phase1' / 'checkpoint_last.pt'}",
        ]
        + short,
        cwd=tmp_path,
    )
    assert "loading pretrained model from" in log and "contrastive_loss" in last_valid(log)
    log = run(
        VEGA
        + ["--config-name", "mlm_tiny", f"task.data={tiny_data_bin}", f"checkpoint.save_dir={tmp_path / 'mlm'}"]
        + short,
        cwd=tmp_path,
    )
    assert "masked_lm" in log and (tmp_path / "mlm" / "checkpoint_last.pt").is_file()


def glue_overrides(task, model_dir, save_dir):
    return [
        f"task.data={os.path.join(FIXTURES, task)}",
        f"task.vocab_dir={model_dir}",
        f"checkpoint.finetune_from_model={model_dir}/model.pt",
        f"checkpoint.save_dir={save_dir}",
        "optimization.max_update=3",
    ] + model_overrides(model_dir)


@pytest.mark.slow
def test_sst2_tiny_fine_tunes_with_stock_fairseq_hydra_train(model_dir, tmp_path):
    log = run(
        STOCK
        + ["--config-dir", str(CONF_DIR / "glue"), "--config-name", "sst2_tiny", f"common.user_dir={PLUGIN_DIR}"]
        + glue_overrides("SST-2", model_dir, tmp_path / "sst2"),
        cwd=tmp_path,
    )
    assert "accuracy" in last_valid(log) and (tmp_path / "sst2" / "checkpoint_best.pt").is_file()


@pytest.mark.slow
def test_wnli_config_runs_the_transductive_rounds_under_vega_hydra_train(model_dir, tmp_path):
    tiny = [
        "common.cpu=true",
        "common.fp16=false",
        "dataset.num_workers=0",
        "dataset.batch_size=8",
        "lr_scheduler.warmup_updates=1",
        "task.max_rounds=1",
    ]
    log = run(
        VEGA + ["--config-name", "wnli"] + glue_overrides("WNLI", model_dir, tmp_path / "wnli") + tiny, cwd=tmp_path
    )
    state = (tmp_path / "wnli" / "adaptation_state.json").read_text()
    assert '"round": 1' in state and (tmp_path / "wnli" / "round_1").is_dir()
    assert re.search(r"^dev accuracy=\d", log, re.M)


@pytest.mark.slow
def test_glue_config_without_the_pretrained_model_stops_with_a_message(model_dir, tmp_path):
    overrides = [o for o in glue_overrides("SST-2", model_dir, tmp_path / "sst2") if "finetune_from_model" not in o]
    proc = subprocess.run(
        VEGA + ["--config-name", "sst2_tiny"] + overrides,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env=ENV,
    )
    assert proc.returncode == 1 and "give checkpoint.finetune_from_model=" in proc.stderr, proc.stderr[-2000:]
    assert not (tmp_path / "sst2").exists()


def test_hydra_options_may_follow_the_overrides():
    from vega_toolkit.cli.hydra_train import hydra_argv

    argv = hydra_argv(["x=1", "-m", "hydra/launcher=submitit_slurm", "--config-name", "sst2", "+y=2"])
    assert argv[:5] == ["--config-dir", str(CONF_DIR / "glue"), "-m", "--config-name", "sst2"]
    assert argv[5:] == ["x=1", "hydra/launcher=submitit_slurm", "+y=2", f"common.user_dir={PLUGIN_DIR}"]
