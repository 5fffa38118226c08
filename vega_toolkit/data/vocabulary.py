"""What identifies a vocabulary: a hash of a folder's dict.txt and spm.model, stored in every checkpoint.

    from vega_toolkit.data.vocabulary import vocabulary_id, check_vocabulary
    vocabulary_id("models/tiny")                        # 'a3f0c9...' (16 hex digits)


Tasks keep the id in their fairseq task state, so every checkpoint stores it; loading a checkpoint with another
folder's dict.txt/spm.model is a VocabularyMismatchError instead of a silently wrong model.
Why and where it is checked: docs/design.md#vocabulary-identity.
"""

import hashlib
import logging
import os

from vega_toolkit.errors import UserError

logger = logging.getLogger(__name__)

VOCAB_FILES = ("dict.txt", "spm.model")
VOCAB_ID_KEY = "vocab_id"  # in a checkpoint's task_state


class VocabularyMismatchError(UserError):
    """A checkpoint used with a dict.txt/spm.model other than the ones it was trained with."""


def vocabulary_id(folder: str) -> str:
    """16 hex digits of SHA-256 over the folder's dict.txt and spm.model (a missing spm.model counts as empty)."""
    digest = hashlib.sha256()
    for name in VOCAB_FILES:
        digest.update(name.encode() + b"\0")
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            with open(path, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    digest.update(block)
        digest.update(b"\0")
    return digest.hexdigest()[:16]


def stored_vocabulary_id(checkpoint: dict) -> str | None:
    """The vocabulary id a loaded checkpoint holds (None for checkpoints written before it existed)."""
    return (checkpoint.get("task_state") or {}).get(VOCAB_ID_KEY) or None


def check_vocabulary(checkpoint: str, stored: str | None, folder: str, flag: str) -> None:
    """VocabularyMismatchError unless `checkpoint`'s stored vocabulary id is the one of `folder` (given by `flag`)."""
    if stored is None:
        logger.info(
            "%s stores no vocabulary id (written by an older vega-toolkit): only its number of embedding "
            "rows is checked against %s",
            checkpoint,
            folder,
        )
        return
    current = vocabulary_id(folder)
    if stored != current:
        raise VocabularyMismatchError(
            f"{flag} {folder}: its dict.txt + spm.model (vocabulary {current}) are not the ones {checkpoint} was "
            f"trained with (vocabulary {stored}); the ids would mean other pieces. Give the model folder or "
            f"data-bin the checkpoint was trained on"
        )


def check_embedding_rows(checkpoint: str, rows: int, symbols: int, folder: str, flag: str) -> None:
    """The dictionary-size part of the check (all a checkpoint without a vocabulary id allows)."""
    if rows != symbols:
        raise VocabularyMismatchError(
            f"{flag} {folder}: dict.txt has {symbols} symbols but {checkpoint} embeds {rows} (the architecture "
            f"matches; the vocabulary does not): give the model folder or data-bin the checkpoint was trained on"
        )


class RecordsVocabulary:
    """Mixin of a fairseq task reading a vocabulary folder: its id goes into the task state (saved by fairseq in every
    checkpoint), and a checkpoint's stored id is compared when fairseq hands the state back on load."""

    def record_vocabulary(self, folder: str, flag: str):
        self._vocabulary = (folder, flag)
        self.state.merge_state_dict({VOCAB_ID_KEY: vocabulary_id(folder)})

    def load_state_dict(self, state_dict):
        folder, flag = self._vocabulary
        check_vocabulary("the checkpoint being loaded", state_dict.get(VOCAB_ID_KEY) or None, folder, flag)
        super().load_state_dict({k: v for k, v in state_dict.items() if k != VOCAB_ID_KEY})
