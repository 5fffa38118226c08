"""`glue_transductive` (Algorithm 1): rounds of predict-test -> pseudo-label -> fine-tune, with real fairseq
trainings of a tiny model on a synthetic task in SST-2's layout (and the STS-B fixture for regression)."""

import json
import os
import shutil

import pytest
from adaptation_helpers import loop_args, train_m0, write_synthetic_sst2
from glue_helpers import FIXTURES, make_vocab_dir, vega_train

from vega_toolkit.adaptation.rounds import RoundPredictions, count_changed, label_distribution
from vega_toolkit.data.glue_tasks import get_glue_task


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("td")
    vocab = make_vocab_dir(str(root / "vocab"))
    data, gold, _ = write_synthetic_sst2(str(root))
    # a deliberately weak M0 (one epoch): its predictions differ from the hidden labels, so pseudo-labels that
    # equal its predictions cannot be copies of the hidden labels
    m0 = train_m0(data, vocab, str(root / "m0"), str(root / "cache"), epochs=1)
    return {"root": root, "vocab": vocab, "data": data, "gold": gold, "m0": m0, "cache": str(root / "cache")}


def run_loop(setup, save_dir, *extra, task="glue_transductive", glue_task="SST-2", data=None, m0=None):
    args = loop_args(
        task,
        glue_task,
        data or setup["data"],
        setup["vocab"],
        str(save_dir),
        setup["cache"],
        ["--finetune-from-model", m0 or setup["m0"], "--no-epoch-checkpoints", *extra],
    )
    return vega_train(args)


def state_of(save_dir):
    with open(os.path.join(save_dir, "adaptation_state.json")) as f:
        return json.load(f)


@pytest.fixture(scope="module")
def full_run(setup):
    """--converge-eps 0 never converges: the loop runs exactly --max-rounds trainings."""
    save = setup["root"] / "full"
    r = run_loop(setup, save, "--max-rounds", "2", "--converge-eps", "0")
    assert r.returncode == 0, r.stderr[-3000:]
    return save, r


@pytest.mark.slow
def test_loop_runs_max_rounds_keeps_every_round_and_ends_with_the_dev_line(full_run):
    save, r = full_run
    state = state_of(save)
    assert [x["round"] for x in state["rounds"]] == [0, 1, 2] and state["done"]
    assert "--max-rounds 2 reached" in state["stopped"]
    for k in (0, 1, 2):
        assert os.path.isfile(save / f"round_{k}" / "predictions.tsv")
        assert os.path.isfile(save / f"round_{k}" / "pseudo_train.tsv")
    for k in (1, 2):
        assert state["rounds"][k]["model"] == str(save / f"round_{k}" / "checkpoint_best.pt")
        assert state["rounds"][k]["changed"] is not None
        assert sum(state["rounds"][k]["distribution"].values()) == state["rounds"][k]["n"] == 48
    assert r.stdout.strip().splitlines()[-1].startswith("dev accuracy=")


@pytest.mark.slow
def test_pseudo_labels_are_the_model_predictions_never_the_hidden_test_labels(setup, full_run):
    from vega_toolkit.models.glue_predictor import GluePredictor

    save, _ = full_run
    predictor = GluePredictor.from_checkpoint(setup["m0"])
    with open(os.path.join(setup["data"], "test.tsv")) as f:
        test_sentences = [line.rstrip("\n").split("\t")[1] for line in f][1:]
    expected = predictor.predict(test_sentences)
    round0 = RoundPredictions.read(str(save / "round_0" / "predictions.tsv"))
    assert round0.labels == expected
    with open(save / "round_0" / "pseudo_train.tsv") as f:
        rows = [line.rstrip("\n").split("\t") for line in f][1:]
    assert rows == [[s, y] for s, y in zip(test_sentences, expected, strict=True)]
    # accuracy against the hidden labels, only after the fact: M0 is weak, so they differ from the pseudo-labels
    wrong = sum(p != g for p, g in zip(expected, setup["gold"], strict=True))
    print(f"M0 pseudo-label accuracy on the hidden test labels: {1 - wrong / len(expected):.2%}")
    assert wrong > 0
    # the test split reaches the model through the unlabelled test-file reader only
    encoded = predictor.task.encoded_split("test")
    assert encoded.labels is None


@pytest.mark.slow
def test_pseudo_labelling_a_labelled_split_is_refused(setup):
    from vega_toolkit.adaptation.rounds import unlabelled_examples
    from vega_toolkit.models.glue_predictor import GluePredictor

    task = GluePredictor.from_checkpoint(setup["m0"]).task
    with pytest.raises(ValueError, match="labelled split"):
        unlabelled_examples(task, "valid")
    assert all(ex.label is None for ex in unlabelled_examples(task, "test"))


