"""`vega-preprocess`: raw text files -> sentencepiece model -> fairseq `data-bin/` for `denoising_pretrain`.

    vega-preprocess $VEGA_CORPUS_DIR/gutenberg --paragraphs --destdir data-bin/gutenberg --vocab-size 8000
    vega-preprocess corpus/*.txt --destdir data-bin/x --spm-model deberta-v3/spm.model --srcdict deberta-v3/dict.txt

Inputs are text files (directories contribute their `*.txt` files), one paragraph or sentence per line; blank
lines are dropped. Hard-wrapped text (Project Gutenberg) takes `--paragraphs`: each blank-line separated paragraph
becomes one line. Steps:
1. split the non-empty lines (paragraphs) into train/valid (`--valid-fraction`, seeded);
2. train a sentencepiece model on the train split (`--vocab-size`), or take `--spm-model`;
3. encode both splits into pieces with a process pool over chunks of lines;
4. write `dict.txt` with one line per sentencepiece piece (control/unknown pieces map onto fairseq's own
   <s> <pad> </s> <unk>), counts from the train split so `--replace-weighting frequency` has real frequencies;
   `--srcdict` instead keeps a converted model's dictionary (its embedding rows are indexed by it);
5. binarize with fairseq's own preprocessing (`fairseq_cli.preprocess`, mmap datasets) and copy `spm.model`
   into the data-bin, which then is a self-contained model folder input.
"""
import argparse
import collections
import itertools
import logging
import multiprocessing
import os
import random
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Iterator, List, Optional

logger = logging.getLogger(__name__)

CHUNK_LINES = 2000  # lines per pool task: big enough to amortise pickling, small enough to balance 2+ workers
# sentencepiece's max_sentence_length below: a longer unit is left out of its training, and an input made only of
# such units (a 50 MB single line) leaves it nothing to train on
MAX_UNIT_BYTES = 1 << 16
# U+0080-U+009F: what Windows-1252 punctuation (curly quotes, dashes) becomes when read as Latin-1; never text
_C1_CONTROLS = {chr(c) for c in range(0x80, 0xA0)}
# Whitespace other than space and tab (U+0085 NEL, U+2028 LINE SEPARATOR, U+001C-U+001F, ...): sentencepiece keeps
# some of them inside pieces, which then cannot be dict.txt entries ("piece '\x85' contains whitespace"); they
# separate words like a space does, so they become one
_ODD_SPACES = {c: " " for c in range(0x3001) if chr(c).isspace() and chr(c) not in " \t"}


def list_input_files(inputs: List[str]) -> List[Path]:
    files = []
    for name in inputs:
        path = Path(name)
        if path.is_dir():
            found = sorted(p for p in path.glob("*.txt") if p.is_file())
            if not found:
                raise FileNotFoundError(f"vega-preprocess: input directory {path} contains no *.txt files")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise FileNotFoundError(f"vega-preprocess: input {path} does not exist")
    return files


def _decode(raw: bytes, encoding: str, path: Path, lineno: int, warned: set) -> str:
    if b"\0" in raw:
        raise ValueError(f"vega-preprocess: {path}:{lineno} contains NUL bytes: a binary file? The inputs must be "
                         f"text files")
    if encoding != "auto":
        try:
            text = raw.decode(encoding)
        except UnicodeDecodeError as e:
            raise ValueError(f"vega-preprocess: {path}:{lineno} is not {encoding} ({e}); try --encoding auto") from None
    else:
        try:
            return raw.decode("utf-8").translate(_ODD_SPACES)
        except UnicodeDecodeError:
            pass
        # Older Project Gutenberg files are Latin-1, Windows editors write Windows-1252: the latter decodes both
        # (it only adds printable characters where Latin-1 has control characters)
        if path not in warned:
            logger.warning("%s:%d is not UTF-8; decoding its non-UTF-8 lines as Windows-1252", path, lineno)
            warned.add(path)
        try:
            text = raw.decode("cp1252")
        except UnicodeDecodeError as e:
            raise ValueError(f"vega-preprocess: {path}:{lineno} is neither UTF-8 nor Windows-1252 (byte "
                             f"0x{raw[e.start]:02x}): a binary file, or pass the file's --encoding") from None
        encoding = "Windows-1252"
    control = next((c for c in text if c in _C1_CONTROLS), None)
    if control is not None and encoding.lower().replace("_", "-") not in ("utf-8", "utf8"):
        raise ValueError(f"vega-preprocess: {path}:{lineno} read as {encoding} gives the control character "
                         f"U+{ord(control):04X}: not the file's encoding (Windows-1252 text read as Latin-1?); pass "
                         f"--encoding cp1252 or the file's real encoding")
    return text.translate(_ODD_SPACES)


