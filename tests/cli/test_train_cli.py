"""`ddm train`'s options: its training defaults are the training configuration's own."""

from __future__ import annotations

import dataclasses
import re

import pytest

from model.train import TrainCfg

DEFAULTS = {field.name: field.default for field in dataclasses.fields(TrainCfg)}


@pytest.mark.parametrize(
    ("option", "field"),
    [
        ("--epochs", "epochs"),
        ("--lr", "lr"),
        ("--mixup-alpha", "mixup_alpha"),
        ("--mixup-prob", "mixup_prob"),
        ("--patience", "patience"),
        ("--seed", "seed"),
    ],
)
def test_train_help_shows_the_training_configuration_s_defaults(run_ddm, option, field) -> None:
    result = run_ddm("train", "--help")
    assert result.exit_code == 0, result.stderr
    help_text = " ".join(result.stdout.split())
    shown = re.search(re.escape(option) + r" [^\[]*\[default: ([^;\]]+)", help_text)
    assert shown is not None, help_text
    assert float(shown.group(1)) == DEFAULTS[field]


def test_one_default_number_of_epochs() -> None:
    assert DEFAULTS["epochs"] == 60  # what README.md's training section documents
