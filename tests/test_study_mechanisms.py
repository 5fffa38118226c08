"""`vega-study mechanisms`: what SiFT and the adaptation rounds did, read from the study cells' logs (the smoke
ablation test in test_study_arms.py runs it on the logs the real tools write)."""

import json

import pytest

from vega_toolkit.cli.study import cli_main
from vega_toolkit.study.mechanisms import adaptation_rounds
from vega_toolkit.study.runner import cell_log_path

ROUNDS_HEADER = "| round | model | pseudo-labels used | changed | distribution | dev |\n|---|---|---|---|---|---|\n"


def _rounds(*rows) -> str:
    """A round summary as `vega-train --task glue_transductive` prints it: rows of (dev, changed of 100 or None)."""
    lines = [
        f"| {k} | ckpt/round_{k}/checkpoint_best.pt | 100/100 | {'-' if c is None else f'{c} ({c:.1f}%)'} | "
        f'{{"0": 40, "1": 60}} | mcc={dev:.2f} |'
        for k, (dev, c) in enumerate(rows)
    ]
    return ROUNDS_HEADER + "\n".join(lines) + "\nstopped: --max-rounds 1 reached\n"


def _study(out, cells):
    """results.jsonl and OUT/logs/ of finished cells: (arm, task, lr, seed, score, log text, extra flags)."""
    records = []
    for arm, task, lr, seed, score, log, flags in cells:
        name = f"{arm}/{task}/lr{lr}/seed{seed}"
        records.append(
            {
                "kind": "finetune",
                "arm": arm,
                "task": task,
                "lr": lr,
                "seed": seed,
                "score": score,
                "key": name,
                "name": name,
                "commands": [f"vega-train glue/{task} --lr {lr} {flags}"],
            }
        )
        path = cell_log_path(out, name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(log)
    (out / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))


SIFT_LOG = (
    "INFO:train_inner:epoch 001:     50 / 268 loss=0.928, adv_loss=0.000529, num_updates=50\n"
    "INFO:train:epoch 001 | loss 1 | nll_loss 0.07 | adv_loss 0.0693147 | num_updates 268 | lr 0.0007\n"
    "INFO:train:epoch 002 | loss 0.5 | nll_loss 0.07 | adv_loss 0 | num_updates 536 | lr 0 | wall 1\n"
)


def test_mechanisms_report_sift_share_rounds_against_the_baseline_and_self_calibration(tmp_path, capsys):
    selfcal = "self-calibration: pool 500, selected 50, agreement n/a, calibrated 50 -> M0' = m.pt\n"
    resumed = _rounds((1.0, None)) + "killed\n"  # an attempt's summary, then the resumed loop's: the last one counts
    _study(
        tmp_path,
        [
            ("rtd_ternary", "CoLA", 0.001, 1, 10.0, "", ""),
            ("rtd_ternary", "CoLA", 0.001, 2, 12.0, "", ""),
            ("glue_self_calibrated", "CoLA", 0.001, 1, 14.0, resumed + selfcal + _rounds((8.0, None), (14.0, 10)), ""),
            ("glue_self_calibrated", "CoLA", 0.001, 2, 13.0, selfcal + _rounds((9.0, None), (13.0, 20)), ""),
            ("adversarial_ce", "SST-2", 0.001, 1, 80.0, SIFT_LOG, "--criterion adversarial_ce --adv-lambda 5"),
        ],
    )
    assert cli_main(["mechanisms", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    # SiFT: 5 * 0.0693147 nats over 1 bit (0.693147 nats) is half the loss in epoch 1, nothing in epoch 2
    assert "| SST-2 | 1 | 25.0% | 25.0% | 25.0% |" in printed
    # round 0 against the same seeds of rtd_ternary: 8 - 10 and 9 - 12; the rounds then add 6 and 4
    assert (
        "| `glue_self_calibrated` | CoLA | 0.001 | 2 | 8.50 ± 0.71 → 13.50 ± 0.71 | 15.0% | "
        "-2.50 ± 0.71 (`rtd_ternary`) | +5.00 ± 1.41 |"
    ) in printed
    assert "| `glue_self_calibrated` | CoLA | 2 | 500 | 50 | n/a | 50 |" in printed


def test_a_round_summary_ends_at_the_first_line_that_is_not_a_row():
    text = _rounds((5.0, None), (7.5, 3)) + "| 9 | not | a | row |\n"
    assert adaptation_rounds(text) == [
        {"round": 0, "dev": 5.0, "changed_fraction": None},
        {"round": 1, "dev": 7.5, "changed_fraction": 0.03},
    ]
    assert adaptation_rounds("no loop here") == []


def test_a_study_without_such_cells_is_an_error_naming_the_logs_folder(tmp_path):
    _study(tmp_path, [("rtd_ternary", "CoLA", 0.001, 1, 10.0, "plain fine-tuning\n", "")])
    with pytest.raises(SystemExit) as exit_:
        cli_main(["mechanisms", str(tmp_path)])
    assert "no finished SiFT or adaptation-round cell" in str(exit_.value) and str(tmp_path / "logs") in str(
        exit_.value
    )