def _text_units(path: Path, encoding: str, warned: set, paragraphs: bool) -> Iterator[str]:
    """The non-empty lines of a file or, with `paragraphs`, its blank-line separated paragraphs as single lines."""
    paragraph = []
    size = 0

    def checked(unit: str, lineno: int) -> str:
        n_bytes = len(unit.encode("utf-8"))
        if n_bytes > MAX_UNIT_BYTES:
            what, hint = (("a paragraph", "drop --paragraphs if the file has no blank lines between paragraphs")
                          if paragraphs else ("a line", "split the text into lines, one sentence or paragraph each"))
            raise ValueError(f"vega-preprocess: {path}:{lineno}: {what} of {n_bytes} or more bytes, more than the "
                             f"{MAX_UNIT_BYTES} sentencepiece trains on: {hint}")
        return unit

    lineno = 0
    with path.open("rb") as f:
        for lineno, raw in enumerate(f, 1):
            line = _decode(raw, encoding, path, lineno, warned).strip()
            if not paragraphs:
                if line:
                    yield checked(line, lineno)
            elif line:
                paragraph.append(line)
                size += len(line) + 1  # characters: a lower bound of the bytes checked() counts
                if size > MAX_UNIT_BYTES:  # stop early: the paragraph is already too long
                    checked(" ".join(paragraph), lineno)
            elif paragraph:
                yield checked(" ".join(paragraph), lineno - 1)
                paragraph, size = [], 0
    if paragraph:
        yield checked(" ".join(paragraph), lineno)


def split_lines(files: List[Path], train_path: Path, valid_path: Path, valid_fraction: float, seed: int,
                encoding: str = "auto", paragraphs: bool = False):
    """Stream the non-empty lines (or paragraphs, see `_text_units`) of `files` into train/valid text files, one
    unit per line; returns (n_train, n_valid)."""
    rng = random.Random(seed)
    n_train = n_valid = 0
    held_back = None  # the latest train unit, written one step late: tiny inputs move it to valid
    valid_hashes = set()  # valid is the small split: its units' hashes find their copies in train afterwards
    warned = set()
    with train_path.open("w", encoding="utf-8") as train, valid_path.open("w", encoding="utf-8") as valid:
        for path in files:
            for line in _text_units(path, encoding, warned, paragraphs):
                if rng.random() < valid_fraction:
                    valid.write(line + "\n")
                    valid_hashes.add(hash(line))
                    n_valid += 1
                else:
                    if held_back is not None:
                        train.write(held_back + "\n")
                    held_back = line
                    n_train += 1
        if n_valid == 0 and valid_fraction > 0 and held_back is not None:
            # tiny inputs: fairseq needs a non-empty valid split. It gets a train unit moved (never copied: valid
            # text seen in training would make every valid score a lie), so there must be two units at least
            if n_train < 2:
                unit = "paragraph" if paragraphs else "non-empty line"
                raise ValueError(f"vega-preprocess: {n_train} {unit} in {[str(f) for f in files]}: too few to split "
                                 f"into train and valid (at least 2 are needed)")
            valid.write(held_back + "\n")
            valid_hashes.add(hash(held_back))
            n_valid, n_train, held_back = 1, n_train - 1, None
        if held_back is not None:
            train.write(held_back + "\n")
    moved = _move_train_copies_out_of_valid(train_path, valid_path, valid_hashes)
    n_train, n_valid = n_train + moved, n_valid - moved
    if n_train == 0:
        raise ValueError(f"vega-preprocess: no non-empty lines in {[str(f) for f in files]}")
    if n_valid == 0 and valid_fraction > 0:
        raise ValueError(f"vega-preprocess: every held-out unit of {[str(f) for f in files]} also occurs in train "
                         f"(repeated lines or paragraphs): too few distinct units to split; deduplicate the input")
    return n_train, n_valid


def _move_train_copies_out_of_valid(train_path: Path, valid_path: Path, valid_hashes: set) -> int:
    """Move the valid units that also occur in train (a corpus with repeated lines or paragraphs: Gutenberg's
    "* * *", chapter headings) to train, so that valid never shares a unit with train; returns how many moved.
    Only the small valid file is rewritten, and only when needed."""
    if not valid_hashes:
        return 0
    with train_path.open(encoding="utf-8") as f:
        shared = {h for h in (hash(line.rstrip("\n")) for line in f) if h in valid_hashes}
    if not shared:
        return 0
    moved = 0
    kept_path = valid_path.with_suffix(".kept")
    with valid_path.open(encoding="utf-8") as f, kept_path.open("w", encoding="utf-8") as kept, \
            train_path.open("a", encoding="utf-8") as train:
        for line in f:
            if hash(line.rstrip("\n")) in shared:
                train.write(line)
                moved += 1
            else:
                kept.write(line)
    kept_path.replace(valid_path)
    logger.info("%d valid units also occur in train: moved to train", moved)
    return moved


