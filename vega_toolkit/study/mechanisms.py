"""What each adaptation trick did in a study's cells, read from their logs: was it really on, and which part acted?

    vega-study mechanisms results/study-cpu > results/study-cpu/mechanisms.md

A trick that scores within noise of plain fine-tuning either does little at this scale or was never really on. The
cells' logs (OUT/logs/, which stay on the machine that ran them) tell the two apart:
- SiFT (`--criterion adversarial_ce`): the share of the training loss that is the adversarial term. fairseq logs
  the loss in bits per sample and the criterion logs `adv_loss` (before `--adv-lambda`) in nats per sample, so the
  share in one epoch's averages (the `train | epoch` lines) is lambda * adv_loss / (loss * ln 2).
- Adaptation rounds (`glue_transductive`, `glue_self_calibrated`): the dev score of every round and how many test
  pseudo-labels changed from the round before (the summary table `vega-train` prints at the end of the loop). In
  the self-calibrated arm round 0 is M0 fine-tuned on the calibrated external data and the later rounds are
  Algorithm 1's, so the two halves of Algorithm 2 are measured apart.
- Self-calibration: the external pool, how many sentences KenLM selected, the agreement rate (n/a for an
  unlabelled pool, where every relabelled sentence is kept) and how many were kept.
"""

import math
import re
import shlex
import statistics
from collections import defaultdict
from pathlib import Path

from vega_toolkit.study.report import baseline_of, load_study
from vega_toolkit.study.runner import cell_log_path, code_version

_TRAIN_EPOCH = re.compile(r"INFO:train:epoch \d+ \| loss (?P<loss>[\d.]+) \|.*\| adv_loss (?P<adv>[\d.e-]+) \|")
_ROUNDS_HEADER = "| round | model | pseudo-labels used | changed | distribution | dev |"
_ROUND_ROW = re.compile(
    r"^\| (?P<round>\d+) \| \S+ \| (?P<used>\d+)/(?P<n>\d+) \| (?P<changed>-|\d+ \([\d.]+%\)) \| "
    r"(?P<distribution>[^|]+) \| (?P<metric>\w+)=(?P<dev>-?[\d.]+) \|$"
)
_SELF_CALIBRATION = re.compile(
    r"^self-calibration: pool (?P<pool>\d+), selected (?P<selected>\d+), "
    r"agreement (?P<agreement>\S+), calibrated (?P<kept>\d+)",
    re.M,
)


def flag_value(record: dict, flag: str) -> str | None:
    """The value of `flag` in the last of the record's commands that has it."""
    for command in reversed(record.get("commands", [])):
        words = shlex.split(command)
        if flag in words:
            return words[words.index(flag) + 1]
    return None


def adversarial_share(log_text: str, adv_lambda: float) -> float | None:
    """Mean over the training epochs of lambda * adv_loss / (loss * ln 2); None without SiFT lines."""
    shares = [
        adv_lambda * float(m["adv"]) / (float(m["loss"]) * math.log(2))
        for m in _TRAIN_EPOCH.finditer(log_text)
        if float(m["loss"]) > 0
    ]
    return statistics.fmean(shares) if shares else None


def adaptation_rounds(log_text: str) -> list[dict]:
    """The rows of the last round summary in a log: [{round, dev, changed_fraction or None}] (a resumed cell's log
    holds every attempt; the last summary is the loop's final state)."""
    start = log_text.rfind(_ROUNDS_HEADER)
    if start < 0:
        return []
    rows = []
    for line in log_text[start:].splitlines()[2:]:
        m = _ROUND_ROW.match(line.strip())
        if not m:
            break
        changed = None if m["changed"] == "-" else int(m["changed"].split()[0]) / int(m["n"])
        rows.append({"round": int(m["round"]), "dev": float(m["dev"]), "changed_fraction": changed})
    return rows


def self_calibration(log_text: str) -> dict[str, str] | None:
    found = list(_SELF_CALIBRATION.finditer(log_text))
    return found[-1].groupdict() if found else None


def _mean_std(values: list[float], signed: bool = False) -> str:
    mean = f"{statistics.fmean(values):{'+' if signed else ''}.2f}"
    return mean if len(values) == 1 else f"{mean} ± {statistics.stdev(values):.2f}"


def read_cells(out: Path, records: list[dict]) -> list[tuple[dict, str]]:
    """(record, log text) of every finished fine-tuning cell of `records` whose log is on this machine."""
    cells = []
    for r in records:
        if r.get("kind") == "finetune":
            log = cell_log_path(out, r["name"])
            if log.exists():
                cells.append((r, log.read_text(errors="replace")))
    return cells


def baseline_scores(records: list[dict]) -> dict[tuple[str, str, float, int], float]:
    """(arm, task, lr, seed) -> dev score of every finished fine-tuning cell."""
    return {
        (r["arm"], r["task"], float(r["lr"]), int(r["seed"])): float(r["score"])
        for r in records
        if r.get("kind") == "finetune"
    }


