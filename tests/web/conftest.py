"""Real catalogs for the web tests, built once per module by the real paths.

`catalog` (each dialect): `ddm ingest --format folder` of real clips (one named with
`<script>`, quotes and unicode), and a trained and evaluated run on the synthetic cached
features of `tests/tasks/synth`. `evaluated_clips` (SQLite): real clips end to end through
the CLI, ingested, split, extracted (MTCNN, small backbones), trained and reported, so every
video an evaluation lists is a real file with a real cache."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from ddm.config import Settings, load_settings
from tests.conftest import DIALECTS, MEDIA, CliResult, invoke_ddm, private_ddm_env

BASE_URL = "http://127.0.0.1:8765"
# A file name a browser would run if a page put it in unescaped.
HOSTILE = "<script>alert('x')<script> <img src=x onerror=alert(1)> \"q\" é ü 日本.mp4"
FAKES = MEDIA / "ff++/manipulated_sequences"
CLIPS = {
    "real/004.mp4": MEDIA / "ff++/original_sequences/youtube/c23/videos/004.mp4",
    f"fake/FaceSwap/{HOSTILE}": FAKES / "FaceSwap/c23/videos/634_660.mp4",
    "fake/NeuralTextures/004_982.mp4": FAKES / "NeuralTextures/c23/videos/004_982.mp4",
}
# Every FF++ clip of ../shared/media: `ddm split` gives train, val and test both labels.
REALS = MEDIA / "ff++/original_sequences/youtube/c23/videos"
EVERY_FFPP_CLIP = {
    **CLIPS,
    "real/519.mp4": REALS / "519.mp4",
    "real/634.mp4": REALS / "634.mp4",
    "fake/Deepfakes/519_515.mp4": FAKES / "Deepfakes/c23/videos/519_515.mp4",
    "fake/Face2Face/750_743.mp4": FAKES / "Face2Face/c23/videos/750_743.mp4",
}
# Small settings: a few frames per clip, random backbone weights, a few epochs.
EXTRACT = ("--frames", "4", "--backbones", "small", "--allow-random-weights")
TRAIN = ("--epochs", "3", "--batch-size", "4")
FRAMES = 2  # `trained`'s extractor: the production pipeline; two frames keep CPU work short


def copy_clips(root: Path, clips: dict[str, Path] = CLIPS) -> Path:
    """Copies of real clips in a plain-folder layout (../shared/media stays read-only)."""
    for relative, source in clips.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, root / relative)
    return root


@dataclass
class Catalog:
    """A filled catalog: its settings, session factory, and the ids a test looks for."""

    settings: Settings
    factory: sessionmaker[Session]
    env: dict[str, str | None]
    clips_root: Path
    run_id: int
    evaluation_id: int

    def ddm(self, *args: str) -> CliResult:
        return invoke_ddm(self.env, *args)


def build_catalog(url: str, folder: Path, *, train: bool = True) -> Catalog:
    from tasks.context import session_factory

    settings = load_settings(home=str(folder / "home"), database_url=url)
    factory = session_factory(settings.db_url)
    env = {**private_ddm_env(folder / "home"), "DDM_DATABASE_URL": url}
    root = copy_clips(folder / "clips")
    result = invoke_ddm(env, "-q", "ingest", str(root), "--format", "folder")
    assert result.exit_code == 0, result.stderr
    run_id = evaluation_id = 0
    if train:
        run_id, evaluation_id = _train_and_evaluate(settings, factory)
    return Catalog(settings, factory, env, root, run_id, evaluation_id)


def build_evaluated_clips(url: str, folder: Path) -> Catalog:
    """Every FF++ clip through the CLI as a user runs it: ingest, split, extract, train,
    then `ddm report` over all of them (its evaluation lists real files only)."""
    settings = load_settings(home=str(folder / "home"), database_url=url)
    env = {**private_ddm_env(folder / "home"), "DDM_DATABASE_URL": url}
    root = copy_clips(folder / "clips", EVERY_FFPP_CLIP)
    for command in (
        ("ingest", str(root), "--format", "folder"),
        ("split", "clips"),
        ("extract", "--dataset", "clips", *EXTRACT),
        ("train", "--datasets", "clips", *TRAIN),
    ):
        result = invoke_ddm(env, "-q", *command)
        assert result.exit_code == 0, f"ddm {' '.join(command)}: {result.stderr}"
    result = invoke_ddm(env, "report", "--eval", "clips", "--split", "all", "--json")
    assert result.exit_code == 0, result.stderr
    (entry,) = json.loads(result.stdout)["runs"]
    from tasks.context import session_factory

    factory = session_factory(settings.db_url)
    return Catalog(settings, factory, env, root, entry["run_id"], entry["evaluation_id"])


def build_trained(url: str, folder: Path) -> Catalog:
    """A catalog whose newest run scores new files: one clip extracted by the real extract
    job (so the catalog knows the extractor's settings), and a tiny detector trained on
    synthetic features of that extractor. Jobs run inline."""
    from tasks.extraction import extract_dataset
    from tasks.lifecycle import run_job
    from tasks.training import plan_training
    from tests.tasks.synth import QUICK, make_synth, with_tiny_detector

    built = build_catalog(url, folder, train=False)
    settings, factory = built.settings, built.factory
    extracted = extract_dataset(
        settings, factory, "clips", frames=FRAMES, backbones="small", limit=1, allow_random=True
    )
    fingerprint = extracted.plan.fingerprint
    make_synth(settings, factory, fingerprint=fingerprint)
    plan = plan_training(
        settings, factory, ["synth"], train_cfg=QUICK, batch_size=4, fingerprint=fingerprint
    )
    with_tiny_detector(factory, plan.run.id)
    assert run_job(plan.job_id, settings, factory, "w1") == "succeeded"
    built.run_id = plan.run.id
    return built


def sqlite_catalog_url(folder: Path) -> str:
    """A new SQLite catalog in `folder`, migrated to head."""
    from ddm.db import create_db_engine, upgrade

    url = f"sqlite:///{folder / 'catalog.sqlite3'}"
    engine = create_db_engine(url)
    upgrade(engine)
    engine.dispose()
    return url


def _train_and_evaluate(settings: Settings, factory: Any) -> tuple[int, int]:
    from tasks.evaluation import evaluate_runs
    from tasks.lifecycle import run_job
    from tasks.report import build_report
    from tasks.training import plan_training
    from tests.tasks.synth import QUICK, make_synth, with_tiny_detector

    synth = make_synth(settings, factory)
    plan = plan_training(settings, factory, [synth], train_cfg=QUICK, batch_size=4)
    with_tiny_detector(factory, plan.run.id)
    assert run_job(plan.job_id, settings, factory, "w1") == "succeeded"
    evaluation_plan, _ = evaluate_runs(settings, factory, synth)
    (entry,) = build_report(factory, evaluation_plan)["runs"]
    return plan.run.id, entry["evaluation_id"]


@pytest.fixture(scope="module", params=DIALECTS)
def catalog(request: pytest.FixtureRequest, tmp_path_factory) -> Catalog:
    folder = tmp_path_factory.mktemp("web")
    if request.param == "postgres":
        server = request.getfixturevalue("pg_server")
        url = server.create_database(template=request.getfixturevalue("pg_template"))
    else:
        url = sqlite_catalog_url(folder)
    return build_catalog(url, folder)


@pytest.fixture(scope="package")
def trained(tmp_path_factory) -> Catalog:
    """`build_trained` on SQLite, once for the web tests that score files (uploads, the
    saliency of a video page)."""
    folder = tmp_path_factory.mktemp("trained")
    return build_trained(sqlite_catalog_url(folder), folder)


@pytest.fixture(scope="module")
def evaluated_clips(tmp_path_factory) -> Catalog:
    folder = tmp_path_factory.mktemp("clips")
    return build_evaluated_clips(sqlite_catalog_url(folder), folder)


def client(  # noqa: ANN201  (a TestClient)
    factory: sessionmaker[Session],
    *,
    settings: Settings | None = None,
    uploads: Any = None,
    **access: Any,
):
    """A test client of the app as `ddm serve` builds it on 127.0.0.1."""
    from starlette.testclient import TestClient

    from web.app import create_app
    from web.security import LOOPBACK_HOSTS, Access

    app = create_app(
        factory,
        settings=settings,
        access=Access(**access),
        allowed_hosts=LOOPBACK_HOSTS,
        uploads=uploads,
    )
    return TestClient(app, base_url=BASE_URL, follow_redirects=False)
