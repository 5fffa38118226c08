"""Frozen-feature probes: what a model folder's layers say about a single-sentence GLUE task before fine-tuning.

    vega-study probe models/rtd_ternary models/random --glue-dir glue_data --task SST-2

For every layer (0 = embeddings), the [CLS] state and the mean over the sentence's tokens are fed to a logistic
regression (scikit-learn, standardised features) trained on `--train-examples` training sentences and scored on
the whole dev split; `mean_cos` is the mean pairwise cosine of the mean-pooled states of 200 dev sentences (1 = all
sentences map to one direction). A probe at the majority-class rate means the state carries nothing the task can use
linearly: that is how the untrained [CLS] of a token-level-only objective shows up (docs/results.md).
"""

import itertools

import numpy as np
import torch

from vega_toolkit.data.glue_readers import read_glue_split
from vega_toolkit.models.heads import pool

ANISOTROPY_SENTENCES = 200


def _layer_features(hub, sentences: list[str], batch: int = 64, max_tokens: int = 128):
    """{pooling: [layer][N, H]} for 'cls' and 'mean'."""
    out = {"cls": None, "mean": None}
    for start in range(0, len(sentences), batch):
        tokens = [hub.encode(s)[:max_tokens] for s in sentences[start : start + batch]]
        with torch.no_grad():
            states = hub.extract_features(hub.collate(tokens), return_all_hiddens=True)
        padding = hub.collate(tokens).eq(hub.dictionary.pad())
        for how in out:
            pooled = [pool(h, padding, how).float().numpy() for h in states]
            if out[how] is not None:
                pooled = [np.vstack([a, b]) for a, b in zip(out[how], pooled, strict=True)]
            out[how] = pooled
    return out


def mean_pairwise_cosine(x: np.ndarray) -> float:
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    sims = x @ x.T
    n = len(x)
    return float((sims.sum() - n) / (n * (n - 1)))


def probe_model(
    model_dir: str, glue_dir: str, task: str = "SST-2", train_examples: int = 4000, seed: int = 0
) -> list[dict]:
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    from vega_toolkit import VegaModel

    torch.manual_seed(seed)
    hub = VegaModel.from_pretrained(model_dir)
    train = read_glue_split(glue_dir, task, "train")
    train = [train[i] for i in np.random.RandomState(seed).permutation(len(train))[:train_examples]]
    dev = read_glue_split(glue_dir, task, "dev")
    if any(ex.text_b for ex in itertools.chain(train, dev)):
        raise ValueError(f"probe: {task} is a sentence-pair task; probe a single-sentence task (SST-2, CoLA)")
    labels = {name: i for i, name in enumerate(sorted({ex.label for ex in train}))}
    y_train = np.array([labels[ex.label] for ex in train])
    y_dev = np.array([labels[ex.label] for ex in dev])
    f_train = _layer_features(hub, [ex.text_a for ex in train])
    f_dev = _layer_features(hub, [ex.text_a for ex in dev])
    rows = []
    for layer in range(len(f_train["cls"])):
        row = {"layer": layer}
        for how in ("cls", "mean"):
            scaler = StandardScaler().fit(f_train[how][layer])
            clf = LogisticRegression(max_iter=2000).fit(scaler.transform(f_train[how][layer]), y_train)
            row[f"{how}_probe"] = float(clf.score(scaler.transform(f_dev[how][layer]), y_dev))
        row["mean_cos"] = mean_pairwise_cosine(f_dev["mean"][layer][:ANISOTROPY_SENTENCES])
        rows.append(row)
    majority = float(np.bincount(y_dev).max() / len(y_dev))
    for row in rows:
        row["majority"] = majority
    return rows
