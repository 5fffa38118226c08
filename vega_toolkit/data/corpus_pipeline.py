"""Text files -> sentencepiece ids -> fairseq mmap data-bins, in shards, in bounded memory: `vega-preprocess`.

    from vega_toolkit.data.corpus_pipeline import PreprocessConfig, prepare, encode_shard, finalize, run
    run(PreprocessConfig(inputs=["books/"], destdir="bin", vocab_size=8000, shards=4))   # = the three steps below
    plan = prepare(config)            # sentencepiece trained once (on a seeded sample), shard ranges, plan file
    for k in range(plan.shards):      # independent: vega_toolkit/launch/preprocess_array.py runs one per SLURM task
        encode_shard(plan.destdir, k)
    finalize(plan.destdir)            # dict.txt, counts from the encoded data, once every shard is finished

`--shards 1` writes one data-bin; `--shards N` writes `shard0 .. shard{N-1}` (same dict.txt and spm.model, valid in
shard0), read one per epoch by `vega-train DIR --task denoising_pretrain`. Output does not depend on `--workers`;
a re-run skips finished shards. Layout, valid split, sampling and restarts:
docs/design.md#corpus-pipeline-vega-preprocess.
"""

import hashlib
import itertools
import json
import logging
import multiprocessing
import os
import random
import re
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from vega_toolkit.data.corpus_text import MAX_UNIT_BYTES, Corpus, list_input_files
from vega_toolkit.data.glue_binarize import file_sha256
from vega_toolkit.errors import UserError

logger = logging.getLogger(__name__)

PLAN_FILE = "preprocess.json"
SHARD_MARKER = ".vega-shard.json"
CHUNK_BYTES = 1 << 20  # bytes per worker task: large enough to amortise the pickling, small enough to balance
SAMPLE_RUN = 64  # units read at each random place of the sample: a run, so the seek cost is shared
FAIRSEQ_SPECIALS = ("<s>", "<pad>", "</s>", "<unk>")  # fairseq Dictionary's first four symbols, in its order
_MADEUP = re.compile(r"madeupword\d+$")  # fairseq-preprocess's padding symbols, in converted dictionaries
# files of a data-bin or a model folder: a destination holding one is never written over without --force
_OUTPUT_NAMES = ("dict.txt", "spm.model", "model.pt", "train.bin", "train.idx", "valid.bin", "valid.idx", PLAN_FILE)


@dataclass
class PreprocessConfig:
    """What `vega-preprocess` makes (the flags of vega_toolkit/cli/preprocess.py, which documents them)."""

    inputs: list[str]
    destdir: str
    vocab_size: int | None = None
    spm_model: str | None = None
    srcdict: str | None = None
    model_type: str = "unigram"
    character_coverage: float = 0.9999
    spm_sample_lines: int = 2_000_000
    valid_fraction: float = 0.01
    max_valid_lines: int = 100_000
    paragraphs: bool = False
    seed: int = 1
    encoding: str = "auto"
    shards: int = 1
    workers: int = 1
    force: bool = False


@dataclass
class Plan:
    """What every shard job needs, saved as DIR/preprocess.json by `prepare`."""

    destdir: str
    files: list[str]
    sizes: list[int]
    ranges: list[tuple[int, int]]
    settings: dict  # the config fields that decide the output
    spm_sha256: str
    symbols: list[str] = field(default_factory=list)  # dictionary symbols after fairseq's specials, in id order
    srcdict: bool = False

    @property
    def shards(self) -> int:
        return len(self.ranges)

    def corpus(self) -> Corpus:
        return Corpus(
            tuple(Path(f) for f in self.files),
            tuple(self.sizes),
            self.settings["paragraphs"],
            self.settings["encoding"],
        )

    def shard_dir(self, k: int) -> Path:
        return shard_dir(Path(self.destdir), k, self.shards)

    @classmethod
    def load(cls, destdir: Path) -> "Plan":
        data = json.loads((destdir / PLAN_FILE).read_text())
        data["ranges"] = [tuple(r) for r in data["ranges"]]
        return cls(**data)


def shard_dir(destdir: Path, k: int, shards: int) -> Path:
    return destdir if shards == 1 else destdir / f"shard{k}"


