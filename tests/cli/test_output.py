"""`cli.output`: the streamed JSON list prints exactly what `write_json` prints."""

from __future__ import annotations

from typing import Any

import pytest
from click.testing import CliRunner

from cli.output import write_json, write_json_list

DOCUMENTS: list[list[Any]] = [
    [],
    [{"id": 1}],
    [{"id": 1, "path": "a/b.mp4", "nested": {"x": [1, 2.5, None]}, "empty": {}}, {"id": 2}],
    [{"id": n, "text": f"line\nbreak {n}", "flag": n % 2 == 0} for n in range(7)],
]


def _printed(write: Any, data: Any) -> str:
    with CliRunner().isolation() as streams:
        write(data)
        return streams[0].getvalue().decode()


@pytest.mark.parametrize("document", DOCUMENTS)
@pytest.mark.parametrize("batch", [1, 3, 1000])
def test_streamed_list_is_byte_identical(document: list[Any], batch: int) -> None:
    streamed = _printed(lambda rows: write_json_list(iter(rows), batch=batch), document)
    assert streamed == _printed(write_json, document)
