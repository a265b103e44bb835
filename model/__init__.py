"""ddm networks (model layer): backbones, the detector, the face pipeline, and the
training and evaluation loops.

Importing the package imports every family module so that `create_model` knows them all.
"""

from model import detector, psp, slow_r50
from model.registry import create_model, get_cfg, list_models, register_model

__all__ = [
    "create_model",
    "detector",
    "get_cfg",
    "list_models",
    "psp",
    "register_model",
    "slow_r50",
]