def train_sentencepiece(text: Path, prefix: Path, vocab_size: int, model_type: str, character_coverage: float,
                        input_sentence_size: int, threads: int) -> Path:
    import sentencepiece as spm

    spm.SentencePieceTrainer.train(
        input=str(text),
        model_prefix=str(prefix),
        vocab_size=vocab_size,
        model_type=model_type,
        character_coverage=character_coverage,
        input_sentence_size=input_sentence_size,
        shuffle_input_sentence=True,
        num_threads=threads,
        # small corpora cannot always fill the requested vocabulary; take what exists instead of failing
        hard_vocab_limit=False,
        # joined paragraphs (--paragraphs) run to several KB; the 4192-byte default would drop them from training
        max_sentence_length=MAX_UNIT_BYTES,
        minloglevel=2,
    )
    return prefix.with_suffix(".model")


_worker_spm = None


def _init_worker(model_path: str):
    global _worker_spm
    import sentencepiece as spm

    _worker_spm = spm.SentencePieceProcessor(model_file=model_path)


def _encode_chunk(lines: List[str]):
    pieces = _worker_spm.encode(lines, out_type=str)
    counts = collections.Counter(itertools.chain.from_iterable(pieces))
    return "".join(" ".join(p) + "\n" for p in pieces), counts


def _chunks(path: Path) -> Iterator[List[str]]:
    with path.open(encoding="utf-8") as f:
        while True:
            chunk = [line.rstrip("\n") for line in itertools.islice(f, CHUNK_LINES)]
            if not chunk:
                return
            yield chunk


def encode_file(model_path: Path, src: Path, dst: Path, workers: int) -> collections.Counter:
    """Write `src` as space-separated sentencepiece pieces (order kept); returns piece counts."""
    counts = collections.Counter()
    with dst.open("w", encoding="utf-8") as out:
        if workers > 1:
            # The platform default (fork on Linux), like fairseq's own binarizer: a spawned worker would re-import
            # vega_toolkit and with it torch and fairseq, seconds per worker for a sentencepiece-only job.
            with multiprocessing.Pool(workers, _init_worker, (str(model_path),)) as pool:
                for text, chunk_counts in pool.imap(_encode_chunk, _chunks(src)):
                    out.write(text)
                    counts.update(chunk_counts)
        else:
            _init_worker(str(model_path))
            for chunk in _chunks(src):
                text, chunk_counts = _encode_chunk(chunk)
                out.write(text)
                counts.update(chunk_counts)
    return counts


def write_dictionary(model_path: Path, counts: collections.Counter, dict_path: Path) -> int:
    """dict.txt with every normal sentencepiece piece in spm id order (so every piece has an id)."""
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=str(model_path))
    n = 0
    with dict_path.open("w", encoding="utf-8") as f:
        for i in range(sp.get_piece_size()):
            if sp.is_control(i) or sp.is_unknown(i):
                continue  # <s>, </s>, <pad>, <unk> are fairseq's own first four symbols
            piece = sp.id_to_piece(i)
            if any(c.isspace() for c in piece):
                raise ValueError(f"vega-preprocess: sentencepiece piece {piece!r} (id {i}) contains whitespace")
            f.write(f"{piece} {counts.get(piece, 0)}\n")
            n += 1
    return n


