"""Ternary replaced-token-detection corruption: shuffle 10% / replace 5% of the eligible tokens of each sequence.

    from vega_toolkit.data.noising import TokenNoiser, seeded_generator
    noiser = TokenNoiser.from_dictionary(task.source_dictionary, shuffle_prob=0.10, replace_prob=0.05)
    corrupted, labels = noiser(tokens, generator=seeded_generator(seed, epoch, index))   # tokens: [T] or [B, T]

This is the ONE implementation of the corruption: the `denoising_pretrain` task (through `RTDNoisingDataset`),
the tests and `benchmarks/pretrain_step.py` all call it.

Counts are exact per sequence (stochastic rounding), the shuffled and replaced sets are disjoint, and a shuffled
token that did not change is labelled original. Every decision, with its reason:
docs/design.md#rtd-corruption-shuffle-and-replace.
"""

import hashlib
import math
from collections.abc import Sequence

import torch
from fairseq.data import BaseWrapperDataset, FairseqDataset, data_utils

ORIGINAL, SHUFFLED, REPLACED = 0, 1, 2
NUM_RTD_CLASSES = 3
IGNORE_INDEX = -100  # torch's cross_entropy default; pad id (1) would collide with the SHUFFLED label
RTD_HEAD_NAME = "rtd"  # model.token_heads key shared by the task and both RTD criterions

# Control symbols that converted checkpoints or fairseq tasks add on top of the 4 fairseq specials.
EXTRA_SPECIAL_SYMBOLS = ("<mask>", "[CLS]", "[SEP]", "[PAD]", "[UNK]", "[MASK]")


def label_prior_bits(shuffled_fraction: float, replaced_fraction: float) -> float:
    """Entropy in bits of the original / shuffled / replaced label mix: the RTD loss of a model that has learnt the
    corruption rates and nothing else (0.747 at 10% / 5%; 0.606 at 15% of one kind)."""
    fractions = (1.0 - shuffled_fraction - replaced_fraction, shuffled_fraction, replaced_fraction)
    return -sum(f * math.log2(f) for f in fractions if f > 0)


def seeded_generator(seed: int, epoch: int, index: int) -> torch.Generator:
    """A generator whose stream depends on (seed, epoch, index) only.

    fairseq's `numpy_seed` reduces the triple to hash(...) % 1e6, so two examples collide once a corpus has
    more than ~1,000 blocks; a 64-bit blake2b digest makes collisions practically impossible."""
    digest = hashlib.blake2b(f"{seed},{epoch},{index}".encode(), digest_size=8).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest, "little") & ((1 << 63) - 1))