@pytest.mark.slow
def test_loop_stops_when_few_pseudo_labels_change(setup, tmp_path):
    r = run_loop(setup, tmp_path / "conv", "--max-rounds", "3", "--converge-eps", "1.0")
    assert r.returncode == 0, r.stderr[-3000:]
    state = state_of(tmp_path / "conv")
    assert [x["round"] for x in state["rounds"]] == [0, 1]
    assert state["stopped"].startswith("converged")
    assert not os.path.exists(tmp_path / "conv" / "round_2")


@pytest.mark.slow
def test_interrupted_loop_resumes_at_the_first_unfinished_step(setup, full_run, tmp_path):
    save, _ = full_run
    copy = tmp_path / "resume"
    shutil.copytree(save, copy)
    state = state_of(save)
    # as if the job died right after round 1's training: round 1 not yet predicted, round 2 never started
    kept = [dict(x) for x in state["rounds"][:2]]
    for key in (
        "predictions",
        "pseudo_train",
        "dev",
        "dev_metric",
        "changed",
        "changed_fraction",
        "used",
        "n",
        "distribution",
    ):
        kept[1].pop(key)
    for r_ in kept:
        r_["model"] = r_["model"].replace(str(save), str(copy))
    kept[0]["predictions"] = kept[0]["predictions"].replace(str(save), str(copy))
    kept[0]["pseudo_train"] = kept[0]["pseudo_train"].replace(str(save), str(copy))
    with open(copy / "adaptation_state.json", "w") as f:
        json.dump({"rounds": kept, "done": False}, f)
    shutil.rmtree(copy / "round_2")
    os.remove(copy / "round_1" / "predictions.tsv")
    round1_ckpt = copy / "round_1" / "checkpoint_best.pt"
    before = os.stat(round1_ckpt).st_mtime_ns

    r = run_loop(setup, copy, "--max-rounds", "2", "--converge-eps", "0")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "resuming from" in r.stderr
    assert os.stat(round1_ckpt).st_mtime_ns == before  # round 1 was not trained again
    trained = [line for line in r.stderr.splitlines() if "vega_toolkit.adaptation.rounds:training " in line]
    assert len(trained) == 1 and f"training {copy / 'round_2'} from " in trained[0]
    resumed = state_of(copy)
    assert [x["round"] for x in resumed["rounds"]] == [0, 1, 2] and resumed["done"]
    assert os.path.isfile(copy / "round_1" / "predictions.tsv")


def test_confidence_threshold_decides_which_rows_join(tmp_path):
    preds = RoundPredictions(["0", "1", "1"], [0.55, 0.95, 0.91])
    assert preds.used(0.9) == [False, True, True]
    preds.write(str(tmp_path / "p.tsv"), ["a", "b", "c"], 0.9)
    back = RoundPredictions.read(str(tmp_path / "p.tsv"))
    assert back.labels == preds.labels and back.confidence == pytest.approx(preds.confidence)
    assert (tmp_path / "p.tsv").read_text().splitlines()[1] == "a\t0\t0.550000\t0"


def test_regression_change_counts_only_moves_beyond_the_tolerance():
    stsb = get_glue_task("STS-B")
    assert count_changed(stsb, ["1.0", "2.0", "3.0"], ["1.4", "2.6", "3.0"], tolerance=0.5) == 1
    assert (
        count_changed(
            get_glue_task("RTE"), ["entailment", "not_entailment"], ["entailment", "entailment"], tolerance=0.5
        )
        == 1
    )
    assert label_distribution(stsb, ["1.0", "3.0"]) == {"mean": 2.0, "std": 1.0, "min": 1.0, "max": 3.0}


@pytest.mark.slow
def test_stsb_regression_loop_from_a_pretrained_model_with_train_initial_model(setup, tmp_path):
    # M0 is obtained inside the loop (round 0 = vanilla fine-tune) from another task's checkpoint, whose
    # classification head is dropped for a fresh regression head
    save = tmp_path / "stsb"
    r = run_loop(
        setup,
        save,
        "--max-rounds",
        "1",
        "--converge-eps",
        "0",
        "--train-initial-model",
        "--regression-target",
        "--classification-head-name",
        "stsb_head",
        "--best-checkpoint-metric",
        "pearson",
        glue_task="STS-B",
        data=os.path.join(FIXTURES, "STS-B"),
    )
    assert r.returncode == 0, r.stderr[-3000:]
    state = state_of(save)
    assert state["rounds"][0]["model"] == str(save / "round_0" / "checkpoint_best.pt")
    scores = RoundPredictions.read(state["rounds"][1]["predictions"]).labels
    assert len(scores) == 12 and all(0.0 <= float(x) <= 5.0 for x in scores)
    assert set(state["rounds"][1]["distribution"]) == {"mean", "std", "min", "max"}
    assert r.stdout.strip().splitlines()[-1].startswith("dev pearson")


