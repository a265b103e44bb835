"""`ddm train` hears of every batch as well as every epoch: live bars in a terminal."""

from __future__ import annotations

import io
from dataclasses import replace

from rich.console import Console
from rich.progress import Progress, TextColumn

from cli.train_cmds import _Live
from tasks.training import train_datasets
from tests.tasks.synth import QUICK


def test_inline_training_reports_each_batch_and_each_epoch(job_settings, factory, synth):
    epochs, batches = [], []
    run = train_datasets(
        job_settings,
        factory,
        [synth],
        train_cfg=replace(QUICK, epochs=2),
        batch_size=4,
        on_epoch=epochs.append,
        on_batch=batches.append,
    )
    assert set(run.dispatched.statuses.values()) == {"succeeded"}
    assert [e["epoch"] for e in epochs] == [1, 2] and all("batch" not in e for e in epochs)
    # 12 training videos in batches of 4: three batches an epoch, each with its loss.
    assert [(b["epoch"], b["batch"], b["batches"]) for b in batches] == [
        (epoch, batch, 3) for epoch in (1, 2) for batch in (1, 2, 3)
    ]
    assert all(b["loss"] >= 0 for b in batches)

    console = Console(file=io.StringIO(), force_terminal=True, width=100)
    with Progress(TextColumn("{task.description} {task.fields[loss]}"), console=console) as bar:
        live = _Live(bar, 2)
        for event in batches[:3]:
            live.batch(event)
        live.epoch(epochs[0])
    shown = console.file.getvalue()
    assert "epochs" in shown and f"loss {epochs[0]['train_loss']:.4f}" in shown