def binarize(destdir: Path, dict_path: Path, trainpref: Path, validpref: Path, workers: int):
    """fairseq's own binarizer (multi-process over file offsets) into mmap indexed datasets."""
    from fairseq import options
    from fairseq_cli import preprocess as fairseq_preprocess

    parser = options.get_preprocessing_parser()
    args = parser.parse_args([
        "--only-source", "--srcdict", str(dict_path), "--trainpref", str(trainpref), "--validpref",
        str(validpref), "--destdir", str(destdir), "--workers", str(workers), "--dataset-impl", "mmap",
    ])
    fairseq_preprocess.main(args)


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vega-preprocess", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("inputs", nargs="+", help="text files or directories of *.txt files")
    parser.add_argument("--destdir", required=True, help="output data-bin directory")
    vocab = parser.add_mutually_exclusive_group(required=True)
    vocab.add_argument("--vocab-size", type=int, help="train a sentencepiece model with this many pieces")
    vocab.add_argument("--spm-model", help="use this existing sentencepiece model (e.g. from vega-convert)")
    parser.add_argument("--srcdict", help="with --spm-model: keep this fairseq dict.txt (a converted model's)")
    parser.add_argument("--model-type", default="unigram", choices=["unigram", "bpe"],
                        help="sentencepiece model type (DeBERTa-v3 uses unigram)")
    parser.add_argument("--character-coverage", type=float, default=0.9999, help="sentencepiece coverage")
    parser.add_argument("--input-sentence-size", type=int, default=2_000_000,
                        help="sentencepiece trains on at most this many (randomly sampled) lines")
    parser.add_argument("--valid-fraction", type=float, default=0.01,
                        help="fraction of lines (paragraphs with --paragraphs) held out as valid")
    parser.add_argument("--paragraphs", action="store_true",
                        help="hard-wrapped text (Project Gutenberg): join each blank-line separated paragraph into "
                             "one line before splitting and encoding, so held-out text is whole paragraphs and "
                             "</s> marks paragraph ends rather than line wraps")
    parser.add_argument("--seed", type=int, default=1, help="seed of the train/valid split")
    parser.add_argument("--encoding", default="auto",
                        help="input encoding; 'auto' reads UTF-8 and falls back to Windows-1252 (a superset of "
                             "Latin-1's text) line by line")
    parser.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1),
                        help="processes for encoding and binarizing")
    return parser


def main(argv: Optional[List[str]] = None) -> Path:
    args = get_parser().parse_args(argv)
    if args.vocab_size is not None and args.vocab_size < 8:
        raise ValueError(f"--vocab-size must be >= 8, got {args.vocab_size}")
    if not 0.0 <= args.valid_fraction < 1.0:
        raise ValueError(f"--valid-fraction must be in [0, 1), got {args.valid_fraction}")
    if args.srcdict and not args.spm_model:
        raise ValueError("--srcdict needs --spm-model (the dictionary's pieces come from that model)")
    for flag in ("spm_model", "srcdict"):
        path = getattr(args, flag)
        if path and not Path(path).is_file():
            raise FileNotFoundError(f"--{flag.replace('_', '-')}: {path} does not exist")
    files = list_input_files(args.inputs)
    destdir = Path(args.destdir)
    destdir.mkdir(parents=True, exist_ok=True)
    workers = max(1, args.workers)

    with tempfile.TemporaryDirectory(prefix="vega-preprocess-", dir=destdir) as tmp:
        tmp = Path(tmp)
        n_train, n_valid = split_lines(files, tmp / "train.txt", tmp / "valid.txt", args.valid_fraction, args.seed,
                                       args.encoding, args.paragraphs)
        unit = "paragraphs" if args.paragraphs else "lines"
        logger.info("%d files -> %d train / %d valid %s", len(files), n_train, n_valid, unit)
        if args.spm_model:
            spm_model = Path(args.spm_model)
        else:
            try:
                spm_model = train_sentencepiece(tmp / "train.txt", tmp / "spm", args.vocab_size, args.model_type,
                                                args.character_coverage, args.input_sentence_size, workers)
            except RuntimeError as err:  # e.g. more distinct characters than --vocab-size: a flag to change
                raise ValueError(f"vega-preprocess: sentencepiece cannot train on {[str(f) for f in files]} with "
                                 f"--vocab-size {args.vocab_size} --character-coverage {args.character_coverage}: "
                                 f"{str(err).strip()}") from None
        counts = encode_file(spm_model, tmp / "train.txt", tmp / "train.spm", workers)
        encode_file(spm_model, tmp / "valid.txt", tmp / "valid.spm", workers)
        if args.srcdict:
            dict_path = Path(args.srcdict)
        else:
            dict_path = tmp / "dict.txt"
            n_pieces = write_dictionary(spm_model, counts, dict_path)
            logger.info("dict.txt: %d pieces", n_pieces)
        binarize(destdir, dict_path, tmp / "train.spm", tmp / "valid.spm", workers)
        if spm_model.resolve() != (destdir / "spm.model").resolve():
            shutil.copyfile(spm_model, destdir / "spm.model")
    logger.info("wrote %s (train/valid .bin/.idx, dict.txt, spm.model)", destdir)
    return destdir


def cli_main():
    logging.basicConfig(format="%(asctime)s | %(levelname)s | %(name)s | %(message)s", level=logging.INFO,
                        stream=sys.stdout)
    try:
        main()
    except (ValueError, FileNotFoundError) as err:  # bad input: the message names the file (and line) or the flag
        message = str(err)
        sys.exit(message if message.startswith("vega-preprocess") else f"vega-preprocess: {message}")


if __name__ == "__main__":
    cli_main()
