"""GLUE metrics against scikit-learn/scipy on fixed predictions, and the GLUE score arithmetic."""

import numpy as np
import pytest
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

from vega_toolkit.metrics.glue_metrics import (
    accuracy,
    f1,
    glue_score,
    matthews_corr,
    pearson,
    spearman,
    task_metrics,
    task_score,
)

RNG = np.random.default_rng(1234)
BIN_LABELS = RNG.integers(0, 2, size=200)
BIN_PREDS = np.where(RNG.random(200) < 0.7, BIN_LABELS, 1 - BIN_LABELS)
NLI_LABELS = RNG.integers(0, 3, size=300)
NLI_PREDS = np.where(RNG.random(300) < 0.6, NLI_LABELS, RNG.integers(0, 3, size=300))
STS_LABELS = np.round(RNG.uniform(0, 5, size=150) * 5) / 5  # many ties, as the real 0.2-step scores
STS_PREDS = STS_LABELS + RNG.normal(0, 1.0, size=150)


def test_binary_metrics_match_sklearn():
    assert accuracy(BIN_PREDS, BIN_LABELS) == pytest.approx(100 * accuracy_score(BIN_LABELS, BIN_PREDS))
    assert f1(BIN_PREDS, BIN_LABELS) == pytest.approx(100 * f1_score(BIN_LABELS, BIN_PREDS))
    assert matthews_corr(BIN_PREDS, BIN_LABELS) == pytest.approx(100 * matthews_corrcoef(BIN_LABELS, BIN_PREDS))


def test_multiclass_mcc_matches_sklearn():
    assert matthews_corr(NLI_PREDS, NLI_LABELS) == pytest.approx(100 * matthews_corrcoef(NLI_LABELS, NLI_PREDS))


def test_constant_predictor_has_zero_mcc_like_sklearn():
    const = np.ones_like(BIN_LABELS)
    assert matthews_corr(const, BIN_LABELS) == 0.0 == matthews_corrcoef(BIN_LABELS, const)


def test_correlations_match_scipy_including_ties():
    assert pearson(STS_PREDS, STS_LABELS) == pytest.approx(100 * pearsonr(STS_PREDS, STS_LABELS)[0])
    assert spearman(STS_PREDS, STS_LABELS) == pytest.approx(100 * spearmanr(STS_PREDS, STS_LABELS)[0])
    ties = np.round(STS_PREDS)
    assert spearman(ties, STS_LABELS) == pytest.approx(100 * spearmanr(ties, STS_LABELS)[0])


def test_task_metrics_follow_the_task_table():
    cola = task_metrics("CoLA", BIN_PREDS, BIN_LABELS)
    assert set(cola) == {"mcc"}
    mrpc = task_metrics("MRPC", [str(x) for x in BIN_PREDS], [str(x) for x in BIN_LABELS])
    assert mrpc["f1"] == pytest.approx(100 * f1_score(BIN_LABELS, BIN_PREDS))
    assert mrpc["acc_and_f1"] == pytest.approx((mrpc["f1"] + mrpc["accuracy"]) / 2)
    stsb = task_metrics("STS-B", STS_PREDS, STS_LABELS)
    assert stsb["pearson_and_spearman"] == pytest.approx((stsb["pearson"] + stsb["spearman"]) / 2)
    assert set(task_metrics("MNLI", NLI_PREDS, NLI_LABELS)) == {"accuracy"}


def test_glue_score_reproduces_bert_large_leaderboard_average():
    # BERT-large GLUE test results (objectives.md §7.3): the official average is 80.5
    s = {
        "CoLA": task_score("CoLA", {"mcc": 60.5}),
        "SST-2": 94.9,
        "MRPC": task_score("MRPC", {"f1": 89.3, "accuracy": 85.4}),
        "STS-B": task_score("STS-B", {"pearson": 87.6, "spearman": 86.5}),
        "QQP": task_score("QQP", {"f1": 72.1, "accuracy": 89.3}),
        "MNLI": (86.7 + 85.9) / 2,
        "QNLI": 92.7,
        "RTE": 70.1,
        "WNLI": 65.1,
        "AX": 0.0,  # excluded from the average
    }
    assert glue_score(s) == pytest.approx(80.52, abs=0.01)


def test_mismatched_lengths_and_empty_inputs_are_rejected():
    with pytest.raises(ValueError, match="same length"):
        accuracy([0, 1], [0])
    with pytest.raises(ValueError, match="empty"):
        accuracy([], [])
    with pytest.raises(KeyError, match="missing"):
        task_score("MRPC", {"f1": 1.0})
