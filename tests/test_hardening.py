"""Bad or unusual input a new user gives: refused before any work with one line naming the file or flag, nothing
the user has overwritten, a vocabulary never silently exchanged, and 0 meaning 0."""

import json
import os
import shutil
import subprocess
import sys
from argparse import Namespace
from pathlib import Path

import pytest
import torch
from cli_helpers import assert_one_line_error, run_tool
from glue_helpers import FIXTURES, glue_train_args, vega_train

ROOT = Path(__file__).resolve().parents[1]
PRETRAIN = [
    "--task",
    "denoising_pretrain",
    "--criterion",
    "rtd_ternary",
    "--arch",
    "vega_tiny",
    "--tokens-per-sample",
    "64",
    "--batch-size",
    "8",
    "--optimizer",
    "adam",
    "--lr",
    "1e-3",
    "--cpu",
    "--num-workers",
    "0",
    "--no-epoch-checkpoints",
    "--log-format",
    "simple",
    "--seed",
    "1",
]


def fine_tune_args(vocab_dir, tmp_path, *extra, task="SST-2"):
    return glue_train_args(
        task,
        os.path.join(FIXTURES, "SST-2"),
        str(vocab_dir),
        str(tmp_path / "save"),
        str(tmp_path / "cache"),
        ["--criterion", "glue_prediction", *map(str, extra)],
    )


def swapped_vocabulary(src, dst):
    """A copy of folder `src` whose dict.txt has its first two pieces swapped: another vocabulary of the same size
    (what two sentencepiece models trained on different text look like to a row count)."""
    shutil.copytree(src, dst)
    lines = (Path(dst) / "dict.txt").read_text().splitlines(keepends=True)
    lines[0], lines[1] = lines[1], lines[0]
    (Path(dst) / "dict.txt").write_text("".join(lines))
    return str(dst)


@pytest.fixture(scope="module")
def pretrained(tiny_data_bin, tmp_path_factory):
    """checkpoint_last.pt of a 1-update RTD pretraining on the tiny data-bin."""
    save = tmp_path_factory.mktemp("pretrained") / "save"
    r = vega_train([str(tiny_data_bin), *PRETRAIN, "--max-update", "1", "--save-dir", str(save)])
    assert r.returncode == 0, r.stderr[-3000:]
    return save / "checkpoint_last.pt"


# --- a vocabulary never silently changes -------------------------------------------------------------------------
@pytest.mark.slow
def test_fine_tuning_with_another_vocabulary_of_the_same_size_is_refused(model_dir, tmp_path):
    other = swapped_vocabulary(model_dir, tmp_path / "other")
    args = fine_tune_args(other, tmp_path, "--finetune-from-model", os.path.join(model_dir, "model.pt"))
    code, _, err = run_tool("vega-train", args, tmp_path)
    assert_one_line_error("vega-train", code, err, f"--vocab-dir {other}", "are not the ones", "model.pt")
    assert not (tmp_path / "save" / "checkpoint_last.pt").exists()


@pytest.mark.slow
def test_generate_with_another_vocabulary_is_refused_before_writing(model_dir, tmp_path):
    other = swapped_vocabulary(model_dir, tmp_path / "other")
    code, _, err = run_tool(
        "vega-generate",
        [
            os.path.join(model_dir, "model.pt"),
            "--glue-dir",
            FIXTURES,
            "--out-dir",
            tmp_path / "sub",
            "--vocab-dir",
            other,
            "--allow-partial",
            "--cpu",
        ],
        tmp_path,
    )
    assert_one_line_error("vega-generate", code, err, f"--vocab-dir {other}", "are not the ones")
    assert not (tmp_path / "sub" / "SST-2.tsv").exists()


@pytest.mark.slow
def test_export_with_another_data_bin_of_the_same_size_is_refused(pretrained, tiny_data_bin, tmp_path):
    other = swapped_vocabulary(tiny_data_bin, tmp_path / "other")
    code, _, err = run_tool("vega-convert", ["export", pretrained, "--data-bin", other, tmp_path / "m"], tmp_path)
    assert_one_line_error("vega-convert", code, err, f"--data-bin {other}", "are not the ones")
    assert not (tmp_path / "m").exists()
    code, _, err = run_tool(
        "vega-convert", ["export", pretrained, "--data-bin", tiny_data_bin, tmp_path / "m"], tmp_path
    )
    assert code == 0, err[-2000:]


