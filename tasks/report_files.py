"""`ddm report --out DIR`: the figures (PNG) and a Markdown report linking them, each
written atomically (jobs layer: catalog rows and cache files in, `model.figures` out)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from ddm.catalog import evaluations, runs
from ddm.catalog.records import to_json
from ddm.db import session_scope
from ddm.fs import atomic_write
from ddm.vocab import Label

# The style-pattern figure reads at most this many cache files per class.
PATTERN_VIDEOS = 200


def write_report_files(
    report: dict[str, Any], out: Path, factory: sessionmaker[Session], cache_dir: Path
) -> list[Path]:
    """Write the figures, report.md and report.json into `out`; returns the paths."""
    from model import figures

    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    entries = report["runs"]
    for entry in entries:
        tag = f"run{entry['run_id']}"
        confusion = entry["confusion"] or entry["pooled"]["confusion"]
        written.append(
            figures.confusion_figure(out / f"confusion_{tag}.png", confusion, _title(entry, report))
        )
        epochs = _epochs(factory, entry["run_id"])
        if epochs:
            written.append(
                figures.training_curves_figure(
                    out / f"training_{tag}.png", epochs, f"run {entry['run_id']} training"
                )
            )
    curves = [(_legend(entry), *curve_points(entry)) for entry in entries]
    written.append(figures.roc_figure(out / "roc.png", curves, f"ROC on {report['eval_dataset']}"))
    pattern = _style_pattern(factory, entries, cache_dir)
    if pattern is not None:
        written.append(
            figures.style_pattern_figure(
                out / "style_pattern.png",
                *pattern,
                f"style-flow magnitude over time, {report['eval_dataset']}",
            )
        )
    written.append(_write_text(out / "report.json", json.dumps(report, indent=2, default=str)))
    written.append(_write_text(out / "report.md", markdown(report, [p.name for p in written])))
    return written


def _title(entry: dict[str, Any], report: dict[str, Any]) -> str:
    return entry_title(entry, report["eval_dataset"])


def entry_title(entry: dict[str, Any], eval_dataset: str) -> str:
    """A run entry's figure title: the run, what it trained on, where it was scored."""
    return f"{_legend(entry)} on {eval_dataset} ({entry['split']})"


def _legend(entry: dict[str, Any]) -> str:
    return f"run {entry['run_id']} ({'+'.join(entry['train_datasets'])})"


def curve_points(entry: dict[str, Any]) -> tuple[list[int], list[float]]:
    """Labels and ranking values of the videos the headline covers: logits where stored,
    since probabilities of confident videos round to 1.0 and tie."""
    predictions = [p for p in entry["predictions"] if not p["leaked"]] or entry["predictions"]
    by_logit = all(p["logit"] is not None for p in predictions)
    values = [p["logit"] if by_logit else p["score"] for p in predictions]
    return [int(p["label"] == Label.FAKE) for p in predictions], values


def _epochs(factory: sessionmaker[Session], run_id: int) -> list[dict[str, Any]]:
    with session_scope(factory) as session:
        return [to_json(epoch) for epoch in runs.run_epochs(session, run_id)]


def _style_pattern(
    factory: sessionmaker[Session], entries: list[dict[str, Any]], cache_dir: Path
) -> tuple[list[Any], list[Any]] | None:
    """Flow magnitude over time of the evaluated videos, real and fake, from the caches
    the first evaluation scored."""
    from model.bias import flow_magnitude
    from model.features import load_features

    if not entries:
        return None
    with session_scope(factory) as session:
        predictions = evaluations.evaluation_predictions(session, entries[0]["evaluation_id"])
    groups: dict[str, list[Any]] = {Label.REAL.value: [], Label.FAKE.value: []}
    for p in predictions:
        group = groups.get(p.label or "")
        if group is None or p.cache_path is None or len(group) >= PATTERN_VIDEOS:
            continue
        path = cache_dir / p.cache_path
        if path.is_file():
            group.append(flow_magnitude(load_features(path)["style"].float().numpy()))
    if not any(groups.values()):
        return None
    return groups[Label.REAL.value], groups[Label.FAKE.value]


def _write_text(path: Path, text: str) -> Path:
    with atomic_write(path) as handle:
        handle.write(text.encode())
    return path


