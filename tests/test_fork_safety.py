"""The processes that fork workers never touch CUDA: a CUDA context made in a Celery
parent breaks every prefork child it forks ("Cannot re-initialize CUDA in forked
subprocess"). Importing the CLI, the Celery app and every job kind's module, and the
worker's start-up code, must make no CUDA call at all."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Every entry into CUDA that initialises it or asks the driver: each records its name.
SPY = textwrap.dedent(
    """
    import torch
    calls = []

    def spy(name):
        def call(*args, **kwargs):
            calls.append(name)
            raise RuntimeError(f"CUDA touched in the parent: {name}")
        return call

    for name in ("is_available", "device_count", "init", "_lazy_init", "current_device",
                 "set_device", "get_device_name", "get_device_properties", "synchronize",
                 "is_initialized"):
        setattr(torch.cuda, name, spy(name))
    torch._C._cuda_getDeviceCount = spy("_cuda_getDeviceCount")
    """
)


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )


def test_the_cli_imports_without_torch() -> None:
    result = _run("import sys, cli.main; print('torch' in sys.modules)")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_the_worker_parent_makes_no_cuda_call() -> None:
    code = SPY + textwrap.dedent(
        """
        import tasks.app, tasks.worker, tasks.kinds, tasks.extraction, tasks.training
        import tasks.evaluation, tasks.predict, tasks.training_loop, model.features
        app = tasks.app.app
        app.loader.import_default_modules()
        print("calls:", calls)
        """
    )
    result = _run(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "calls: []"


def test_the_spy_sees_a_cuda_call() -> None:
    # The check above can fail: the same spy catches the call `auto` devices make.
    result = _run(SPY + "from tasks.devices import resolve_device\nresolve_device('auto')")
    assert result.returncode != 0 and "CUDA touched in the parent: is_available" in result.stderr
