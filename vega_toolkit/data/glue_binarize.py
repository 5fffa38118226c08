"""Encode GLUE splits once with a model's sentencepiece + dictionary and cache the token ids.

    from vega_toolkit.data.glue_binarize import TextEncoder, load_encoded_split, pair_tokens
    enc = TextEncoder.from_model_dir("vega-small/")           # spm.model + dict.txt of the model folder
    split = load_encoded_split("glue_data/MNLI/dev_matched.tsv", "MNLI", "dev_matched", enc)  # cached after 1st call
    tokens = pair_tokens(split.a[0], split.b[0], enc.bos, enc.eos, max_positions=256)     # <s> a </s> b </s>

The cache file is keyed by the SHA-256 of the TSV, of spm.model and of dict.txt (plus the format version), so a
changed file, tokenizer or vocabulary is re-encoded and MNLI/QQP (~400k pairs) are tokenised once per model
vocabulary, not once per run. It holds the untruncated ids, so one cache serves every --max-positions. Writes are
atomic (tmp file + rename) so concurrent workers never read a partial cache.
"""

import hashlib
import logging
import os
from dataclasses import dataclass

import numpy as np
import torch

from vega_toolkit.data.glue_readers import read_glue_file, require_glue_file
from vega_toolkit.data.glue_tasks import GlueTaskSpec, get_glue_task
from vega_toolkit.io.atomic import atomic_write

logger = logging.getLogger(__name__)

CACHE_VERSION = 1
ENCODE_CHUNK = 4096  # sentences per sentencepiece batch call


