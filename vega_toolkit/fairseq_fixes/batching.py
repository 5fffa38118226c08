"""A fix for fairseq's `batch_by_size`, which silently drops the last examples of a split.

With `--batch-size B` and the default `--required-batch-size-multiple 8`, fairseq-fixed 0.12.3.1 rounds the final
batch down to a multiple of 8 and discards the remainder: RTE dev (277 rows) is validated on 272, and a split of
fewer than 8 examples yields no batch at all. Dev metrics, best-checkpoint selection and GLUE scores are then
computed on the wrong set. `install()` (run on `import vega_toolkit`) wraps `fairseq.data.data_utils.batch_by_size`
so that any index the original left out is appended as extra batch(es) within the same size limits.
"""

import numpy as np
from fairseq.data import data_utils

_original_batch_by_size = None


def _leftover_batches(missing: np.ndarray, num_tokens_fn, num_tokens_vec, max_tokens, max_sentences) -> list:
    batches, current, longest = [], [], 0
    for idx in missing:
        n = int(num_tokens_vec[idx]) if num_tokens_vec is not None else int(num_tokens_fn(idx))
        grown = max(longest, n)
        too_many = max_sentences is not None and max_sentences > 0 and len(current) + 1 > max_sentences
        too_long = max_tokens is not None and max_tokens > 0 and grown * (len(current) + 1) > max_tokens
        if current and (too_many or too_long):
            batches.append(np.asarray(current, dtype=np.int64))
            current, grown = [], n
        current.append(idx)
        longest = grown
    if current:
        batches.append(np.asarray(current, dtype=np.int64))
    return batches


def batch_by_size(
    indices,
    num_tokens_fn,
    num_tokens_vec=None,
    max_tokens=None,
    max_sentences=None,
    required_batch_size_multiple=1,
    fixed_shapes=None,
):
    batches = _original_batch_by_size(
        indices,
        num_tokens_fn,
        num_tokens_vec=num_tokens_vec,
        max_tokens=max_tokens,
        max_sentences=max_sentences,
        required_batch_size_multiple=required_batch_size_multiple,
        fixed_shapes=fixed_shapes,
    )
    indices = np.asarray(indices, dtype=np.int64)
    if fixed_shapes is not None or sum(len(b) for b in batches) >= len(indices):
        return batches
    covered = np.concatenate(batches) if len(batches) else np.empty(0, dtype=np.int64)
    missing = indices[~np.isin(indices, covered)]  # in the original (size-sorted) order
    if num_tokens_vec is not None:
        num_tokens_vec = np.asarray(num_tokens_vec)
    return list(batches) + _leftover_batches(missing, num_tokens_fn, num_tokens_vec, max_tokens, max_sentences)


def install():
    global _original_batch_by_size
    if _original_batch_by_size is None:
        _original_batch_by_size = data_utils.batch_by_size
        data_utils.batch_by_size = batch_by_size
