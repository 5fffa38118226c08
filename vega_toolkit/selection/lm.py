"""KenLM n-gram language models: estimation with the real `lmplz`/`build_binary`, scoring with the `kenlm` module.

    from vega_toolkit.selection.lm import train_ngram_lm, NgramScorer, normalize
    path = train_ngram_lm(open("CoLA/train.txt"), "work/cola", order=4, discount_fallback=True)  # work/cola.binary
    scorer = NgramScorer(path)
    scorer.cross_entropy(["The cat sat.", "On the mat."])   # log10 per-token cross-entropy of the segments

Tokenisation (the same function for LM training and scoring, so the two can never disagree): NFKC, lower case,
then words and single punctuation marks (`\\w+|[^\\w\\s]`). It is deliberately independent of any model's
sentencepiece: `vega-select` is used alone on arbitrary corpora, and word n-grams over lower-cased text are what
Moore & Lewis (2010) and CCNet-style perplexity filters estimate (CCNet uses sentencepiece pieces because its LMs
are multilingual; for English GLUE text words keep the n-gram order meaningful).

Perplexity follows cc_net/perplexity.py: `10 ** (-sum(log10 p) / sum(tokens + 1))`, the +1 being `</s>`.
"""

import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unicodedata
from collections.abc import Iterable, Sequence

from vega_toolkit.errors import UserError

logger = logging.getLogger(__name__)

INSTALL_HINT = "bash scripts/build_kenlm.sh .venv"
_TOKEN = re.compile(r"\w+|[^\w\s]")


class KenLMNotFoundError(UserError, RuntimeError):
    """lmplz/build_binary are not installed; the message says how to build them."""


def normalize(text: str) -> str:
    """The one tokenisation used for both LM training and scoring (see module docstring)."""
    return " ".join(_TOKEN.findall(unicodedata.normalize("NFKC", text).lower()))


def find_kenlm_program(name: str) -> str:
    """Absolute path of a KenLM program: $KENLM_BIN, then the running interpreter's bin/ (the venv), then PATH."""
    candidates = []
    if os.environ.get("KENLM_BIN"):
        candidates.append(os.path.join(os.environ["KENLM_BIN"], name))
    candidates.append(os.path.join(os.path.dirname(sys.executable), name))
    for path in candidates:
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    found = shutil.which(name)
    if found:
        return found
    raise KenLMNotFoundError(
        f"KenLM's `{name}` was not found (looked in $KENLM_BIN, {os.path.dirname(sys.executable)} and PATH). "
        f"Build lmplz/build_binary/query from the kenlm sdist into the virtualenv with: {INSTALL_HINT} "
        f"(needs cmake and Debian's libboost-program-options-dev libboost-system-dev libboost-thread-dev "
        f"zlib1g-dev libbz2-dev liblzma-dev; the script installs them with apt-get when it can)"
    )


def train_ngram_lm(
    lines: Iterable[str],
    out_prefix: str,
    order: int = 4,
    discount_fallback: bool = False,
    memory: str = "10%",
    keep_arpa: bool = False,
) -> str:
    """Estimate a modified Kneser-Ney LM on `lines` (raw text, normalised here) with `lmplz`, convert it with
    `build_binary`, and return the path of `OUT_PREFIX.binary`.

    `discount_fallback` passes `--discount_fallback` (KenLM's 0.5/1/1.5 discounts) which tiny or deduplicated
    corpora such as GLUE training sets need: lmplz's closed-form discounts fail without enough singletons.
    `memory` is lmplz's `-S` (sorting memory); lmplz defaults to 80% of RAM, too greedy on a shared machine.
    """
    lmplz = find_kenlm_program("lmplz")
    build_binary = find_kenlm_program("build_binary")
    out_dir = os.path.dirname(os.path.abspath(out_prefix))
    os.makedirs(out_dir, exist_ok=True)
    arpa, binary = out_prefix + ".arpa", out_prefix + ".binary"
    cmd = [lmplz, "-o", str(order), "-S", memory, "-T", out_dir, "--arpa", arpa]
    if discount_fallback:
        cmd.append("--discount_fallback")
    n_lines = 0
    with tempfile.TemporaryFile(mode="w+b", dir=out_dir) as err:
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=err)
        try:
            for line in lines:
                text = normalize(line)
                if text:
                    proc.stdin.write(text.encode("utf-8") + b"\n")
                    n_lines += 1
        except BrokenPipeError:
            pass  # lmplz died early; its stderr below says why
        finally:
            try:
                proc.stdin.close()
            except BrokenPipeError:
                pass
        rc = proc.wait()
        if rc != 0:
            err.seek(0)
            tail = err.read().decode("utf-8", "replace").strip().splitlines()[-12:]
            hint = ""
            if any("discount" in t.lower() for t in tail) and not discount_fallback:
                hint = "\n(the corpus is too small for lmplz's discount estimates: pass --discount-fallback)"
            raise RuntimeError(
                f"lmplz failed (exit {rc}) on {n_lines} lines: {' '.join(cmd)}\n" + "\n".join(tail) + hint
            )
    if n_lines == 0:
        raise ValueError(f"no non-empty training lines for the n-gram LM {out_prefix}")
    res = subprocess.run([build_binary, arpa, binary], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if res.returncode != 0:
        raise RuntimeError(
            f"build_binary failed (exit {res.returncode}) on {arpa}:\n" + res.stdout.decode("utf-8", "replace")[-2000:]
        )
    if not keep_arpa:
        os.remove(arpa)
    logger.info(f"trained a {order}-gram KenLM on {n_lines} lines -> {binary}")
    return binary


class NgramScorer:
    """Per-segment log10 probabilities under a KenLM model (binary or ARPA), on normalised text."""

    def __init__(self, path: str):
        import kenlm  # the PyPI module (requirements/base.txt); query-only, estimation is lmplz's job

        if not os.path.isfile(path):
            raise FileNotFoundError(f"{path}: KenLM model not found")
        self.path = path
        self.model = kenlm.Model(path)

    def log10_prob(self, segments: Sequence[str], normalized: bool = False) -> tuple[float, int]:
        """(sum of log10 p over the segments, number of predicted tokens incl. one </s> per segment).
        `normalized=True`: the segments already went through `normalize` (saves the work when scoring under
        two LMs, as Moore-Lewis does)."""
        total, n = 0.0, 0
        for seg in segments:
            text = seg if normalized else normalize(seg)
            total += self.model.score(text, bos=True, eos=True)
            n += (text.count(" ") + 1 if text else 0) + 1
        return total, n

    def cross_entropy(self, segments: Sequence[str], normalized: bool = False) -> float:
        """Per-token cross-entropy in log10 units: -log10 P / tokens (perplexity = 10 ** this)."""
        total, n = self.log10_prob(segments, normalized)
        return -total / max(n, 1)

    def perplexity(self, segments: Sequence[str]) -> float:
        return 10.0 ** self.cross_entropy(segments)
