"""Select the sentences of an external pool D* that look like a task's training text D_s (KenLM perplexity or
Moore-Lewis cross-entropy difference), streaming the pool with memory bounded by the selection size.

    from vega_toolkit.selection.select import DomainScorer, PoolFormat, select_file
    scorer = DomainScorer.train("work/", in_domain=open("train.txt"), general=None, order=4, discount_fallback=True)
    stats = select_file("pool.tsv", "selected.tsv", scorer, PoolFormat(columns=(3,)), top_k=5000)

Scores (lower = more in-domain), per-token log10 cross-entropies H over normalised text (selection/lm.py):
- perplexity: H_in(s), the CCNet-style filter (cc_net/perplexity.py);
- Moore-Lewis (Moore & Lewis, ACL 2010): H_in(s) - H_gen(s) with a second LM on general text. Subtracting the
  general LM removes the bias towards short, generically fluent sentences that plain perplexity prefers.
A pair (two text columns) is scored as one sequence of two sentences: log-probs and token counts are summed.
"""

import heapq
import logging
import os
import random
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

from vega_toolkit.selection.lm import NgramScorer, normalize, train_ngram_lm

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PoolFormat:
    """How to read text out of a file: the whole line, or zero-based tab-separated `columns`."""

    columns: tuple[int, ...] | None = None  # None: each line is one sentence
    header: bool = False  # the first line is a header (copied to the output, never scored)

    def segments(self, line: str, where: str) -> list[str]:
        if self.columns is None:
            return [line]
        fields = line.split("\t")
        if len(fields) <= max(self.columns):
            raise ValueError(
                f"{where}: expected at least {max(self.columns) + 1} tab-separated fields "
                f"(--columns {','.join(map(str, self.columns))}), found {len(fields)}"
            )
        return [fields[c] for c in self.columns]


