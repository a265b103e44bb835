"""Name -> builder registry for every network ddm can build (model layer).

Modelled on timm's `_registry`/`_factory`: each family module registers one-line builders
with `@register_model`, and callers only ever say `create_model("slow_r50")`. Weights come
from local files only; nothing here downloads (`ddm weights fetch` does, from `url`).
"""

from __future__ import annotations

import difflib
import fnmatch
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from torch import Tensor, nn

from model.errors import UnknownModel
from model.weights import LoadReport, find_weights, load_pretrained

if TYPE_CHECKING:
    from ddm.download import PublishedFile

logger = logging.getLogger(__name__)

FilterFn = Callable[[Mapping[str, Any], nn.Module], dict[str, Tensor]]
BuilderT = TypeVar("BuilderT", bound=Callable[..., nn.Module])


@dataclass(frozen=True)
class PretrainedCfg:
    """Where a model's published weights live and what input they expect.

    Attributes:
        weights_file: the official file name, looked up in the weights directory.
        filter_fn: turns the loaded checkpoint object into this module's state dict.
        mean: per-channel normalisation mean for inputs scaled to [0, 1].
        std: per-channel normalisation std.
        input_size: the input shape of one sample, without the batch dimension.
        source: where a person can obtain the file (documentation only, never fetched).
        url: the published direct link `ddm weights fetch` downloads.
        download_page: where a person downloads it by hand, when that differs from `url`.
        size: the published length in bytes; None where the publisher states none.
        sha256: the published hex digest; None where the publisher states none (the
            first download records what it saw, and later ones are checked against it).
    """

    weights_file: str | None = None
    filter_fn: FilterFn | None = None
    mean: tuple[float, ...] = (0.5, 0.5, 0.5)
    std: tuple[float, ...] = (0.5, 0.5, 0.5)
    input_size: tuple[int, ...] = ()
    source: str = ""
    url: str = ""
    download_page: str = ""
    size: int | None = None
    sha256: str | None = None


@dataclass(frozen=True)
class _Entry:
    name: str
    builder: Callable[..., nn.Module]
    pretrained_cfg: PretrainedCfg = field(default_factory=PretrainedCfg)


_REGISTRY: dict[str, _Entry] = {}
# The modules whose `@register_model` builders fill `_REGISTRY`.
FAMILIES = ("model.detector", "model.psp", "model.slow_r50")


def register_model(
    name: str | None = None, *, pretrained_cfg: PretrainedCfg | None = None
) -> Callable[[BuilderT], BuilderT]:
    """Register a builder function under `name` (default: the function's own name).

    Args:
        name: registry name; model builders are named `<family>_<variant>`.
        pretrained_cfg: where the published weights live, if any.

    Returns:
        A decorator that records the builder and returns it unchanged.
    """

    def decorate(builder: BuilderT) -> BuilderT:
        key = name or builder.__name__
        if key in _REGISTRY and _REGISTRY[key].builder is not builder:
            raise ValueError(f"model name {key!r} is already registered")
        _REGISTRY[key] = _Entry(key, builder, pretrained_cfg or PretrainedCfg())
        return builder

    return decorate


def load_families() -> None:
    """Import every family module, which registers its models (once; cheap afterwards).

    The `model` package no longer imports them when it is imported (that would import
    torch for the reports, which need none), so every lookup here calls this first.
    """
    for family in FAMILIES:
        import_module(family)


def list_models(pattern: str = "*") -> list[str]:
    """Return the sorted names of registered models matching a shell-style pattern."""
    load_families()
    return sorted(name for name in _REGISTRY if fnmatch.fnmatchcase(name, pattern))


def _entry(name: str) -> _Entry:
    load_families()
    try:
        return _REGISTRY[name]
    except KeyError:
        close = difflib.get_close_matches(name, list(_REGISTRY), n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise UnknownModel(
            f"unknown model {name!r}.{hint} Registered models: {', '.join(list_models())}"
        ) from None


def get_cfg(name: str) -> PretrainedCfg:
    """Return the pretrained configuration registered for `name`.

    Raises:
        UnknownModel: no model is registered under `name`.
    """
    return _entry(name).pretrained_cfg


def create_model(
    name: str,
    *,
    weights: str | os.PathLike[str] | None = None,
    strict: bool = True,
    **kwargs: Any,
) -> nn.Module:
    """Build a registered model, optionally loading weights from a local file.

    Args:
        name: a name from `list_models()`.
        weights: a weights file in the official layout (or a plain state dict); None
            leaves the random initialisation in place.
        strict: require the file's keys and shapes to match the module exactly.
        **kwargs: passed to the builder (e.g. `levels=[9]` for `psp_encoder`).

    Returns:
        The module, in eval mode when weights were loaded.

    Raises:
        UnknownModel: `name` is not registered.
        IncompatibleWeights: the file cannot be loaded into the module.
    """
    entry = _entry(name)
    model = entry.builder(**kwargs)
    if weights is not None:
        load_pretrained(model, weights, strict=strict, filter_fn=entry.pretrained_cfg.filter_fn)
        model.eval()
    return model


def load_model_weights(
    model: nn.Module, name: str, path: str | os.PathLike[str], *, strict: bool = True
) -> LoadReport:
    """Load an official-format weights file into a model built by `create_model(name)`.

    Unlike `create_model(name, weights=...)` this returns the load report, whose sha256
    goes into extractor fingerprints.
    """
    return load_pretrained(model, path, strict=strict, filter_fn=get_cfg(name).filter_fn)


def resolve_weights(
    name: str,
    *,
    path: str | os.PathLike[str] | None = None,
    weights_dir: str | os.PathLike[str] | None = None,
) -> Path:
    """Find the weights file for model `name`: an explicit path wins, else the official
    file name inside `weights_dir` (the caller reads `DDM_WEIGHTS_DIR` from settings).

    Raises:
        WeightsNotFound: neither source yields an existing file.
        UnknownModel: `name` is not registered.
    """
    return find_weights(get_cfg(name).weights_file, path=path, weights_dir=weights_dir, model=name)


def published_weights(name: str) -> PublishedFile:
    """The published weights file of model `name`: its name, link, size and sha256.

    Raises:
        UnknownModel: `name` is not registered, or no weights are published for it.
    """
    # Imported here: ddm.download needs the settings' libraries, which a machine that only
    # runs the networks (the device check's) need not have.
    from ddm.download import PublishedFile

    cfg = get_cfg(name)
    if not (cfg.weights_file and cfg.url):
        raise UnknownModel(f"no published weights for {name!r} ({cfg.source or 'none named'})")
    return PublishedFile(
        cfg.weights_file, cfg.url, page=cfg.download_page, size=cfg.size, sha256=cfg.sha256
    )
