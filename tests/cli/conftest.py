"""Fixtures and checks shared by the CLI tests of the jobs and cache commands."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from ddm.db import make_session_factory
from ddm.synthetic.clips import ARTEFACTS, ClipCfg, render_clip
from tests.conftest import invoke_ddm, private_ddm_env


@pytest.fixture
def factory(engine: Engine) -> sessionmaker[Session]:
    return make_session_factory(engine)


@pytest.fixture
def env(db_url: str, tmp_path: Path) -> dict[str, str]:
    return {"DDM_DATABASE_URL": db_url, "DDM_CACHE_DIR": str(tmp_path / "cache")}


def ok_json(result):  # noqa: ANN201
    """The JSON document a command that succeeded printed."""
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def one_error_line(result, code: int, text: str) -> None:
    """The command exited `code` with exactly one line on stderr, containing `text`."""
    assert result.exit_code == code, result.stdout + result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert text in result.stderr


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str | None]:
    """A catalog with one run: rendered face clips, extracted with the small backbones at
    T = 8 and trained one epoch (the detector is random; the windows' arithmetic is not)."""
    root = tmp_path_factory.mktemp("segments") / "mine"
    for n in range(4):
        for label, artefact in (("real", None), ("fake", ARTEFACTS["Seam"])):
            (root / label).mkdir(parents=True, exist_ok=True)
            render_clip(root / label / f"{n:02d}.mp4", n, ClipCfg(40, 256, 0.3), artefact)
    env = private_ddm_env(root.parent / "home")
    small = ("--frames", "8", "--backbones", "small", "--allow-random-weights")
    for args in (
        ("ingest", str(root)),
        ("split", "mine"),
        ("extract", "--dataset", "mine", *small),
    ):
        result = invoke_ddm(env, *args)
        assert result.exit_code == 0, result.stderr
    run = ok_json(invoke_ddm(env, "train", "--datasets", "mine", "--epochs", "1", "--json"))
    assert run["status"] == "succeeded"
    return env


def read_bgr(path: Path, count: int | None = None) -> tuple[list[np.ndarray], float]:
    """The first `count` (or all) BGR frames of a video, and its frame rate."""
    capture = cv2.VideoCapture(str(path))
    fps = capture.get(cv2.CAP_PROP_FPS)
    frames = []
    while count is None or len(frames) < count:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    return frames, fps


def write_bgr(path: Path, frames: list[np.ndarray], fps: float, fourcc: str) -> Path:
    """Write BGR frames as a video (FFV1: without loss)."""
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (width, height))
    assert writer.isOpened()
    for frame in frames:
        writer.write(frame)
    writer.release()
    return path
