"""Group files: a CSV of `file,group` naming which videos show one identity or come from
one source, so that a derived split keeps them together (ingest layer, no database).
"""

from __future__ import annotations

import csv
import io
import logging
from pathlib import Path

logger = logging.getLogger(__name__)

GROUPS_FILE = "groups.csv"
HEADER = ("file", "group")


class GroupFileError(ValueError):
    """A group file that cannot be read or parsed; the message names it and the line."""


def read_group_file(path: Path) -> dict[str, str]:
    """file -> group from a CSV whose header is `file,group`; files are relative to the
    dataset root, '/'-separated (a leading './' and backslashes are accepted).

    Raises:
        GroupFileError: unreadable, not UTF-8, no `file,group` header, or a line without
            exactly two non-empty fields.
    """
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except OSError as exc:
        raise GroupFileError(f"{path.name}: unreadable ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise GroupFileError(f"{path.name}: not UTF-8 text") from None
    rows = [row for row in csv.reader(io.StringIO(text)) if any(cell.strip() for cell in row)]
    if not rows or tuple(cell.strip().lower() for cell in rows[0]) != HEADER:
        raise GroupFileError(f"{path.name}: the first line must be the header 'file,group'")
    groups: dict[str, str] = {}
    for number, row in enumerate(rows[1:], start=2):
        cells = [cell.strip() for cell in row]
        if len(cells) != 2 or not all(cells):
            raise GroupFileError(f"{path.name} line {number}: expected 'file,group', got {row!r}")
        groups[_normalised(cells[0])] = cells[1]
    return groups


def _normalised(file: str) -> str:
    file = file.replace("\\", "/")
    return file[2:] if file.startswith("./") else file