def _stochastic_round(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    noise = torch.rand(x.shape, generator=generator, device=x.device)
    return torch.floor(x + noise).long()


class TokenNoiser:
    """Shuffle/replace corruption of token ids with ternary labels (see the module docstring)."""

    def __init__(
        self,
        special_ids: Sequence[int],
        vocab_size: int,
        shuffle_prob: float = 0.10,
        replace_prob: float = 0.05,
        replace_weights: torch.Tensor | None = None,
    ):
        if not (0.0 <= shuffle_prob and 0.0 <= replace_prob and shuffle_prob + replace_prob <= 1.0):
            raise ValueError(
                f"--shuffle-prob ({shuffle_prob}) and --replace-prob ({replace_prob}) must be >= 0 and sum to <= 1"
            )
        self.shuffle_prob = float(shuffle_prob)
        self.replace_prob = float(replace_prob)
        self.vocab_size = int(vocab_size)
        is_special = torch.zeros(self.vocab_size, dtype=torch.bool)
        is_special[torch.as_tensor(list(special_ids), dtype=torch.long)] = True
        self.is_special = is_special
        # Sorted non-special ids: the replacement candidates.
        self.candidates = torch.nonzero(~is_special).squeeze(1)
        if self.replace_prob > 0 and len(self.candidates) < 2:
            raise ValueError("replacement needs at least 2 non-special symbols in the dictionary")
        self.candidate_weights = None
        if replace_weights is not None:
            weights = torch.as_tensor(replace_weights, dtype=torch.float)[self.candidates].clamp(min=0)
            if weights.sum() <= 0:
                raise ValueError("--replace-weighting frequency: the dictionary has no counts (all zero)")
            self.candidate_weights = weights

    @classmethod
    def from_dictionary(cls, dictionary, shuffle_prob=0.10, replace_prob=0.05, replace_weighting="uniform"):
        """Specials = fairseq's first `nspecial` symbols (<s> <pad> </s> <unk>) plus EXTRA_SPECIAL_SYMBOLS and
        fairseq's `madeupword` padding symbols."""
        special = set(range(dictionary.nspecial)) | {dictionary.bos(), dictionary.pad(), dictionary.eos()}
        special.add(dictionary.unk())
        for i, sym in enumerate(dictionary.symbols):
            if sym in EXTRA_SPECIAL_SYMBOLS or sym.startswith("madeupword"):
                special.add(i)
        if replace_weighting == "frequency":
            weights = torch.as_tensor(dictionary.count, dtype=torch.float)
        elif replace_weighting == "uniform":
            weights = None
        else:
            raise ValueError(f"--replace-weighting must be 'uniform' or 'frequency', got {replace_weighting!r}")
        return cls(sorted(special), len(dictionary), shuffle_prob, replace_prob, weights)

    def eligible_mask(self, tokens: torch.Tensor) -> torch.Tensor:
        return ~self.is_special.to(tokens.device)[tokens]

    def __call__(
        self, tokens: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """tokens: LongTensor [T] or [B, T] (padded with a special id). Returns (corrupted, labels), same shape;
        labels are ORIGINAL/SHUFFLED/REPLACED on eligible positions and IGNORE_INDEX elsewhere."""
        squeeze = tokens.dim() == 1
        if squeeze:
            tokens = tokens.unsqueeze(0)
        bsz, seq_len = tokens.shape
        device = tokens.device
        eligible = self.eligible_mask(tokens)
        n_eligible = eligible.sum(1)

        n_shuf = _stochastic_round(n_eligible * self.shuffle_prob, generator)
        n_repl = _stochastic_round(n_eligible * self.replace_prob, generator)
        n_shuf = torch.minimum(n_shuf, n_eligible)
        # A 1-cycle is the identity: one chosen position would shuffle nothing. Round it to 0 or 2 with equal
        # odds (same expectation); a row with a single eligible token cannot be shuffled at all.
        coin = torch.rand(n_shuf.shape, generator=generator, device=device) < 0.5
        lone = n_shuf == 1
        n_shuf = torch.where(lone & (n_eligible >= 2), 2 * coin.long(), n_shuf)
        n_shuf = torch.where(n_eligible < 2, torch.zeros_like(n_shuf), n_shuf)
        n_repl = torch.minimum(n_repl, n_eligible - n_shuf)

        # One random ranking of each row's eligible positions (ineligible ones sort last).
        keys = torch.rand((bsz, seq_len), generator=generator, device=device).masked_fill_(~eligible, 2.0)
        order = keys.argsort(dim=1)  # order[b, r] = position with rank r
        ranks = torch.empty_like(order).scatter_(1, order, torch.arange(seq_len, device=device).expand(bsz, -1))
        shuffled = ranks < n_shuf.unsqueeze(1)
        replaced = (ranks >= n_shuf.unsqueeze(1)) & (ranks < (n_shuf + n_repl).unsqueeze(1))

        # Shuffle: the positions of ranks 0..k-1 are a random subset in random order; give rank r the token of
        # rank (r + 1) mod k. That is one random k-cycle per row, so no chosen position keeps its own token.
        rank_idx = torch.arange(seq_len, device=device).unsqueeze(0)
        k = n_shuf.unsqueeze(1)
        src_rank = torch.where(rank_idx < k, (rank_idx + 1) % k.clamp(min=1), rank_idx)
        src_pos = order.gather(1, src_rank)
        corrupted = tokens.clone()
        corrupted.scatter_(1, order, tokens.gather(1, src_pos))

        # Replace: new ids from the non-special vocabulary, never the original one.
        if bool(replaced.any()):
            corrupted[replaced] = self._draw_replacements(tokens[replaced], generator)

        labels = torch.full_like(tokens, IGNORE_INDEX)
        labels[eligible] = ORIGINAL
        labels[shuffled & (corrupted != tokens)] = SHUFFLED
        labels[replaced] = REPLACED
        if squeeze:
            return corrupted[0], labels[0]
        return corrupted, labels

    def _draw_replacements(self, original: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        candidates = self.candidates.to(original.device)
        if self.candidate_weights is None:
            # Uniform over the M - 1 candidates other than the original: draw j in [0, M-2] and skip the
            # original's slot. Originals are eligible, hence always candidates.
            slot = torch.searchsorted(candidates, original)
            draw = torch.randint(len(candidates) - 1, original.shape, generator=generator, device=original.device)
            return candidates[draw + (draw >= slot).long()]
        # Frequency-weighted: rejection-sample the positions that drew their own original (a loop over rounds,
        # each vectorised; a frequent piece like "▁the" is redrawn with probability ~its frequency).
        weights = self.candidate_weights.to(original.device)
        out = candidates[torch.multinomial(weights, len(original), replacement=True, generator=generator)]
        for _ in range(100):
            same = out == original
            if not bool(same.any()):
                return out
            redraw = torch.multinomial(weights, int(same.sum()), replacement=True, generator=generator)
            out[same] = candidates[redraw]
        # Pathological weights (one candidate holding all the mass): fall back to uniform for the leftovers.
        same = out == original
        slot = torch.searchsorted(candidates, original[same])
        draw = torch.randint(len(candidates) - 1, slot.shape, generator=generator, device=original.device)
        out[same] = candidates[draw + (draw >= slot).long()]
        return out


class RTDNoisingDataset(BaseWrapperDataset):
    """Wraps a dataset of `<s> ... </s>` blocks; item = {"id", "source" (corrupted), "original", "target" (labels)}.

    Noise is drawn per item from `seeded_generator(seed, epoch, index)`, so a batch is the same whatever the
    number of data-loader workers and whichever order the items are fetched in."""

    def __init__(self, dataset, noiser: TokenNoiser, pad_idx: int, seed: int = 1, vary_with_epoch: bool = True):
        super().__init__(dataset)
        self.noiser = noiser
        self.pad_idx = pad_idx
        self.seed = seed
        self.vary_with_epoch = vary_with_epoch  # False for held-out splits: same noise at every validation
        self.epoch = 1

    @property
    def can_reuse_epoch_itr_across_epochs(self):
        # The noise depends on the epoch: persistent data-loader workers must not keep a stale copy.
        return not self.vary_with_epoch

    def set_epoch(self, epoch, **unused):
        super().set_epoch(epoch)
        if self.vary_with_epoch:
            self.epoch = epoch

    def __getitem__(self, index):
        original = self.dataset[index]
        corrupted, labels = self.noiser(original, generator=seeded_generator(self.seed, self.epoch, index))
        return {"id": index, "source": corrupted, "original": original, "target": labels}

    def collater(self, samples):
        samples = [s for s in samples if len(s["source"]) > 0]
        if not samples:
            return {}
        src_tokens = data_utils.collate_tokens([s["source"] for s in samples], self.pad_idx)
        original = data_utils.collate_tokens([s["original"] for s in samples], self.pad_idx)
        target = data_utils.collate_tokens([s["target"] for s in samples], IGNORE_INDEX)
        lengths = torch.LongTensor([len(s["source"]) for s in samples])
        return {
            "id": torch.LongTensor([s["id"] for s in samples]),
            "nsentences": len(samples),
            "ntokens": int(lengths.sum()),
            "net_input": {"src_tokens": src_tokens, "src_lengths": lengths},
            "original_tokens": original,
            "target": target,
        }

    # The block datasets underneath know their sizes but not fairseq's num_tokens/size protocol.
    @property
    def sizes(self):
        return self.dataset.sizes

    def num_tokens(self, index):
        return self.dataset.sizes[index]

    def size(self, index):
        return self.dataset.sizes[index]

    def num_tokens_vec(self, indices):
        return self.dataset.sizes[indices]

    # BaseWrapperDataset would hand batching/filtering to the innermost dataset, which lacks num_tokens.
    def batch_by_size(self, indices, max_tokens=None, max_sentences=None, required_batch_size_multiple=1):
        return FairseqDataset.batch_by_size(self, indices, max_tokens, max_sentences, required_batch_size_multiple)

    def filter_indices_by_size(self, indices, max_sizes):
        return FairseqDataset.filter_indices_by_size(self, indices, max_sizes)
