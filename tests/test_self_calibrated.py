"""`glue_self_calibrated` (Algorithm 2): KenLM selection from an external pool (real lmplz), relabelling by M0,
the agreement filter against deliberately flipped labels, then the transductive loop."""

import json
import os
import random
from argparse import Namespace

import pytest
from adaptation_helpers import loop_args, sentences, train_m0, write_synthetic_sst2
from glue_helpers import FIXTURES, make_vocab_dir, vega_train

from vega_toolkit.adaptation.self_calibration import agrees, calibrate, read_external
from vega_toolkit.data.glue_tasks import get_glue_task

OUT_OF_DOMAIN = [
    "why do stock prices fall when interest rates rise ?",
    "parliament passed the budget late on friday .",
    "quarterly revenue grew nine percent year over year .",
    "the striker scored twice in extra time .",
    "heavy rain is expected across the northern coast .",
    "click here to reset your password now .",
]


@pytest.fixture(scope="module")
def setup(kenlm_programs, tmp_path_factory):
    root = tmp_path_factory.mktemp("sc")
    vocab = make_vocab_dir(str(root / "vocab"))
    data, _, used = write_synthetic_sst2(str(root))
    m0 = train_m0(data, vocab, str(root / "m0"), str(root / "cache"), epochs=8)  # learns the verb rule
    # external pool in SST-2's train layout: 60 fresh in-domain rows, 20 of them with a flipped label, + 30
    # out-of-domain rows (labels arbitrary) that the selection must leave out
    rng = random.Random(7)
    seen = {s for s, _ in used}
    fresh = [row for row in sentences(random.Random(11), 400) if row[0] not in seen][:60]
    flipped = set(rng.sample(range(60), 20))
    pool = [(s, ("0" if y == "1" else "1") if i in flipped else y) for i, (s, y) in enumerate(fresh)]
    ood = [(OUT_OF_DOMAIN[i % len(OUT_OF_DOMAIN)] + f" {i}", rng.choice("01")) for i in range(30)]
    pool += ood
    rng.shuffle(pool)
    external = root / "external.tsv"
    external.write_text("sentence\tlabel\n" + "".join(f"{s}\t{y}\n" for s, y in pool))
    return {
        "root": root,
        "vocab": vocab,
        "data": data,
        "m0": m0,
        "cache": str(root / "cache"),
        "external": str(external),
        "flipped": {fresh[i][0] for i in flipped},
        "clean": {fresh[i][0] for i in range(60) if i not in flipped},
        "ood": {s for s, _ in ood},
    }


def calib_args(setup, **kw):
    base = dict(
        data=setup["data"],
        external_data=setup["external"],
        external_format="labelled",
        selection_top_k=60,
        selection_max_ppl=0.0,
        selection_general="",
        lm_order=3,
        confidence_threshold=0.0,
        regression_tolerance=0.5,
    )
    return Namespace(**{**base, **kw})


def calibrated_sentences(record):
    with open(record["calibrated_path"]) as f:
        return [line.split("\t")[0] for line in f.read().splitlines()[1:]]


def test_agreement_filter_removes_most_flipped_labels(setup, tmp_path):
    record = calibrate(calib_args(setup), setup["m0"], str(tmp_path))
    with open(tmp_path / "selected.tsv") as f:
        selected = [line.split("\t")[0] for line in f.read().splitlines()]
    kept = calibrated_sentences(record)
    in_domain_selected = sum(s not in setup["ood"] for s in selected)
    flipped_kept = sum(s in setup["flipped"] for s in kept)
    clean_kept = sum(s in setup["clean"] for s in kept)
    print(
        f"selection: {in_domain_selected}/{len(selected)} in-domain; agreement {record['agreement_rate']:.1%}; "
        f"flipped kept {flipped_kept}/{len(setup['flipped'])}, clean kept {clean_kept}/{len(setup['clean'])}"
    )
    assert record["pool"] == 90 and record["selected"] == 60
    assert in_domain_selected >= 57  # the KenLM selection keeps the task-like rows
    assert flipped_kept <= 0.2 * len(setup["flipped"])  # most flipped labels are filtered out
    assert clean_kept >= 0.8 * len(setup["clean"])  # most correct ones survive
    assert record["calibrated"] == len(kept) == record["agreed"]


def test_unlabelled_pool_keeps_every_selected_row_with_its_pseudo_label(setup, tmp_path):
    text = tmp_path / "pool.txt"
    with open(setup["external"]) as f:
        text.write_text("".join(line.split("\t")[0] + "\n" for line in f.read().splitlines()[1:]))
    record = calibrate(calib_args(setup, external_data=str(text), external_format="text"), setup["m0"], str(tmp_path))
    assert record["agreement_rate"] is None and record["calibrated"] == record["selected"] == 60
    from vega_toolkit.models.glue_predictor import GluePredictor

    rows = [line.split("\t") for line in open(record["calibrated_path"]).read().splitlines()[1:]]
    predicted = GluePredictor.from_checkpoint(setup["m0"]).predict([s for s, _ in rows])
    assert [y for _, y in rows] == predicted