def default_cache_dir() -> str:
    """$VEGA_CACHE_DIR/glue, else ~/.cache/vega_toolkit/glue (GLUE folders are often read-only)."""
    root = os.environ.get("VEGA_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "vega_toolkit")
    return os.path.join(root, "glue")


def file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class TextEncoder:
    """Text -> dictionary ids through sentencepiece; pieces are the dictionary's symbols (docs/ARCHITECTURE.md).
    The general text encoder of a model folder: GLUE binarization and the hub interface both use it."""

    def __init__(self, spm_model: str, dictionary):
        import sentencepiece as spm

        if not os.path.isfile(spm_model):
            raise FileNotFoundError(f"{spm_model}: sentencepiece model not found")
        self.spm_model = spm_model
        self.sp = spm.SentencePieceProcessor(model_file=spm_model)
        self.dictionary = dictionary
        # spm id -> dictionary id, computed once: a piece the dictionary lacks (and spm's control pieces) is <unk>
        table = np.full(self.sp.get_piece_size(), dictionary.unk(), dtype=np.int64)
        for i in range(self.sp.get_piece_size()):
            if not (self.sp.is_control(i) or self.sp.is_unknown(i)):
                table[i] = dictionary.index(self.sp.id_to_piece(i))
        self.spm_to_dict = table
        self.bos, self.eos, self.pad = dictionary.bos(), dictionary.eos(), dictionary.pad()
        self.fingerprint = None  # hash of spm.model + dict.txt, set by from_model_dir

    @classmethod
    def from_model_dir(cls, model_dir: str, dictionary=None) -> "TextEncoder":
        """Encoder for a model folder (model.pt + dict.txt + spm.model)."""
        from fairseq.data import Dictionary

        dict_path = os.path.join(model_dir, "dict.txt")
        if dictionary is None:
            if not os.path.isfile(dict_path):
                raise FileNotFoundError(f"{dict_path}: model folder has no dict.txt")
            dictionary = Dictionary.load(dict_path)
        enc = cls(os.path.join(model_dir, "spm.model"), dictionary)
        enc.fingerprint = file_sha256(enc.spm_model) + (file_sha256(dict_path) if os.path.isfile(dict_path) else "")
        return enc

    def encode(self, texts: list[str]) -> list[np.ndarray]:
        """Dictionary ids of each text, without special tokens."""
        out: list[np.ndarray] = []
        for start in range(0, len(texts), ENCODE_CHUNK):
            for ids in self.sp.encode(texts[start : start + ENCODE_CHUNK], out_type=int):
                out.append(self.spm_to_dict[np.asarray(ids, dtype=np.int64)])
        return out


def truncate_pair(len_a: int, len_b: int, budget: int):
    """Longest-first truncation of two segments to `budget` tokens in total (ties cut the second segment first,
    as HF's `truncate_sequences(strategy="longest_first")`): returns the kept lengths."""
    if len_a + len_b <= budget:
        return len_a, len_b
    if min(len_a, len_b) * 2 <= budget:
        return (len_a, budget - len_a) if len_a < len_b else (budget - len_b, len_b)
    return (budget + 1) // 2, budget // 2


def pair_tokens(a: np.ndarray, b: np.ndarray | None, bos: int, eos: int, max_positions: int) -> torch.Tensor:
    """`<s> a </s>` or `<s> a </s> b </s>` ([CLS] a [SEP] b [SEP]), truncated longest-first to `max_positions`."""
    if b is None:
        keep = max(max_positions - 2, 0)
        return torch.from_numpy(np.concatenate([[bos], a[:keep], [eos]]).astype(np.int64))
    la, lb = truncate_pair(len(a), len(b), max(max_positions - 3, 0))
    return torch.from_numpy(np.concatenate([[bos], a[:la], [eos], b[:lb], [eos]]).astype(np.int64))


@dataclass
class EncodedSplit:
    a: list[np.ndarray]
    b: list[np.ndarray] | None
    labels: list[str] | None  # label strings (STS-B: score strings); None for test splits
    indices: list[str]  # the ids written to submission files

    def __len__(self):
        return len(self.a)

    def tokens(self, i: int, bos: int, eos: int, max_positions: int) -> torch.Tensor:
        return pair_tokens(self.a[i], None if self.b is None else self.b[i], bos, eos, max_positions)


def _pack(arrays: list[np.ndarray]):
    lengths = np.asarray([len(x) for x in arrays], dtype=np.int64)
    flat = np.concatenate(arrays) if arrays else np.zeros(0, dtype=np.int64)
    return torch.from_numpy(flat.astype(np.int32)), torch.from_numpy(lengths)


def _unpack(flat: torch.Tensor, lengths: torch.Tensor) -> list[np.ndarray]:
    return np.split(flat.numpy().astype(np.int64), np.cumsum(lengths.numpy())[:-1])


def load_encoded_split(
    path: str, task: str | GlueTaskSpec, split: str, encoder: TextEncoder, cache_dir: str | None = None
) -> EncodedSplit:
    """Read + encode one GLUE file, through the cache (`cache_dir`, default `default_cache_dir()`)."""
    task = get_glue_task(task)
    require_glue_file(path, task, split)
    cache_dir = cache_dir or default_cache_dir()
    fingerprint = encoder.fingerprint or file_sha256(encoder.spm_model)
    key = hashlib.sha256(f"{CACHE_VERSION}|{task.name}|{split}|{file_sha256(path)}|{fingerprint}".encode()).hexdigest()
    cache_file = os.path.join(cache_dir, f"{task.name}-{split}-{key[:24]}.pt")
    if os.path.isfile(cache_file):
        try:
            blob = torch.load(cache_file, weights_only=True)
            b = _unpack(blob["b"], blob["b_len"]) if "b" in blob else None
            return EncodedSplit(_unpack(blob["a"], blob["a_len"]), b, blob.get("labels"), blob["indices"])
        except Exception as err:  # any damage (cut, overwritten, foreign file): the cache is only a copy, rebuild it
            logger.warning(
                f"GLUE cache file {cache_file} is unreadable ({type(err).__name__}: {str(err)[:200]}); "
                f"encoding {path} again and rewriting it"
            )

    examples = read_glue_file(path, task, split)
    a = encoder.encode([ex.text_a for ex in examples])
    b = encoder.encode([ex.text_b for ex in examples]) if task.is_pair else None
    labels = None if task.splits[split].label_column is None else [ex.label for ex in examples]
    encoded = EncodedSplit(a, b, labels, [ex.index for ex in examples])

    blob = {"indices": encoded.indices}
    blob["a"], blob["a_len"] = _pack(a)
    if b is not None:
        blob["b"], blob["b_len"] = _pack(b)
    if labels is not None:
        blob["labels"] = labels
    try:
        os.makedirs(cache_dir, exist_ok=True)
        atomic_write(cache_file, lambda f: torch.save(blob, f))
        logger.info(f"encoded {len(a)} {task.name} {split} examples from {path} into {cache_file}")
    except OSError as err:  # a read-only cache location only costs speed
        logger.warning(f"could not write the GLUE cache {cache_file}: {err}")
    return encoded