def test_a_model_folder_whose_vocabulary_was_replaced_does_not_load(tiny_data_bin, tmp_path):
    from vega_toolkit import VegaModel
    from vega_toolkit.data.vocabulary import VocabularyMismatchError
    from vega_toolkit.models.model_folder import export_random_init

    export_random_init("vega_tiny", str(tiny_data_bin), str(tmp_path / "model"))
    VegaModel.from_pretrained(str(tmp_path / "model"))
    folder = swapped_vocabulary(tmp_path / "model", tmp_path / "replaced")
    with pytest.raises(VocabularyMismatchError, match="are not the ones"):
        VegaModel.from_pretrained(folder)


def without_vocabulary_id(folder, dst):
    """A copy of model folder `folder` as written before the vocabulary id existed."""
    shutil.copytree(folder, dst)
    ckpt = torch.load(Path(dst) / "model.pt", weights_only=False)
    assert ckpt.pop("task_state")["vocab_id"]
    torch.save(ckpt, Path(dst) / "model.pt")
    return Path(dst)


@pytest.mark.slow
def test_a_dictionary_of_another_size_is_called_a_vocabulary_mismatch_not_an_architecture_one(model_dir, tmp_path):
    old = without_vocabulary_id(model_dir, tmp_path / "old")  # so that the row count is all there is to compare
    bigger = tmp_path / "bigger"
    shutil.copytree(model_dir, bigger)
    with open(bigger / "dict.txt", "a") as f:
        f.write("extrapiece 1\n")
    args = fine_tune_args(bigger, tmp_path, "--finetune-from-model", old / "model.pt")
    code, _, err = run_tool("vega-train", args, tmp_path)
    line = assert_one_line_error("vega-train", code, err, "the vocabulary does not")
    assert "ensure that the architectures match" not in line


@pytest.mark.slow
def test_a_checkpoint_without_a_vocabulary_id_still_loads(model_dir, tmp_path):
    """Checkpoints written before the id existed: only their number of rows is compared."""
    from vega_toolkit import VegaModel

    old = without_vocabulary_id(model_dir, tmp_path / "old")
    assert VegaModel.from_pretrained(str(old)).encode("a b").numel() > 2


# --- zero means zero, negative numbers are refused ---------------------------------------------------------------
def test_max_update_zero_is_refused_instead_of_training_without_end(tiny_data_bin, tmp_path):
    code, _, err = run_tool(
        "vega-train", [tiny_data_bin, *PRETRAIN, "--max-update", "0", "--save-dir", tmp_path / "s"], tmp_path
    )
    assert_one_line_error("vega-train", code, err, "--max-update 0", "no limit")
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize("recipe", ["glue/sst2.sh", "pretrain/phase1_rtd.sh"])
def test_recipes_refuse_max_update_zero(recipe, tmp_path):
    env = dict(
        os.environ,
        GLUE_DIR=str(tmp_path),
        PRETRAINED=str(tmp_path),
        OUT=str(tmp_path / "o"),
        DATA_BIN=str(tmp_path),
        SAVE_DIR=str(tmp_path / "s"),
        MAX_UPDATE="0",
        DRY_RUN="1",
    )
    proc = subprocess.run(["bash", str(ROOT / "recipes" / recipe)], env=env, capture_output=True, text=True)
    assert proc.returncode == 2 and "MAX_UPDATE must be a positive whole number, not '0'" in proc.stderr


def test_a_negative_learning_rate_is_refused(tiny_data_bin, tmp_path):
    argv = [tiny_data_bin, *PRETRAIN, "--max-update", "1", "--save-dir", tmp_path / "s", "--lr=-1e-3"]
    del argv[argv.index("--lr") : argv.index("--lr") + 2]
    code, _, err = run_tool("vega-train", argv, tmp_path)
    assert_one_line_error("vega-train", code, err, "--lr -0.001: a learning rate must be positive")


@pytest.mark.parametrize("scale", ["bogus", "Tiny"])
def test_glue_recipes_refuse_an_unknown_scale(scale, tmp_path):
    env = dict(os.environ, GLUE_DIR=str(tmp_path), PRETRAINED=str(tmp_path), OUT=str(tmp_path / "o"), SCALE=scale)
    proc = subprocess.run(["bash", str(ROOT / "recipes" / "glue" / "sst2.sh")], env=env, capture_output=True, text=True)
    assert proc.returncode == 2 and f"SCALE must be tiny or paper (lower case), not '{scale}'" in proc.stderr