def test_pool_format_errors_name_the_problem(tmp_path):
    bad = tmp_path / "bad.tsv"
    bad.write_text("sentence\tlabel\nfine sentence .\t1\nbroken row without label\n")
    with pytest.raises(ValueError, match=f"{bad}:3"):
        read_external(str(bad), get_glue_task("SST-2"), "labelled")
    with pytest.raises(ValueError, match="sentence-pair task"):
        read_external(str(bad), get_glue_task("RTE"), "text")


def test_regression_agreement_uses_the_tolerance():
    stsb = get_glue_task("STS-B")
    assert agrees(stsb, "3.2", "3.6", 0.5) and not agrees(stsb, "3.2", "4.0", 0.5)
    assert agrees(get_glue_task("SST-2"), "1", "1", 0.5) and not agrees(get_glue_task("SST-2"), "0", "1", 0.5)


def test_vega_train_runs_selection_calibration_and_the_transductive_loop(setup, tmp_path):
    save = tmp_path / "run"
    args = loop_args(
        "glue_self_calibrated",
        "SST-2",
        setup["data"],
        setup["vocab"],
        str(save),
        setup["cache"],
        [
            "--finetune-from-model",
            setup["m0"],
            "--external-data",
            setup["external"],
            "--selection-top-k",
            "60",
            "--lm-order",
            "3",
            "--max-rounds",
            "1",
            "--converge-eps",
            "0",
            "--no-epoch-checkpoints",
        ],
    )
    r = vega_train(args)
    assert r.returncode == 0, r.stderr[-3000:]
    with open(save / "adaptation_state.json") as f:
        state = json.load(f)
    sc = state["self_calibration"]
    assert sc["pool"] == 90 and sc["selected"] == 60 and sc["calibrated"] == sc["agreed"]
    assert sc["model"] == str(save / "self_calibration" / "train" / "checkpoint_best.pt")
    assert state["rounds"][0]["model"] == sc["model"]  # Algorithm 1 starts from M0'
    assert [x["round"] for x in state["rounds"]] == [0, 1]
    out = r.stdout.strip().splitlines()
    assert any(line.startswith("self-calibration: pool 90, selected 60, agreement") for line in out)
    assert out[-1].startswith("dev accuracy=")
    # a rerun of a finished run does no new work
    r2 = vega_train(args)
    assert r2.returncode == 0 and "vega_toolkit.adaptation.rounds:training " not in r2.stderr


def test_missing_external_pool_and_bad_format_are_clear_errors(tmp_path):
    from vega_toolkit.adaptation import round_driver

    drive = round_driver("glue_self_calibrated")
    (tmp_path / "m0.pt").write_bytes(b"")
    (tmp_path / "pool.tsv").write_text("sentence\tlabel\n")
    args = dict(
        task="glue_self_calibrated",
        finetune_from_model=str(tmp_path / "m0.pt"),
        restore_file="checkpoint_last.pt",
        max_rounds=1,
        converge_eps=0.01,
        external_data=str(tmp_path / "missing.tsv"),
        external_format="labelled",
        selection_top_k=10,
        selection_max_ppl=0.0,
    )
    with pytest.raises(FileNotFoundError, match="--external-data .*missing.tsv: file not found"):
        drive(Namespace(**args))
    with pytest.raises(ValueError, match="--external-format 'csv'"):
        drive(Namespace(**{**args, "external_data": str(tmp_path / "pool.tsv"), "external_format": "csv"}))


def test_cola_selfcal_recipe_runs_at_tiny_scale_on_real_cola(kenlm_programs, model_dir, tmp_path):
    """Contract of recipes/glue on real CoLA, external pool: SST-2 dev + CoLA test sentences as unlabelled text (the
    fixture run, with the recipe's default pool, is part of test_glue_recipes' all.sh test)."""
    import re
    import subprocess

    from glue_helpers import recipe_env

    glue_dir = os.environ.get("VEGA_GLUE_DIR")
    if not glue_dir:
        pytest.skip("needs VEGA_GLUE_DIR (on fixtures the recipe runs in test_glue_recipes' all.sh test)")
    from vega_toolkit.data.glue_readers import read_glue_split

    pool = tmp_path / "pool.txt"  # never CoLA dev text: dev scores the result
    texts = [ex.text_a for ex in read_glue_split(glue_dir, "SST-2", "dev")]
    texts += [ex.text_a for ex in read_glue_split(glue_dir, "CoLA", "test")]
    pool.write_text("".join(t + "\n" for t in texts))
    extra = {"EXTERNAL": str(pool), "EXTERNAL_FORMAT": "text", "TOP_K": "500", "MAX_UPDATE": "100"}
    out = tmp_path / "out"
    recipe = os.path.join(os.path.dirname(FIXTURES), "..", "..", "recipes", "glue", "cola_selfcal.sh")
    r = subprocess.run(
        ["bash", recipe],
        env=recipe_env(glue_dir, model_dir, str(out), str(tmp_path / "cache"), **extra),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    assert re.match(r"^dev mcc=-?\d+\.\d+$", r.stdout.strip().splitlines()[-1])
    with open(out / "CoLA" / "adaptation_state.json") as f:
        sc = json.load(f)["self_calibration"]
    print(f"real CoLA self-calibration: {sc}; {r.stdout.strip().splitlines()[-1]}")
    assert sc["selected"] > 0 and sc["calibrated"] > 0
    assert os.path.isfile(out / "CoLA" / "checkpoint_best.pt")