def markdown(report: dict[str, Any], files: list[str]) -> str:
    """The report as Markdown, linking the figures written next to it."""
    lines = [f"# Evaluation on {report['eval_dataset']} (split {report['split']})", ""]
    lines += [f"- {note}" for note in report["notes"]]
    lines += ["", "## Results", "", _results_table(report["runs"]), ""]
    lines += ["## Cross-dataset matrix (AUC / accuracy)", "", _matrix(report), ""]
    sentences = report["bias"]["sentences"]
    lines += ["## Skews", ""]
    lines += [f"- {s}" for s in sentences] or ["- none found"]
    lines += _windows_sections(report["runs"])
    lines += ["", "## Figures", ""]
    lines += [f"![{name}]({name})" for name in files if name.endswith(".png")]
    return "\n".join(lines) + "\n"


# Rows of a run's windows table in report.md; report.json has every video.
MARKDOWN_WINDOW_ROWS = 100


def _windows_sections(entries: list[dict[str, Any]]) -> list[str]:
    """Per run judged in windows (`ddm report --segments`): which part of each video it
    flagged, the fakes first, as `ddm report --segments` shows it in the terminal."""
    lines: list[str] = []
    for entry in entries:
        segments = entry.get("segments")
        if not segments:
            continue
        lines += [
            "",
            f"## Windows of run {entry['run_id']}: {segments['window_seconds']:g} s every "
            f"{segments['stride_seconds']:g} s ({segments['rule']})",
            "",
            "| video | label | verdict | flagged windows | flagged parts (s) | deciding window |",
            "|" + "---|" * 6,
        ]
        videos = sorted(segments["videos"], key=lambda v: v["label"] != "fake")
        lines += [_window_row(video) for video in videos[:MARKDOWN_WINDOW_ROWS]]
        if len(videos) > MARKDOWN_WINDOW_ROWS:
            lines += ["", f"{len(videos) - MARKDOWN_WINDOW_ROWS} more videos in report.json."]
    return lines


def _window_row(video: dict[str, Any]) -> str:
    parts = ", ".join(f"{start:.1f}-{end:.1f}" for start, end in video["flagged_parts"])
    deciding = video["deciding_window"]
    cells = [
        _cell_text(video["path"]),
        video["label"] or "-",
        video["verdict"],
        f"{video['flagged_windows']}/{video['windows']}",
        parts or "none",
        f"{deciding['start']:.1f}-{deciding['end']:.1f} s ({deciding['score']:.3f})",
    ]
    return "| " + " | ".join(cells) + " |"


def _cell_text(text: str) -> str:
    """A file name as a table cell: a `|` in it would end the cell, a line break the row."""
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _results_table(entries: list[dict[str, Any]]) -> str:
    head = "| run | trained on | videos | accuracy | precision | recall | F1 | AUC |"
    rows = [head, "|" + "---|" * 8]
    for e in entries:
        scope = "held out" if e["held_out"] else "held-out only"
        rows.append(_results_row(e, f"{e['run_id']}", scope, e["n_held_out"], e))
        if not e["held_out"]:
            seen = f"pooled, {e['leaked_videos']} seen: not a held-out result"
            rows.append(_results_row(e, "", seen, e["n_videos"], e["pooled"]))
    return "\n".join(rows)


def _results_row(
    e: dict[str, Any], run: str, scope: str, videos: int, metrics: dict[str, Any]
) -> str:
    cells = [metrics[key] for key in ("accuracy", "precision", "recall", "f1", "auc")]
    trained = "+".join(e["train_datasets"]) if run else ""
    return (
        f"| {run} | {trained} | {videos} ({scope}) | "
        + " | ".join(_number(c) for c in cells)
        + " |"
    )


def _matrix(report: dict[str, Any]) -> str:
    matrix = report["cross_dataset"]
    columns = matrix["datasets"]
    rows = ["| run | " + " | ".join(columns) + " |", "|" + "---|" * (len(columns) + 1)]
    for row in matrix["rows"]:
        cells = [row["cells"].get(c) for c in columns]
        text = [f"{_number(c['auc'])} / {_number(c['accuracy'])}" if c else "-" for c in cells]
        rows.append(
            f"| {row['run_id']} ({'+'.join(row['train_datasets'])}) | " + " | ".join(text) + " |"
        )
    return "\n".join(rows)


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"