def data_paths(data: str) -> list[str]:
    """The data-bins of a `--data` value: its ':'-separated paths, where a folder of shards (no train.idx of its own,
    a shard0/) stands for its shards in order, shard0 first."""
    paths = []
    for path in data.split(os.pathsep):
        folder = Path(path)
        shards = [p for p in folder.glob("shard[0-9]*") if p.name[5:].isdigit() and p.is_dir()]
        if not (folder / "train.idx").exists() and (folder / "shard0").is_dir():
            paths += [str(p) for p in sorted(shards, key=lambda p: int(p.name[5:]))]
        else:
            paths.append(path)
    return paths


def _err(message: str) -> UserError:
    return UserError(f"vega-preprocess: {message}")


def _atomic_text(path: Path, text: str):
    from vega_toolkit.io.atomic import atomic_write

    atomic_write(str(path), lambda f: f.write(text.encode("utf-8")))


# ------------------------------------------------------------------------------------------------ checks and plan
def check_config(config: PreprocessConfig):
    """Flag errors, before anything is read or written."""
    if config.vocab_size is None and config.spm_model is None:
        raise _err("one of --vocab-size or --spm-model is required")
    if config.vocab_size is not None and config.vocab_size < 8:
        raise _err(f"--vocab-size must be >= 8, got {config.vocab_size}")
    if not 0.0 <= config.valid_fraction < 1.0:
        raise _err(f"--valid-fraction must be in [0, 1), got {config.valid_fraction}")
    for flag in ("shards", "workers", "spm_sample_lines", "max_valid_lines"):
        if getattr(config, flag) < 1:
            raise _err(f"--{flag.replace('_', '-')} must be >= 1, got {getattr(config, flag)}")
    if config.srcdict and not config.spm_model:
        raise _err("--srcdict needs --spm-model (the dictionary's pieces come from that model)")
    for flag in ("spm_model", "srcdict"):
        path = getattr(config, flag)
        if path and not Path(path).is_file():
            raise FileNotFoundError(f"vega-preprocess: --{flag.replace('_', '-')}: {path} does not exist")


def _check_destination_apart_from_inputs(inputs: list[str], files: list[Path], destdir: Path):
    """The output must never be (or hold) an input: a second run would read the first one's dict.txt as text."""
    dest = destdir.resolve()
    for name in inputs:
        src = Path(name).resolve()
        if src == dest or dest in src.parents:
            raise _err(f"--destdir {destdir} is the input {name} or holds it; write the data-bin elsewhere")
    for f in files:
        if dest in f.resolve().parents:
            raise _err(f"--destdir {destdir} holds the input file {f}; write the data-bin elsewhere")


def _existing_outputs(destdir: Path) -> list[str]:
    if not destdir.is_dir():
        return []
    found = [n for n in _OUTPUT_NAMES if (destdir / n).exists()]
    found += sorted(p.name for p in destdir.glob("shard[0-9]*") if p.is_dir())
    return found


def _completes_own_tokenizer(config: PreprocessConfig, destdir: Path, existing: list[str]) -> bool:
    """--destdir holds only a tokenizer (spm.model, dict.txt) and --spm-model/--srcdict name those very files: the
    binarized text is made beside them and they stay as they are (a committed study keeps only its tokenizer)."""
    if sorted(existing) != ["dict.txt", "spm.model"] or not (config.spm_model and config.srcdict):
        return False
    given = (Path(config.spm_model).resolve(), Path(config.srcdict).resolve())
    return given == ((destdir / "spm.model").resolve(), (destdir / "dict.txt").resolve())


def _remove_outputs(destdir: Path):
    """--force: remove what a previous run of vega-preprocess (or another tool's data-bin) left here."""
    for name in _OUTPUT_NAMES + (SHARD_MARKER,):
        if (destdir / name).is_file():
            (destdir / name).unlink()
    for p in destdir.glob("shard[0-9]*"):
        if p.is_dir():
            shutil.rmtree(p)


def _settings(config: PreprocessConfig, files: list[Path], sizes: list[int]) -> dict:
    """Everything the output depends on (not --workers, which never changes it)."""
    keys = (
        "vocab_size",
        "model_type",
        "character_coverage",
        "spm_sample_lines",
        "valid_fraction",
        "max_valid_lines",
        "paragraphs",
        "seed",
        "encoding",
        "shards",
    )
    settings = {k: getattr(config, k) for k in keys}
    settings["inputs"] = [[str(f.resolve()), s] for f, s in zip(files, sizes, strict=True)]
    settings["spm_model"] = file_sha256(Path(config.spm_model)) if config.spm_model else None
    settings["srcdict"] = file_sha256(Path(config.srcdict)) if config.srcdict else None
    return settings


