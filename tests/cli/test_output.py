"""`cli.output`: the streamed JSON list prints exactly what `write_json` prints."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from click.testing import CliRunner

from cli.output import write_json, write_json_list
from ddm.vocab import Label

DOCUMENTS: list[list[Any]] = [
    [],
    [{"id": 1}],
    [{"id": 1, "path": "a/b.mp4", "nested": {"x": [1, 2.5, None]}, "empty": {}}, {"id": 2}],
    [{"id": n, "text": f"line\nbreak {n}", "flag": n % 2 == 0} for n in range(7)],
    # Flat objects take the one-call path: every scalar json can meet, awkward keys too.
    [
        {
            "text": 'quote " backslash \\ tab \t nul \x00 comma, colon: ',
            "unicode": "é 中 \U0001f600 \u2028",
            "label": Label.FAKE,
            "floats": 0.1,
            "tiny": -0.0,
            "huge": 1e300,
            "nan": float("nan"),
            "inf": float("-inf"),
            "big": 2**70,
            "none": None,
            "yes": True,
            "no": False,
            "": "empty key",
            'key "quoted"\n': 1,
            7: "int key",
            True: "bool key",
            None: "none key",
            2.5: "float key",
        },
        {"one": "x"},
        {"": 1, 7: 2, True: 3, None: 4, 2.5: 5, 'key "quoted"\n': 6, "é": 0.1},
        {"mixed": [1]},
        {"when": datetime(2024, 1, 2, tzinfo=UTC)},
    ],
    # Flat objects with the same keys: encoded a column at a time, NUL-parted, into a
    # printf-style template of the keys.
    [
        {
            "id": n,
            "nul": "a\x00b\x00",
            "percent": "%s %d %% %(x)s",
            "100% key": "%",
            "text": "},\n    {",
            "unicode": "é \U0001f600",
            "score": 0.5 * n if n else float("nan"),
            "big": 10**30 + n,
            "none": None,
            "flag": n % 2 == 0,
        }
        for n in range(5)
    ],
    [{"only": "}"}, {"only": "{"}],
    [{"a": 1, "b": 2}, {"b": 2, "a": 1}, {"a": 1}],  # the same keys in another order
    [{"a": 1}, {"a": [1, {"b": None}]}, {"a": 2}],  # a later object is not flat
    [{"a": 1}, [1], "x", None, {"a": 1}],  # not every item is an object
    [{1: "a"}, {1: "b"}],  # keys that are not strings
]


def _printed(write: Any, data: Any) -> str:
    with CliRunner().isolation() as streams:
        write(data)
        return streams[0].getvalue().decode()


# Documents shaped like a report: nested objects, lists of flat objects, odd corners.
NESTED: list[Any] = [
    {
        "runs": [{"auc": 0.5, "per_class": {"fake": {"f1": 0.1}}, "predictions": DOCUMENTS[4]}],
        "deeper": [{"predictions": DOCUMENTS[5], "same keys": [{"a": 1}, {"a": None}]}],
        "bias": {"sentences": ["a\nb", "é"], "empty": [], "none": None, "tuple": (1, "x")},
        "matrix": {"datasets": ["dfdc"], "rows": [{"cells": {}}, {"cells": {"ff": {"n": 1}}}]},
        "odd keys": {1: [2], "s": {3.5: None}},
        "when": datetime(2024, 1, 2, tzinfo=UTC),
        "label": Label.REAL,
    },
    [[], [[1, [2, {}]]], {"deep": {"deeper": {"deepest": [None, True]}}}],
    "text",
    17,
    None,
    {},
    [],
]


@pytest.mark.parametrize("document", [*DOCUMENTS, *NESTED])
def test_a_document_is_what_json_dumps_writes(document: Any) -> None:
    expected = json.dumps(document, indent=2, sort_keys=False, default=str) + "\n"
    assert _printed(write_json, document) == expected


@pytest.mark.parametrize("document", DOCUMENTS)
@pytest.mark.parametrize("batch", [1, 3, 1000])
def test_streamed_list_is_byte_identical(document: list[Any], batch: int) -> None:
    streamed = _printed(lambda rows: write_json_list(iter(rows), batch=batch), document)
    assert streamed == _printed(write_json, document)