def _sift_section(cells) -> list[str]:
    by_task: dict[str, list[float]] = defaultdict(list)
    for r, text in cells:
        adv_lambda = flag_value(r, "--adv-lambda")
        share = adversarial_share(text, float(adv_lambda)) if adv_lambda else None
        if share is not None:
            by_task[r["task"]].append(share)
    if not by_task:
        return []
    lines = [
        "## SiFT: the adversarial term's share of the training loss",
        "",
        "Mean over each cell's training epochs of lambda * adv_loss / (loss * ln 2), then over its cells.",
        "",
        "| task | cells | mean share | lowest cell | highest cell |",
        "|---|---|---|---|---|",
    ]
    for task, shares in by_task.items():
        lines.append(
            f"| {task} | {len(shares)} | {100 * statistics.fmean(shares):.1f}% | {100 * min(shares):.1f}% | "
            f"{100 * max(shares):.1f}% |"
        )
    return lines + [""]


def _rounds_section(cells, scores) -> list[str]:
    groups: dict[tuple[str, str, float], dict[int, list[dict]]] = defaultdict(dict)
    for r, text in cells:
        rows = adaptation_rounds(text)
        if rows:
            groups[(r["arm"], r["task"], float(r["lr"]))][int(r["seed"])] = rows
    if not groups:
        return []
    lines = [
        "## Adaptation rounds: dev score by round, and test pseudo-labels changed from the round before",
        "",
        "Mean ± std over seeds. `round 0 - baseline` compares each seed's round 0 with the same seed and "
        "learning rate of the arm's baseline (plain fine-tuning): in the self-calibrated arms, what fine-tuning "
        "on the calibrated external data did. `last - round 0` is what the pseudo-labelling rounds added to the "
        "model they started from. Both are means of per-seed differences.",
        "",
        "| arm | task | lr | seeds | dev by round | changed by round | round 0 - baseline | last - round 0 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for (arm, task, lr), by_seed in groups.items():
        rounds = max(len(rows) for rows in by_seed.values())
        dev = [_mean_std([rows[k]["dev"] for rows in by_seed.values() if len(rows) > k]) for k in range(rounds)]
        changed = []
        for k in range(1, rounds):
            fractions = [
                rows[k]["changed_fraction"]
                for rows in by_seed.values()
                if len(rows) > k and rows[k]["changed_fraction"] is not None
            ]
            changed.append(f"{100 * statistics.fmean(fractions):.1f}%" if fractions else "-")
        gain = _mean_std([rows[-1]["dev"] - rows[0]["dev"] for rows in by_seed.values()], signed=True)
        baseline = baseline_of(arm)
        start = [
            rows[0]["dev"] - scores[(baseline, task, lr, seed)]
            for seed, rows in by_seed.items()
            if (baseline, task, lr, seed) in scores
        ]
        start_text = f"{_mean_std(start, signed=True)} (`{baseline}`)" if start else "-"
        lines.append(
            f"| `{arm}` | {task} | {lr:g} | {len(by_seed)} | {' → '.join(dev)} | "
            f"{' → '.join(changed) or '-'} | {start_text} | {gain} |"
        )
    return lines + [""]


def _self_calibration_section(cells) -> list[str]:
    rows = []
    for r, text in cells:
        found = self_calibration(text)
        if found:
            rows.append((r, found))
    if not rows:
        return []
    lines = [
        "## Self-calibration: what the external pool gave",
        "",
        "| arm | task | cells | pool | selected | agreement | kept |",
        "|---|---|---|---|---|---|---|",
    ]
    grouped: dict[tuple[str, str], list[dict[str, str]]] = defaultdict(list)
    for r, found in rows:
        grouped[(r["arm"], r["task"])].append(found)

    def values(found, key):
        return "/".join(sorted({f[key] for f in found}))

    for (arm, task), found in grouped.items():
        lines.append(
            f"| `{arm}` | {task} | {len(found)} | {values(found, 'pool')} | {values(found, 'selected')} | "
            f"{values(found, 'agreement')} | {values(found, 'kept')} |"
        )
    return lines + [""]


def mechanisms_report(out: Path) -> str:
    out = Path(out)
    _, records, _ = load_study(out)
    cells = read_cells(out, records)
    sections = (
        _sift_section(cells) + _rounds_section(cells, baseline_scores(records)) + _self_calibration_section(cells)
    )
    if not sections:
        raise FileNotFoundError(f"{out}: no finished SiFT or adaptation-round cell with its log in {out / 'logs'}")
    return (
        "\n".join(
            [
                f"# What the adaptation tricks did: `vega-study mechanisms {out}` at commit {code_version()}",
                "",
                *sections,
            ]
        ).rstrip()
        + "\n"
    )