def test_tokens_per_sample_beyond_max_positions_is_refused(tiny_data_bin, tmp_path):
    code, _, err = run_tool(
        "vega-train",
        [tiny_data_bin, *PRETRAIN, "--max-positions", "32", "--max-update", "1", "--save-dir", tmp_path / "s"],
        tmp_path,
    )
    assert_one_line_error(
        "vega-train", code, err, "--tokens-per-sample 64 is longer than the model's --max-positions 32"
    )


def test_an_empty_validation_split_is_named_and_training_runs_without_validation(tiny_data_bin, tmp_path):
    data = tmp_path / "data-bin"
    shutil.copytree(tiny_data_bin, data)
    (data / "valid.bin").write_bytes(b"")  # what a data-bin made with --valid-fraction 0 holds
    code, _, err = run_tool(
        "vega-train", [data, *PRETRAIN, "--max-update", "1", "--save-dir", tmp_path / "s"], tmp_path
    )
    assert_one_line_error("vega-train", code, err, f"{data}/valid.bin is empty", "--disable-validation")
    code, _, err = run_tool(
        "vega-train",
        [data, *PRETRAIN, "--max-update", "1", "--disable-validation", "--save-dir", tmp_path / "s"],
        tmp_path,
    )
    assert code == 0 and (tmp_path / "s" / "checkpoint_last.pt").is_file(), err[-2000:]


# --- outputs -----------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_conversions_into_their_own_input_folder_are_refused_and_write_nothing(model_dir, tiny_data_bin, tmp_path):
    before = sorted(os.listdir(model_dir))
    code, _, err = run_tool("vega-convert", ["to-hf", model_dir, model_dir], tmp_path)
    assert_one_line_error("vega-convert", code, err, f"OUT_DIR {model_dir} is also an input")
    assert sorted(os.listdir(model_dir)) == before
    data = tmp_path / "data-bin"
    shutil.copytree(tiny_data_bin, data)
    code, _, err = run_tool(
        "vega-convert", ["export", "--random-init", "--arch", "vega_tiny", "--data-bin", data, data], tmp_path
    )
    assert_one_line_error("vega-convert", code, err, "is also an input")
    assert not (data / "model.pt").exists()


def test_an_existing_model_folder_is_not_overwritten_without_force(tiny_data_bin, tmp_path):
    argv = ["export", "--random-init", "--arch", "vega_tiny", "--data-bin", tiny_data_bin, tmp_path / "m"]
    assert run_tool("vega-convert", argv, tmp_path)[0] == 0
    code, _, err = run_tool("vega-convert", argv, tmp_path)
    assert_one_line_error("vega-convert", code, err, "already holds model.pt, dict.txt, spm.model", "--force")
    assert run_tool("vega-convert", argv + ["--force"], tmp_path)[0] == 0


def test_a_save_dir_that_is_a_file_is_refused(tiny_data_bin, tmp_path):
    (tmp_path / "taken").write_text("x")
    code, _, err = run_tool(
        "vega-train", [tiny_data_bin, *PRETRAIN, "--max-update", "1", "--save-dir", tmp_path / "taken"], tmp_path
    )
    assert_one_line_error("vega-train", code, err, f"--save-dir {tmp_path / 'taken'} is an existing file")


