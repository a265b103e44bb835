"""`ddm split DATASET`: re-split a dataset into train, val and test (CLI layer)."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import click

from cli.app import App
from cli.output import output_options, table, write_json


@click.command("split")
@click.argument("dataset")
@click.option(
    "--ratios",
    default="70,15,15",
    show_default=True,
    help="Train, val and test percentages.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Orders the groups.")
@click.option(
    "--group-by",
    type=click.Path(path_type=Path),
    help="A CSV of file,group (files relative to the dataset root): groups stay whole.",
)
@click.option("--force", is_flag=True, help="Re-split official splits (FF++, Celeb-DF, DFDC).")
@output_options
@click.pass_obj
def split(
    app: App,
    dataset: str,
    ratios: str,
    seed: int,
    group_by: Path | None,
    force: bool,
    as_json: bool,
) -> None:
    """Re-split DATASET into train, val and test, by group, stratified by label and method.

    Official splits stay unless --force; the splits they fill are left to them and the
    other videos share the remaining ratios. Later ingests keep this split. Runs keep
    the members they trained on: a re-split never rewrites them, and `ddm report` says
    when an evaluation's videos changed split since.

    \b
    Examples:
      ddm split mine
      ddm split mine --ratios 80,10,10 --seed 3 --group-by people.csv
      ddm split celebdf --json
    """
    from ddm.ingest.splitting import parse_ratios
    from ddm.services.splits import resplit_dataset

    change = resplit_dataset(
        app.session_factory,
        dataset,
        ratios=parse_ratios(ratios),
        seed=seed,
        group_by=group_by,
        force=force,
    )
    if as_json:
        write_json(asdict(change))
        return
    _print_change(app, change)


def _print_change(app: App, change: Any) -> None:
    policy = change.policy
    ratios = "/".join(str(r) for r in policy["ratios"])
    grouped = policy["group_by"] or "the catalog's identity groups"
    app.out.print(
        f"{change.dataset} ({change.format}): {change.resplit} videos split {ratios} "
        f"(seed {policy['seed']}, grouped by {grouped})",
        markup=False,
        highlight=False,
    )
    if change.kept_official:
        app.out.print(
            f"kept {change.kept_official} videos in their official split "
            f"({', '.join(change.kept_splits) or 'none'}); --force re-splits them",
            markup=False,
            highlight=False,
        )
    if change.moved:
        moves = ", ".join(f"{n} {way.replace('->', ' -> ')}" for way, n in change.moved.items())
        app.out.print(f"moved: {moves}", markup=False, highlight=False)
    else:
        app.out.print("no video changed split", markup=False, highlight=False)
    if change.straddling:
        app.out.print(
            f"{change.straddling} videos show groups of two splits: left out of every split",
            markup=False,
            highlight=False,
        )
    rows = [{"split": split, **labels} for split, labels in change.by_split.items()]
    table(app.out, rows, ["split", "real", "fake"], title=f"{change.dataset}: videos by split")
    for line in change.shortages:
        app.out.print(f"[yellow]problem:[/] {line}", markup=True, highlight=False)


COMMANDS = (split,)