def _describe_difference(old: dict, new: dict) -> str:
    diffs = []
    for key in new:
        if old.get(key) != new[key]:
            if key == "inputs":
                diffs.append("the input files or their sizes")
            elif key in ("spm_model", "srcdict"):
                diffs.append(f"--{key.replace('_', '-')}")
            else:
                diffs.append(f"--{key.replace('_', '-')} {old.get(key)} -> {new[key]}")
    return ", ".join(diffs)


def shard_ranges(corpus: Corpus, shards: int) -> list[tuple[int, int]]:
    """Byte ranges of the shards: equal parts of the corpus, each starting at a unit. Error if one would be empty."""
    if corpus.unit_start(0) >= corpus.size:
        raise _err(f"no non-empty lines in {list(map(str, corpus.files))}")
    starts = [corpus.unit_start(k * corpus.size // shards) for k in range(shards)] + [corpus.size]
    starts[0] = 0
    for k in range(shards):
        if starts[k] >= starts[k + 1] or (k == 0 and corpus.unit_start(0) >= starts[1]):
            unit = "paragraphs" if corpus.paragraphs else "non-empty lines"
            raise _err(
                f"--shards {shards}: shard {k} would hold no text; the inputs have too few {unit} (or too "
                f"few bytes between them) for {shards} shards: use fewer"
            )
    return list(zip(starts[:-1], starts[1:], strict=False))


def prepare(config: PreprocessConfig) -> Plan:
    """Check the flags and the destination, train sentencepiece (once: a re-run of the same plan reuses it), and
    write DIR/preprocess.json. Returns the plan the shard jobs follow."""
    check_config(config)
    files = list_input_files(config.inputs)
    destdir = Path(config.destdir)
    _check_destination_apart_from_inputs(config.inputs, files, destdir)
    sizes = [os.path.getsize(f) for f in files]
    settings = _settings(config, files, sizes)
    plan_path = destdir / PLAN_FILE
    existing = _existing_outputs(destdir)
    if existing and not config.force and not _completes_own_tokenizer(config, destdir, existing):
        if not plan_path.is_file():
            raise _err(
                f"--destdir {destdir} already holds {', '.join(existing)} (a data-bin or model folder); "
                f"vega-preprocess never replaces one silently: pass --force to replace it, or choose another "
                f"--destdir"
            )
        old = Plan.load(destdir)
        if old.settings != settings:
            raise _err(
                f"--destdir {destdir} holds the shards of another preprocessing (differs in: "
                f"{_describe_difference(old.settings, settings)}), e.g. another vocabulary; its finished "
                f"shards are kept: pass --force to replace them, or choose another --destdir"
            )
        if (destdir / "spm.model").is_file() and file_sha256(destdir / "spm.model") == old.spm_sha256:
            logger.info("%s: resuming the plan of %s (sentencepiece model kept)", destdir, plan_path)
            return old
    corpus = Corpus.of(files, config.paragraphs, config.encoding)
    ranges = shard_ranges(corpus, config.shards)
    if config.srcdict:
        check_srcdict(Path(config.srcdict), Path(config.spm_model))
    if config.force:
        _remove_outputs(destdir)
    destdir.mkdir(parents=True, exist_ok=True)
    spm_path = destdir / "spm.model"
    if config.spm_model:
        from vega_toolkit.io.atomic import atomic_copy

        if Path(config.spm_model).resolve() != spm_path.resolve():
            atomic_copy(config.spm_model, str(spm_path), overwrite=True)
    else:
        _train_sentencepiece(corpus, config, spm_path)
    if config.srcdict:
        symbols = check_srcdict(Path(config.srcdict), spm_path)
    else:
        symbols = dictionary_symbols(spm_path)
    plan = Plan(
        str(destdir),
        [str(f) for f in files],
        sizes,
        ranges,
        settings,
        file_sha256(spm_path),
        symbols,
        bool(config.srcdict),
    )
    if config.srcdict:
        _atomic_text(destdir / ".srcdict.txt", Path(config.srcdict).read_text(encoding="utf-8"))
    _atomic_text(plan_path, json.dumps(asdict(plan), indent=1) + "\n")
    return plan


# ------------------------------------------------------------------------------------------- sentencepiece, dictionary
def _held_out_threshold(valid_fraction: float) -> int:
    return int(valid_fraction * (1 << 64))


def unit_hash(unit: str, key: bytes) -> int:
    """Keyed 64-bit hash of a unit's text (the same in every process, unlike Python's hash())."""
    return int.from_bytes(hashlib.blake2b(unit.encode("utf-8"), digest_size=8, key=key).digest(), "little")


def _hash_key(seed: int) -> bytes:
    return seed.to_bytes(8, "little", signed=True)


def sample_units(corpus: Corpus, n: int, seed: int, valid_fraction: float) -> Iterator[str]:
    """About `n` train units read in runs at seeded random places of the corpus (the whole corpus when it has fewer),
    in corpus order; held-out units are never part of it. Reads O(n) units, whatever the corpus size."""
    key, threshold = _hash_key(seed), _held_out_threshold(valid_fraction)
    probe = list(corpus.units_at(0, corpus.size, limit=SAMPLE_RUN))
    if not probe:
        return
    if n * probe[-1][1] / len(probe) >= corpus.size:  # a corpus of about n units or fewer: all of it, in order
        starts = [0]
        run = None
    else:
        rng = random.Random(seed)
        starts = sorted(rng.randrange(corpus.size) for _ in range(-(-n // SAMPLE_RUN)))
        run = SAMPLE_RUN
    taken, reached = 0, 0
    for start in starts:
        if start < reached:
            start = reached  # overlapping runs continue where the previous one stopped: no unit twice
        for unit, stop in corpus.units_at(start, corpus.size, limit=run):
            reached = stop
            if unit_hash(unit, key) >= threshold:
                yield unit
                taken += 1
                if taken >= n:
                    return


def _train_sentencepiece(corpus: Corpus, config: PreprocessConfig, model_path: Path):
    import sentencepiece as spm

    sample = list(sample_units(corpus, config.spm_sample_lines, config.seed, config.valid_fraction))
    if not sample:
        raise _err(f"no non-empty lines in {list(map(str, corpus.files))}")
    import io

    model = io.BytesIO()  # not a model_prefix: the model would record that path, and differ with --destdir
    spm.set_random_generator_seed(config.seed)  # the trainer shuffles its sentences: unseeded, two runs differ
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(sample),
            model_writer=model,
            vocab_size=config.vocab_size,
            model_type=config.model_type,
            character_coverage=config.character_coverage,
            input_sentence_size=0,  # the sample is already the bounded, seeded one: train on all of it
            # small corpora cannot always fill the requested vocabulary; take what exists instead of failing
            hard_vocab_limit=False,
            # joined paragraphs (--paragraphs) run to several KB; the 4192-byte default would drop them from training
            max_sentence_length=MAX_UNIT_BYTES,
            num_threads=1,  # the model must not depend on --workers
            minloglevel=2,
        )
    except RuntimeError as err:  # e.g. more distinct characters than --vocab-size: a flag to change
        raise _err(
            f"sentencepiece cannot train on {list(map(str, corpus.files))} with --vocab-size "
            f"{config.vocab_size} --character-coverage {config.character_coverage}: {str(err).strip()}"
        ) from None
    from vega_toolkit.io.atomic import atomic_write

    atomic_write(str(model_path), lambda f: f.write(model.getvalue()))
    logger.info(
        "sentencepiece (%s, %d pieces) trained on %d sampled units", config.model_type, config.vocab_size, len(sample)
    )


def dictionary_symbols(spm_path: Path) -> list[str]:
    """dict.txt's symbols for a sentencepiece model: every normal piece in spm id order (so every piece has an id);
    control and unknown pieces are fairseq's own <s> <pad> </s> <unk>."""
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=str(spm_path))
    symbols = []
    for i in range(sp.get_piece_size()):
        if sp.is_control(i) or sp.is_unknown(i):
            continue
        piece = sp.id_to_piece(i)
        if any(c.isspace() for c in piece):
            raise _err(f"sentencepiece piece {piece!r} (id {i}) contains whitespace")
        symbols.append(piece)
    return symbols


def write_dictionary(model_path: Path, counts, dict_path: Path) -> int:
    """dict.txt for a sentencepiece model, `counts` a mapping piece -> count; returns the number of pieces."""
    symbols = dictionary_symbols(model_path)
    _atomic_text(dict_path, "".join(f"{s} {counts.get(s, 0)}\n" for s in symbols))
    return len(symbols)


def _read_dict_symbols(dict_path: Path) -> list[str]:
    symbols = []
    for line in dict_path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            symbols.append(line.rsplit(" ", 1)[0] if " " in line.strip() else line.strip())
    return symbols


def check_srcdict(dict_path: Path, spm_path: Path) -> list[str]:
    """The symbols of `--srcdict`, refused unless it was built from the `--spm-model` given: its symbols must be that
    model's pieces (plus fairseq's madeupword padding) and every normal piece of the model must be in it, so that
    encoding never falls back to <unk> for a piece the model produces."""
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=str(spm_path))
    symbols = [s for s in _read_dict_symbols(dict_path) if s not in FAIRSEQ_SPECIALS]
    unknown = [
        s
        for s in symbols
        if sp.piece_to_id(s) == sp.unk_id()
        and s != sp.id_to_piece(sp.unk_id())
        and not _MADEUP.match(s)
        and s != "<mask>"
    ]
    pieces = set(dictionary_symbols(spm_path))
    missing = pieces.difference(symbols)
    if unknown or missing:
        what = (
            f"{len(unknown)} of its symbols are not pieces of the model (e.g. {unknown[0]!r})"
            if unknown
            else f"{len(missing)} pieces of the model are missing from it (e.g. {sorted(missing)[0]!r})"
        )
        raise _err(
            f"--srcdict {dict_path} was not built from --spm-model {spm_path}: {what}; pass the dict.txt that "
            f"came with that model"
        )
    return symbols


def id_table(spm_path: Path, symbols: Sequence[str]) -> np.ndarray:
    """fairseq id of every sentencepiece id: THE mapping from sentencepiece onto the dictionary (normal pieces by
    name, control pieces onto <s>/</s>/<pad>, the unknown piece onto <unk>)."""
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=str(spm_path))
    index = {s: i for i, s in enumerate(FAIRSEQ_SPECIALS)}
    for i, s in enumerate(symbols):
        index.setdefault(s, len(FAIRSEQ_SPECIALS) + i)
    roles = {sp.bos_id(): "<s>", sp.eos_id(): "</s>", sp.pad_id(): "<pad>", sp.unk_id(): "<unk>"}
    table = np.empty(sp.get_piece_size(), dtype=np.int64)
    for i in range(sp.get_piece_size()):
        if i in roles:
            table[i] = index[roles[i]]
        elif sp.is_control(i) or sp.is_unknown(i):
            table[i] = index["<unk>"]
        else:
            table[i] = index.get(sp.id_to_piece(i), index["<unk>"])
    return table


# ------------------------------------------------------------------------------------------------------------ shards
_worker = {}


def _init_worker(spm_path: str, table: np.ndarray, key: bytes, threshold: int, eos: int):
    import sentencepiece as spm

    _worker.update(
        sp=spm.SentencePieceProcessor(model_file=spm_path), table=table, key=key, threshold=threshold, eos=eos
    )


def _encode(sp, units: list[str], table: np.ndarray, eos: int, dtype) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ids of the units, each followed by </s> (fairseq's binarizer appends it), concatenated; their sizes; and the
    sentencepiece ids alone (for the counts)."""
    if not units:
        return np.zeros(0, dtype=dtype), np.zeros(0, dtype=np.int32), np.zeros(0, dtype=np.int64)
    encoded = sp.encode(units)
    lengths = np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded))
    pieces = np.fromiter(itertools.chain.from_iterable(encoded), dtype=np.int64, count=int(lengths.sum()))
    sizes = (lengths + 1).astype(np.int32)
    ends = np.cumsum(sizes) - 1
    flat = np.empty(int(ends[-1]) + 1, dtype=dtype)
    body = np.ones(len(flat), dtype=bool)
    body[ends] = False
    flat[body] = table[pieces]
    flat[ends] = eos
    return flat, sizes, pieces


def _encode_chunk(task):
    """One chunk [start, end) of the corpus: (train ids, train sizes, held-out ids, held-out sizes, sentencepiece id
    counts of the train units, (smallest hash, its unit) for the tiny-input fallback)."""
    corpus, start, end, dtype, keep_held_out, forced = task
    w = _worker
    train, held_out, smallest = [], [], None
    key, threshold = w["key"], w["threshold"]
    for unit in corpus.units(start, end):
        h = unit_hash(unit, key)
        if smallest is None or h < smallest[0]:
            smallest = (h, unit)
        if h < threshold or h == forced:
            if keep_held_out:
                held_out.append(unit)
        else:
            train.append(unit)
    t_flat, t_sizes, pieces = _encode(w["sp"], train, w["table"], w["eos"], dtype)
    counts = np.bincount(pieces, minlength=len(w["table"]))
    v_flat, v_sizes, _ = _encode(w["sp"], held_out, w["table"], w["eos"], dtype)
    return t_flat, t_sizes, v_flat, v_sizes, counts, smallest


def _ordered_results(tasks: list, workers: int, init_args) -> Iterator:
    """Results of `_encode_chunk` over `tasks` in order, at most 2 x workers chunks in flight (bounded memory)."""
    if workers == 1:
        _init_worker(*init_args)
        for task in tasks:
            yield _encode_chunk(task)
        return
    # The platform default (fork on Linux), like fairseq's own binarizer: a spawned worker would re-import
    # vega_toolkit and with it torch and fairseq, seconds per worker for a sentencepiece-only job.
    with multiprocessing.Pool(workers, _init_worker, init_args) as pool:
        pending = []
        for task in tasks:
            pending.append(pool.apply_async(_encode_chunk, (task,)))
            if len(pending) >= 2 * workers:
                yield pending.pop(0).get()
        for result in pending:
            yield result.get()


def _check_inputs_unchanged(plan: Plan):
    for name, size in zip(plan.files, plan.sizes, strict=True):
        path = Path(name)
        if not path.exists():
            raise FileNotFoundError(
                f"vega-preprocess: input {name} has disappeared since {plan.destdir}/{PLAN_FILE} "
                f"was made; restore it and re-run the same command (finished shards are kept)"
            )
        if path.stat().st_size != size:
            raise _err(
                f"input {name} changed size since {plan.destdir}/{PLAN_FILE} was made ({size} -> "
                f"{path.stat().st_size} bytes); restore it, or start again with --force"
            )


def shard_finished(plan: Plan, k: int) -> bool:
    marker = plan.shard_dir(k) / SHARD_MARKER
    if not marker.is_file():
        return False
    return json.loads(marker.read_text()).get("spm_sha256") == plan.spm_sha256


def encode_shard(destdir, k: int, workers: int = 1) -> dict:
    """Encode shard `k` of the plan in `destdir` (skipped if finished; otherwise redone from scratch). Returns the
    shard's summary {shard, train_units, valid_units, skipped}."""
    from fairseq.data.indexed_dataset import best_fitting_int_dtype

    from vega_toolkit.data.mmap_writer import StreamingMMapBuilder

    plan = Plan.load(Path(destdir))
    if not 0 <= k < plan.shards:
        raise _err(f"shard {k} does not exist: {destdir} has {plan.shards} shards")
    out = plan.shard_dir(k)
    if shard_finished(plan, k):
        logger.info("shard %d of %d: finished earlier, skipped", k, plan.shards)
        return {"shard": k, "skipped": True}
    _check_inputs_unchanged(plan)
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob(".part-*"):  # a killed run's leftovers
        stale.unlink()
    spm_path = Path(plan.destdir) / "spm.model"
    table = id_table(spm_path, plan.symbols)
    dtype = best_fitting_int_dtype(len(FAIRSEQ_SPECIALS) + len(plan.symbols))
    settings = plan.settings
    init = (
        str(spm_path),
        table,
        _hash_key(settings["seed"]),
        _held_out_threshold(settings["valid_fraction"]),
        FAIRSEQ_SPECIALS.index("</s>"),
    )
    corpus = plan.corpus()
    start, end = plan.ranges[k]

    def encode(forced: int | None):
        parts = {
            split: StreamingMMapBuilder(str(out / f".part-{split}.bin"), dtype=dtype)
            for split in (("train", "valid") if k == 0 else ("train",))
        }
        counts = np.zeros(len(table), dtype=np.int64)
        smallest, n_valid, n_units = None, 0, 0
        tasks = [(corpus, s, min(s + CHUNK_BYTES, end), dtype, k == 0, forced) for s in range(start, end, CHUNK_BYTES)]
        try:
            for t_flat, t_sizes, v_flat, v_sizes, chunk_counts, chunk_smallest in _ordered_results(
                tasks, workers, init
            ):
                parts["train"].add_items(t_flat, t_sizes)
                counts += chunk_counts
                n_units += len(t_sizes) + len(v_sizes)
                if chunk_smallest is not None and (smallest is None or chunk_smallest[0] < smallest[0]):
                    smallest = chunk_smallest
                if k == 0 and len(v_sizes) and n_valid < settings["max_valid_lines"]:
                    keep = min(len(v_sizes), settings["max_valid_lines"] - n_valid)
                    parts["valid"].add_items(v_flat[: int(v_sizes[:keep].sum())], v_sizes[:keep])
                    n_valid += keep
        except BaseException:
            for part in parts.values():
                part.discard()
            raise
        return parts, counts, smallest, n_valid, n_units

    parts, counts, smallest, n_valid, n_units = encode(None)
    if k == 0 and n_valid == 0 and settings["valid_fraction"] > 0 and smallest is not None:
        # Tiny inputs: nothing hashed under --valid-fraction, but fairseq needs a non-empty valid split. The text
        # with the smallest hash is held out instead (all its copies: valid never shares a unit with train).
        for part in parts.values():
            part.discard()
        parts, counts, smallest, n_valid, n_units = encode(smallest[0])
        if len(parts["train"]) == 0:
            for part in parts.values():
                part.discard()
            unit = "paragraph" if settings["paragraphs"] else "non-empty line"
            if n_units == 1:
                raise _err(f"1 {unit} in {plan.files}: too few to split into train and valid (at least 2 are needed)")
            raise _err(
                f"every {unit} of {plan.files} is a copy of one text: too few distinct units to split into "
                f"train and valid; deduplicate the input"
            )
    if len(parts["train"]) == 0:
        for part in parts.values():
            part.discard()
        if n_units == 0 and plan.shards == 1:
            raise _err(f"no non-empty lines in {plan.files}")
        raise _err(f"shard {k} has no train text (its {n_units} units are all held out); use fewer --shards")
    for split, part in parts.items():
        part.finalize(str(out / f".part-{split}.idx"))
    for split in parts:  # the marker, written last, is what says the shard is finished
        for ext in ("bin", "idx"):
            os.replace(out / f".part-{split}.{ext}", out / f"{split}.{ext}")
    if out != Path(plan.destdir):
        from vega_toolkit.io.atomic import atomic_copy

        atomic_copy(str(spm_path), str(out / "spm.model"), overwrite=True)
    summary = {"shard": k, "train_units": len(parts["train"]), "valid_units": n_valid, "skipped": False}
    _atomic_text(
        out / SHARD_MARKER, json.dumps({**summary, "spm_sha256": plan.spm_sha256, "counts": counts.tolist()}) + "\n"
    )
    logger.info(
        "shard %d of %d: %d train units%s -> %s",
        k,
        plan.shards,
        summary["train_units"],
        f", {n_valid} valid" if k == 0 else "",
        out,
    )
    return summary


def finalize(destdir) -> bool:
    """Once every shard is finished: dict.txt (counts of the encoded train data of all shards, or --srcdict as
    given) in the destination and every shard. Returns False (and writes nothing) while a shard is unfinished;
    safe to call from several shard jobs at once (the same bytes, written atomically)."""
    destdir = Path(destdir)
    plan = Plan.load(destdir)
    if not all(shard_finished(plan, k) for k in range(plan.shards)):
        return False
    if plan.srcdict:
        text = (destdir / ".srcdict.txt").read_text(encoding="utf-8")
    else:
        import sentencepiece as spm

        sp = spm.SentencePieceProcessor(model_file=str(destdir / "spm.model"))
        counts = np.zeros(sp.get_piece_size(), dtype=np.int64)
        for k in range(plan.shards):
            counts += np.array(json.loads((plan.shard_dir(k) / SHARD_MARKER).read_text())["counts"], dtype=np.int64)
        text = "".join(f"{s} {counts[sp.piece_to_id(s)]}\n" for s in plan.symbols)
    for folder in {destdir} | {plan.shard_dir(k) for k in range(plan.shards)}:
        _atomic_text(folder / "dict.txt", text)
    return True


def run(config: PreprocessConfig) -> Path:
    """The whole pipeline in this process: prepare, every unfinished shard, finalize."""
    plan = prepare(config)
    for k in range(plan.shards):
        encode_shard(plan.destdir, k, config.workers)
    finalize(plan.destdir)
    logger.info(
        "wrote %s (%s)",
        plan.destdir,
        "train/valid .bin/.idx, dict.txt, spm.model"
        if plan.shards == 1
        else f"shard0..shard{plan.shards - 1}, dict.txt, spm.model",
    )
    return Path(plan.destdir)