@pytest.mark.parametrize("content", [b"", b"cut"], ids=["empty", "truncated"])
def test_an_empty_or_truncated_safetensors_file_is_named(content, tmp_path):
    transformers = pytest.importorskip("transformers")
    import sentencepiece as spm

    hf = tmp_path / "hf"
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(f"the cat {i} sat on the mat" for i in range(50)))
    spm.SentencePieceTrainer.train(
        input=str(corpus),
        model_prefix=str(tmp_path / "spm"),
        vocab_size=30,
        hard_vocab_limit=False,
        pad_id=0,
        bos_id=1,
        eos_id=2,
        unk_id=3,
        minloglevel=2,
    )
    config = transformers.DebertaV2Config(
        vocab_size=40,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        relative_attention=True,
    )
    transformers.DebertaV2Model(config).save_pretrained(hf)
    shutil.copyfile(tmp_path / "spm.model", hf / "spm.model")
    weights = (hf / "model.safetensors").read_bytes()
    (hf / "model.safetensors").write_bytes(content or b"" if not content else weights[: len(weights) // 2])
    code, _, err = run_tool("vega-convert", ["from-hf", hf, tmp_path / "out"], tmp_path)
    assert_one_line_error("vega-convert", code, err, f"{hf}/model.safetensors is not a readable safetensors file")


@pytest.mark.slow
def test_generate_refuses_two_checkpoints_of_one_task_before_writing_any_file(model_dir, tmp_path):
    ckpt = os.path.join(model_dir, "model.pt")
    code, _, err = run_tool(
        "vega-generate",
        [ckpt, ckpt, "--glue-dir", FIXTURES, "--out-dir", tmp_path / "sub", "--allow-partial", "--cpu"],
        tmp_path,
    )
    assert_one_line_error("vega-generate", code, err, "two checkpoints for SST-2")
    assert not (tmp_path / "sub").exists()


@pytest.mark.slow
def test_generate_refuses_a_pretraining_checkpoint(pretrained, tmp_path):
    code, _, err = run_tool(
        "vega-generate", [pretrained, "--glue-dir", FIXTURES, "--out-dir", tmp_path / "sub"], tmp_path
    )
    assert_one_line_error("vega-generate", code, err, "not a fine-tuned GLUE checkpoint", "denoising_pretrain")


@pytest.mark.slow
def test_generate_rewrites_its_own_submission_but_never_another_models(model_dir, tmp_path):
    ckpt = os.path.join(model_dir, "model.pt")
    argv = [ckpt, "--glue-dir", FIXTURES, "--out-dir", tmp_path / "sub", "--allow-partial", "--cpu"]
    assert run_tool("vega-generate", argv, tmp_path)[0] == 0
    assert run_tool("vega-generate", argv, tmp_path)[0] == 0  # the same command again (a recipe re-run)
    other = tmp_path / "other.pt"
    shutil.copy(ckpt, other)
    before = (tmp_path / "sub" / "SST-2.tsv").read_bytes()
    code, _, err = run_tool("vega-generate", [other, *argv[1:]], tmp_path)
    assert_one_line_error("vega-generate", code, err, "already holds SST-2.tsv", "--force")
    assert (tmp_path / "sub" / "SST-2.tsv").read_bytes() == before
    assert run_tool("vega-generate", [other, *argv[1:], "--force"], tmp_path)[0] == 0


def test_select_refuses_an_existing_output_without_force(tmp_path):
    for name in ("train.txt", "pool.txt"):
        (tmp_path / name).write_text("a line of text\n")
    (tmp_path / "kept.txt").write_text("the user's earlier selection\n")
    code, _, err = run_tool(
        "vega-select",
        [
            "--train",
            tmp_path / "train.txt",
            "--pool",
            tmp_path / "pool.txt",
            "--top-k",
            "1",
            "--out",
            tmp_path / "kept.txt",
        ],
        tmp_path,
    )
    assert_one_line_error("vega-select", code, err, f"--out {tmp_path / 'kept.txt'} already exists", "--force")
    assert (tmp_path / "kept.txt").read_text() == "the user's earlier selection\n"


# --- a flag that cannot work is one line -------------------------------------------------------------------------
@pytest.mark.slow
def test_a_checkpoint_of_another_architecture_is_named_with_the_flags_to_give(model_dir, tmp_path):
    argv = fine_tune_args(model_dir, tmp_path, "--finetune-from-model", os.path.join(model_dir, "model.pt"))
    argv[argv.index("--encoder-ffn-embed-dim") + 1] = "48"  # the checkpoint has 64
    code, _, err = run_tool("vega-train", argv, tmp_path)
    assert_one_line_error("vega-train", code, err, "its weights do not fit --arch vega_tiny", "vega-glue arch")


@pytest.mark.slow
def test_a_missing_finetune_from_model_is_named(model_dir, tmp_path):
    argv = fine_tune_args(model_dir, tmp_path, "--finetune-from-model", tmp_path / "nope.pt")
    code, _, err = run_tool("vega-train", argv, tmp_path)
    assert_one_line_error("vega-train", code, err, f"--finetune-from-model {tmp_path / 'nope.pt'}: file not found")


@pytest.mark.slow
def test_an_unknown_glue_task_is_one_line(model_dir, tmp_path):
    argv = fine_tune_args(model_dir, tmp_path, task="SST-3")
    code, _, err = run_tool("vega-train", argv, tmp_path)
    assert_one_line_error("vega-train", code, err, "unknown GLUE task 'SST-3'")


@pytest.mark.slow
def test_fused_attention_where_it_cannot_run_is_one_line(tiny_data_bin, tmp_path):
    # a fresh interpreter: whether Triton interprets is fixed when the kernel module is first imported, and this
    # test process may have imported it under TRITON_INTERPRET=1 (a forked run_tool child would inherit that)
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "vega_toolkit.cli.train",
            str(tiny_data_bin),
            *PRETRAIN,
            "--attention-impl",
            "fused",
            "--max-update",
            "1",
            "--disable-validation",
            "--save-dir",
            str(tmp_path / "s"),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=600,
    )
    # fairseq's INFO log comes first in a fresh process; the error is its own last line, with no traceback
    assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("vega-train: ") and "--attention-impl fused" in last, proc.stderr[-3000:]


def test_submitit_launcher_without_slurm_is_one_line(tiny_data_bin, tmp_path):
    code, _, err = run_tool(
        "vega-train",
        [tiny_data_bin, *PRETRAIN, "--max-update", "1", "--save-dir", tmp_path / "s", "--launcher", "submitit"],
        tmp_path,
        env={"PATH": str(tmp_path)},
    )
    assert_one_line_error("vega-train", code, err, "no sbatch on this machine's PATH", "--launcher local")


def test_transductive_training_without_its_test_file_stops_before_round_0(tmp_path):
    from vega_toolkit.adaptation.rounds import check_round_args
    from vega_toolkit.errors import UserError

    shutil.copytree(os.path.join(FIXTURES, "WNLI"), tmp_path / "WNLI")
    os.remove(tmp_path / "WNLI" / "test.tsv")
    (tmp_path / "m.pt").write_bytes(b"")
    args = Namespace(
        task="glue_transductive",
        glue_task="WNLI",
        data=str(tmp_path / "WNLI"),
        finetune_from_model=str(tmp_path / "m.pt"),
        restore_file="checkpoint_last.pt",
        max_rounds=1,
        converge_eps=0.01,
        pseudo_label_split="test",
    )
    with pytest.raises(UserError, match="WNLI/test.tsv: not found; --task glue_transductive pseudo-labels"):
        check_round_args(args)


def test_an_unknown_hydra_config_name_is_named(tmp_path):
    code, _, err = run_tool("vega-hydra-train", ["--config-name", "sst3", "task.data=x"], tmp_path)
    assert_one_line_error("vega-hydra-train", code, err, "--config-name sst3: no such config", "sst2")


# --- Hydra: relative paths mean what they mean in the shell ------------------------------------------------------
def test_hydra_relative_paths_are_the_shell_folders(tiny_data_bin, tmp_path):
    shutil.copytree(tiny_data_bin, tmp_path / "data")
    code, out, err = run_tool(
        "vega-hydra-train",
        [
            "--config-name",
            "phase1_tiny",
            "task.data=data",
            "checkpoint.save_dir=runs/x",
            "optimization.max_update=1",
            "dataset.disable_validation=true",
        ],
        tmp_path,
    )
    assert code == 0, (out + err)[-3000:]
    assert (tmp_path / "runs" / "x" / "checkpoint_last.pt").is_file()
    assert not list((tmp_path / "outputs").glob("*/*/runs"))  # not inside Hydra's run folder


def test_study_results_appended_after_a_torn_line_stay_readable(tmp_path):
    from vega_toolkit.study.runner import RESULTS_FILE, append_result, read_results

    append_result(tmp_path, {"key": "a"})
    with open(tmp_path / RESULTS_FILE, "a") as f:
        f.write('{"key": "b", "dev')  # a writer killed mid-line
    append_result(tmp_path, {"key": "c"})
    assert [r["key"] for r in read_results(tmp_path)] == ["a", "c"]
    assert json.loads((tmp_path / RESULTS_FILE).read_text().splitlines()[-1]) == {"key": "c"}
