"""ddm networks (model layer): backbones, the detector, the face pipeline, and the
training and evaluation loops.

Importing the package is cheap: `model.metrics`, `model.bias` and `model.figures`, which
`ddm report` and `ddm stats` use, need numpy but not torch, and importing torch alone takes
seconds. The registry and the family modules load on first use of `create_model`,
`get_cfg`, `list_models` or a family's name; the registry imports every family before it
looks one up (`registry.load_families`), so `create_model` still knows them all.
"""

from importlib import import_module
from typing import Any

FAMILIES = ("detector", "psp", "slow_r50")
REGISTRY_NAMES = ("create_model", "get_cfg", "list_models", "register_model")

__all__ = [*REGISTRY_NAMES, *FAMILIES]


def __getattr__(name: str) -> Any:
    if name in FAMILIES:
        return import_module(f"model.{name}")
    if name in REGISTRY_NAMES:
        registry = import_module("model.registry")
        registry.load_families()
        return getattr(registry, name)
    raise AttributeError(f"module 'model' has no attribute {name!r}")
