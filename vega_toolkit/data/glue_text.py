"""Unlabelled GLUE training text for task-adaptive pretraining (Gururangan et al., 2020, "Don't Stop Pretraining").

    vega-glue text glue_data --tasks CoLA,SST-2,MRPC,STS-B,RTE,WNLI --out corpus/glue_train.txt
    vega-preprocess corpus/gutenberg corpus/glue_train.txt --paragraphs --destdir data-bin/gutenberg+glue ...

Only the *training* split is ever read (never dev or test: their text must stay unseen by every model that is
scored on them), labels are dropped, and each sentence (each side of a pair) becomes its own paragraph, a line
followed by a blank line, so `vega-preprocess` keeps it one unit with or without `--paragraphs`.
"""

from collections.abc import Iterable

from vega_toolkit.data.glue_readers import read_glue_split

TAPT_SPLIT = "train"


def write_training_text(glue_dir: str, tasks: Iterable[str], out_path: str) -> int:
    """Write the training sentences of TASKS to OUT_PATH; returns the number of sentences written."""
    from vega_toolkit.io.atomic import atomic_write

    sentences = []
    for task in tasks:
        for example in read_glue_split(glue_dir, task, TAPT_SPLIT):
            sentences += [s.strip() for s in (example.text_a, example.text_b) if s and s.strip()]

    def write(f):
        f.write("".join(s + "\n\n" for s in sentences).encode("utf-8"))

    atomic_write(out_path, write)
    return len(sentences)