def read_rows(path: str, fmt: PoolFormat) -> Iterator[tuple[int, str, list[str]]]:
    """Stream (line number, raw line without newline, text segments) over the data rows of `path`."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: file not found")
    with open(path, encoding="utf-8", newline="\n") as f:
        for number, raw in enumerate(f, start=1):
            line = raw.rstrip("\r\n")
            if number == 1 and fmt.header:
                continue
            if not line.strip():
                continue  # blank lines carry no sentence; they are not part of the pool
            yield number, line, fmt.segments(line, f"{path}:{number}")


def read_header(path: str, fmt: PoolFormat) -> str | None:
    if not fmt.header:
        return None
    with open(path, encoding="utf-8", newline="\n") as f:
        return f.readline().rstrip("\r\n")


def reservoir_sample(items: Iterable, size: int, seed: int = 1) -> list:
    """A uniform sample of `size` items from a stream of unknown length (Algorithm R), in stream order."""
    rng = random.Random(seed)
    sample: list[tuple[int, object]] = []
    for i, item in enumerate(items):
        if i < size:
            sample.append((i, item))
        else:
            j = rng.randint(0, i)
            if j < size:
                sample[j] = (i, item)
    return [item for _, item in sorted(sample, key=lambda p: p[0])]


class DomainScorer:
    """In-domain (and optional general) KenLM; `score(segments)` -> (ranking score, in-domain perplexity)."""

    def __init__(self, in_domain_lm: str, general_lm: str | None = None):
        self.in_domain = NgramScorer(in_domain_lm)
        self.general = NgramScorer(general_lm) if general_lm else None

    @property
    def method(self) -> str:
        return "moore-lewis" if self.general is not None else "perplexity"

    @classmethod
    def train(
        cls,
        work_dir: str,
        in_domain: Iterable[str],
        general: Iterable[str] | None = None,
        order: int = 4,
        discount_fallback: bool = False,
        memory: str = "10%",
    ) -> "DomainScorer":
        """Train the in-domain LM (and the general one when `general` is given) into `work_dir`."""
        in_lm = train_ngram_lm(in_domain, os.path.join(work_dir, "in_domain"), order, discount_fallback, memory)
        gen_lm = None
        if general is not None:
            gen_lm = train_ngram_lm(general, os.path.join(work_dir, "general"), order, discount_fallback, memory)
        return cls(in_lm, gen_lm)

    def score(self, segments: Sequence[str]) -> tuple[float, float]:
        texts = [normalize(s) for s in segments]
        log_in, n = self.in_domain.log10_prob(texts, normalized=True)
        h_in = -log_in / n
        if self.general is None:
            return h_in, 10.0**h_in
        log_gen, _ = self.general.log10_prob(texts, normalized=True)
        return h_in + log_gen / n, 10.0**h_in


@dataclass
class SelectionStats:
    method: str
    scored: int
    selected: int
    seconds: float

    @property
    def per_minute(self) -> float:
        return 60.0 * self.scored / max(self.seconds, 1e-9)

    def summary(self) -> str:
        return (
            f"{self.method}: selected {self.selected} of {self.scored} in {self.seconds:.1f} s "
            f"({self.per_minute:,.0f} sentences/min)"
        )


def select_stream(
    rows: Iterable[tuple[object, Sequence[str]]],
    scorer: DomainScorer,
    top_k: int | None = None,
    max_ppl: float | None = None,
    max_score: float | None = None,
    on_keep: Callable[[object, float, float], None] | None = None,
) -> tuple[list[tuple[float, float, object]], SelectionStats]:
    """Score (payload, segments) rows; keep the `top_k` lowest scores, or every row with in-domain perplexity
    <= `max_ppl`, or score <= `max_score` (exactly one criterion). Threshold selections are handed to `on_keep`
    as they stream (nothing is held in memory); top-k holds at most k rows in a heap. Returns the kept
    (score, ppl, payload) in stream order (empty for thresholds with `on_keep`) and the stats."""
    if sum(x is not None for x in (top_k, max_ppl, max_score)) != 1:
        raise ValueError("choose exactly one of top_k, max_ppl, max_score")
    if top_k is not None and top_k < 0:
        raise ValueError(f"top_k must be >= 0, got {top_k}")
    heap: list[tuple[float, int, float, object]] = []  # (-score, -position, ppl, payload): root = worst kept
    kept: list[tuple[float, float, object]] = []
    n_kept = 0
    start = time.perf_counter()
    n = 0
    for n, (payload, segments) in enumerate(rows, start=1):
        score, ppl = scorer.score(segments)
        if top_k is not None:
            # ties keep the earlier row (the larger -position wins the heap order)
            item = (-score, -n, ppl, payload)
            if len(heap) < top_k:
                heapq.heappush(heap, item)
            elif top_k and item > heap[0]:
                heapq.heapreplace(heap, item)
            continue
        if (max_ppl is not None and ppl <= max_ppl) or (max_score is not None and score <= max_score):
            n_kept += 1
            if on_keep is not None:
                on_keep(payload, score, ppl)
            else:
                kept.append((score, ppl, payload))
    if top_k is not None:
        ordered = sorted(heap, key=lambda item: -item[1])
        kept = [(-neg_score, ppl, payload) for neg_score, _, ppl, payload in ordered]
        n_kept = len(kept)
    stats = SelectionStats(scorer.method, n, n_kept, time.perf_counter() - start)
    return kept, stats


def select_file(
    pool: str,
    out: str,
    scorer: DomainScorer,
    fmt: PoolFormat = PoolFormat(),
    top_k: int | None = None,
    max_ppl: float | None = None,
    max_score: float | None = None,
    scores_out: str | None = None,
) -> SelectionStats:
    """Write the selected rows of `pool` to `out` unchanged (a TSV pool stays in its own format; its header is
    copied), in pool order. `scores_out` additionally gets `score<TAB>ppl<TAB>line` for each kept row."""
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    header = read_header(pool, fmt)
    rows = ((line, segments) for _, line, segments in read_rows(pool, fmt))
    tmp = out + ".tmp"
    try:
        with (
            open(tmp, "w", encoding="utf-8") as f,
            open(scores_out, "w", encoding="utf-8") if scores_out else open(os.devnull, "w") as fs,
        ):
            if header is not None:
                f.write(header + "\n")

            def write(line, score, ppl):
                f.write(line + "\n")
                fs.write(f"{score:.6f}\t{ppl:.2f}\t{line}\n")

            kept, stats = select_stream(rows, scorer, top_k, max_ppl, max_score, on_keep=write)
            for score, ppl, line in kept:
                write(line, score, ppl)
    except BaseException:
        if os.path.exists(tmp):  # a failed selection leaves no half-written file behind
            os.unlink(tmp)
        raise
    os.replace(tmp, out)
    return stats