@pytest.mark.slow
def test_loop_flag_mistakes_are_clear_errors(setup):
    from argparse import Namespace

    from vega_toolkit.adaptation.rounds import check_round_args

    ok = dict(
        task="glue_transductive",
        finetune_from_model=setup["m0"],
        restore_file="checkpoint_last.pt",
        max_rounds=2,
        converge_eps=0.01,
        glue_task="WNLI",
        data=os.path.join(FIXTURES, "WNLI"),
        pseudo_label_split="test",
    )
    with pytest.raises(ValueError, match="needs --finetune-from-model"):
        check_round_args(Namespace(**{**ok, "finetune_from_model": None}))
    with pytest.raises(ValueError, match="--restore-file is not supported"):
        check_round_args(Namespace(**{**ok, "restore_file": "x.pt"}))
    with pytest.raises(ValueError, match="--reset-optimizer cannot"):
        check_round_args(Namespace(**{**ok, "reset_optimizer": True}))
    with pytest.raises(ValueError, match="--converge-eps"):
        check_round_args(Namespace(**{**ok, "converge_eps": 5.0}))
    check_round_args(Namespace(**ok))


@pytest.mark.slow
@pytest.mark.parametrize("task", ["glue_transductive", "glue_self_calibrated"])
def test_plain_fairseq_train_of_a_loop_task_stops_and_names_vega_train(setup, tmp_path, task):
    """fairseq-train would train one round and exit 0, as if it were the algorithm; the task stops at setup
    instead, saying the loop is vega-train's (a round of the loop itself passes --adaptation-round)."""
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    save = tmp_path / "plain"
    args = loop_args(
        task,
        "SST-2",
        setup["data"],
        setup["vocab"],
        str(save),
        setup["cache"],
        ["--finetune-from-model", setup["m0"], "--max-rounds", "1"],
    )
    r = subprocess.run(
        [str(Path(sys.executable).parent / "fairseq-train"), "--user-dir", "user_dir", *args],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ, OMP_NUM_THREADS="1"),
    )
    assert r.returncode != 0
    assert f"--task {task} is a loop of several trainings" in r.stderr and "vega-train <same arguments>" in r.stderr
    assert not (save / "checkpoint_last.pt").exists() and not (save / "checkpoint_best.pt").exists()


@pytest.mark.slow
def test_a_loop_task_loads_from_its_checkpoint_for_prediction(full_run):
    """The refusal is for trainings only: a round's checkpoint (task glue_transductive) still loads to predict."""
    from vega_toolkit.models.glue_predictor import GluePredictor

    save, _ = full_run
    predictor = GluePredictor.from_checkpoint(str(save / "checkpoint_best.pt"), device="cpu")
    assert predictor.task.cfg._name == "glue_transductive" and predictor.task.cfg.adaptation_round
    assert len(predictor.predict(["the cat likes music ."])) == 1


@pytest.mark.slow
def test_wnli_transductive_recipe_runs_at_tiny_scale_on_real_wnli(model_dir, tmp_path):
    """Contract of recipes/glue on the real WNLI files (the fixture run is part of test_glue_recipes' all.sh)."""
    import re
    import subprocess

    from glue_helpers import recipe_env

    glue_dir = os.environ.get("VEGA_GLUE_DIR")
    if not glue_dir:
        pytest.skip("needs VEGA_GLUE_DIR (on fixtures the recipe runs in test_glue_recipes' all.sh test)")
    out = tmp_path / "out"
    recipe = os.path.join(os.path.dirname(FIXTURES), "..", "..", "recipes", "glue", "wnli_transductive.sh")
    r = subprocess.run(
        ["bash", recipe],
        env=recipe_env(glue_dir, model_dir, str(out), str(tmp_path / "cache")),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    assert re.match(r"^dev accuracy=\d+\.\d+$", r.stdout.strip().splitlines()[-1])
    state = state_of(out / "WNLI")
    assert state["done"] and state["rounds"][0]["model"] == str(out / "WNLI" / "round_0" / "checkpoint_best.pt")
    assert os.path.isfile(out / "WNLI" / "checkpoint_best.pt")  # the final model, where all.sh looks for it
    with open(out / "WNLI" / "predictions" / "WNLI.tsv") as f:
        assert len(f.read().splitlines()) == state["rounds"][-1]["n"] + 1
