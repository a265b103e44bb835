"""`ddm report` and `ddm stats` (CLI layer): evaluate runs, print what the stored
predictions say, and the bias statistics of the catalog."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from cli.app import App
from cli.output import output_options, table, write_json
from cli.segments_view import WindowOptions, segment_options, show_report_segments

SPLITS = ("test", "val", "train", "all")
METRIC_COLUMNS = ["run", "trained_on", "held_out", "videos"]
METRIC_KEYS = ("accuracy", "precision", "recall", "f1", "auc", "ap", "eer")
METRIC_COLUMNS += list(METRIC_KEYS)


@click.command("report")
@click.option("--eval", "eval_dataset", required=True, help="Dataset to evaluate on.")
@click.option(
    "--split",
    type=click.Choice(SPLITS),
    help="Split to evaluate [default: test, or all videos when the dataset has none].",
)
@click.option("--runs", "run_spec", default="latest", show_default=True, help="latest, all or ids.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), help="Write figures here.")
@segment_options
@output_options
@click.pass_obj
def report(
    app: App,
    eval_dataset: str,
    split: str | None,
    run_spec: str,
    out: Path | None,
    segments: WindowOptions | None,
    as_json: bool,
) -> None:
    """Evaluate runs on a dataset and report metrics, the cross-dataset matrix and bias.

    Each run's evaluation is stored with every per-video score, and reused while run,
    dataset, split and caches are unchanged. Every number is computed from those scores.

    \b
    Examples:
      ddm report --eval dfdc
      ddm report --eval ff --split test --runs all --out report/
      ddm report --eval celebdf --runs 3,4 --json | jq '.runs[] | {run_id, auc}'
      ddm report --eval interviews --segments --window-seconds 10 --stride-seconds 5
    """
    from tasks.evaluation import evaluate_runs
    from tasks.report import EvaluationFailed, build_report, require_reportable

    plan, dispatched = evaluate_runs(
        app.settings,
        app.session_factory,
        eval_dataset,
        split=split,
        run_spec=run_spec,
        segments=segments.spec() if segments else None,
    )
    if dispatched.sent:
        from cli.job_cmds import follow_jobs

        follow_jobs(app, dispatched.job_ids, interval=1.0)
    document = build_report(app.session_factory, plan)
    require_reportable(document)
    files = _write_files(app, document, out) if out else []
    if as_json:
        write_json(document)
    else:
        render_report(app, document, files)
    if document["failed"]:
        raise EvaluationFailed(
            f"{len(document['failed'])} evaluation(s) failed: {document['failed'][0]}"
        )


def _write_files(app: App, document: dict[str, Any], out: Path) -> list[Path]:
    from tasks.report_files import write_report_files

    return write_report_files(
        document, out, app.session_factory, Path(app.settings.cache_dir or "")
    )


def render_report(app: App, document: dict[str, Any], files: list[Path]) -> None:
    """Rich tables: results, per-class reports, confusion matrices, matrix, bias."""
    say = app.out.print
    title = f"{document['eval_dataset']} ({document['split']})"
    for note in document["notes"]:
        app.err.print(note, markup=False, highlight=False)
    rows = [row for entry in document["runs"] for row in _metric_rows(entry)]
    table(app.out, rows, METRIC_COLUMNS, title=title)
    for entry in document["runs"]:
        _per_class(app, entry)
        if "segments" in entry:
            show_report_segments(app, entry["run_id"], entry["segments"])
    render_matrix(app, document["cross_dataset"])
    _prediction_bias(app, document)
    render_catalog_bias(app, document["bias"]["catalog"])
    for sentence in document["bias"]["sentences"]:
        say(f"• {sentence}", markup=False, highlight=False)
    for failure in document["failed"]:
        app.err.print(f"not evaluated: {failure}", markup=False, highlight=False)
    if files:
        report_md = next((f for f in files if f.name == "report.md"), files[-1])
        say(f"figures and report: {report_md}", markup=False, highlight=False)


def _metric_rows(entry: dict[str, Any]) -> list[dict[str, Any]]:
    """The headline row (held-out videos only where the run saw some), then, where it did,
    the pooled row, labelled so that nobody quotes it as a held-out result."""
    headline = {
        "run": f"{entry['run_id']} {entry['run_name']}",
        "trained_on": "+".join(entry["train_datasets"]),
        "held_out": "yes" if entry["held_out"] else "held-out only",
        "videos": entry["n_held_out"],
        **{key: entry[key] for key in METRIC_KEYS},
    }
    if entry["held_out"]:
        return [headline]
    pooled = {
        "run": "  pooled",
        "trained_on": "",
        "held_out": f"NO ({entry['leaked_videos']} seen)",
        "videos": entry["n_videos"],
        **{key: entry["pooled"][key] for key in METRIC_KEYS},
    }
    return [headline, pooled]


def _per_class(app: App, entry: dict[str, Any]) -> None:
    scope = entry if entry["per_class"] is not None else entry["pooled"]
    rows = [
        {"class": name.replace("_", " "), **values} for name, values in scope["per_class"].items()
    ]
    c = scope["confusion"]
    table(
        app.out,
        rows,
        ["class", "precision", "recall", "f1", "support"],
        title=f"run {entry['run_id']}: per class (fake is positive), {_scope_words(entry)}",
    )
    confusion = [
        {"true": "real", "predicted real": c["tn"], "predicted fake": c["fp"]},
        {"true": "fake", "predicted real": c["fn"], "predicted fake": c["tp"]},
    ]
    table(app.out, confusion, ["true", "predicted real", "predicted fake"], title="confusion")


def _scope_words(entry: dict[str, Any]) -> str:
    if entry["held_out"]:
        return "every video held out"
    if entry["per_class"] is not None:
        return f"the {entry['n_held_out']} held-out videos"
    return "pooled: no video held out"


def render_matrix(app: App, matrix: dict[str, Any]) -> None:
    columns = matrix["datasets"]
    rows = []
    for row in matrix["rows"]:
        cells = {name: _cell(row["cells"].get(name)) for name in columns}
        rows.append({"run": f"{row['run_id']} ({'+'.join(row['train_datasets'])})", **cells})
    table(app.out, rows, ["run", *columns], title="cross-dataset AUC / accuracy")


def _cell(cell: dict[str, Any] | None) -> str:
    if cell is None:
        return "-"
    text = f"{_number(cell['auc'])} / {_number(cell['accuracy'])}"
    if cell["held_out"]:
        return text
    pooled = f"{_number(cell['pooled_auc'])} / {_number(cell['pooled_accuracy'])}"
    return f"{text} held-out only ({cell['n_held_out']}); pooled {pooled}"


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _prediction_bias(app: App, document: dict[str, Any]) -> None:
    for run_id, groupings in document["bias"]["predictions"].items():
        rows = [
            {"by": grouping, **group} for grouping, groups in groupings.items() for group in groups
        ]
        columns = ["by", "group", "n", "n_real", "n_fake", "predicted_fake_rate", "error_rate"]
        table(app.out, rows, columns, title=f"run {run_id}: predictions by group")


def render_catalog_bias(app: App, catalog: dict[str, Any]) -> None:
    """Per dataset and label: counts, splits, medians; and the attribute separations."""
    rows = [
        {"dataset": name, "label": label, **_summary(summary)}
        for name, entry in catalog.items()
        for label, summary in entry["by_label"].items()
    ]
    columns = ["dataset", "label", "videos", "splits", "frame_count", "resolution", "fps"]
    columns += ["duration_s", "fallback_rate"]
    table(app.out, rows, columns, title="catalog by label", empty="no labelled videos")
    separations = [
        {
            "dataset": name,
            "attribute": attribute,
            **_separation(result),
            "missing real/fake": _missing(entry["missing"][attribute]),
        }
        for name, entry in catalog.items()
        for attribute, result in entry["separation"].items()
    ]
    table(
        app.out,
        separations,
        ["dataset", "attribute", "auc", "direction", "n_real", "n_fake", "missing real/fake"],
        title="how well one attribute alone separates real from fake (0.5: not at all)",
    )


def _summary(summary: dict[str, Any]) -> dict[str, Any]:
    splits = " ".join(f"{k}:{v}" for k, v in summary["splits"].items() if v)
    return {**summary, "splits": splits}


def _missing(missing: dict[str, Any]) -> str:
    return f"{missing['real']}/{missing['n_real']} | {missing['fake']}/{missing['n_fake']}"


def _separation(result: dict[str, Any] | None) -> dict[str, Any]:
    if result is None:
        return {"auc": None, "direction": "one class or no values"}
    return {**result, "auc": result["separation"]}


@click.command("stats")
@click.option("--datasets", help="Comma-separated names (default: every dataset).")
@output_options
@click.pass_obj
def stats(app: App, datasets: str | None, as_json: bool) -> None:
    """Bias statistics of the catalog: what could separate real from fake besides the fake.

    \b
    Examples:
      ddm stats
      ddm stats --datasets ff,dfdc --json | jq '.sentences'
    """
    from tasks.bias import catalog_stats

    names = [n.strip() for n in datasets.split(",") if n.strip()] if datasets else None
    with app.session() as session:
        document = catalog_stats(session, names)
    if as_json:
        write_json(document)
        return
    render_catalog_bias(app, document["datasets"])
    for sentence in document["sentences"]:
        app.out.print(f"• {sentence}", markup=False, highlight=False)


COMMANDS = (report, stats)
