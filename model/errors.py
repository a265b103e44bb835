"""The network layer's own errors (model layer).

They derive from `ddm.errors` so the CLI and the tasks layer map them to exit codes and
retry policies without knowing anything about torch.
"""

from __future__ import annotations

import logging

from ddm.errors import DdmError, InvalidInput, SetupError

logger = logging.getLogger(__name__)


class UnknownModel(InvalidInput):
    """`create_model` was given a name no builder is registered under."""


class IncompatibleWeights(DdmError):
    """A weights or checkpoint file cannot be loaded into the module it was meant for.

    Raised for files that are empty, truncated, corrupt or not a torch or safetensors file,
    for files that are not plain tensor containers (pickled objects are refused), for
    missing or unexpected keys under strict loading and for shape mismatches.
    """


class WeightsNotFound(SetupError):
    """Pretrained weights were required but no file was given or found."""


class UnreadableVideo(InvalidInput):
    """A video file cannot be opened or decodes to zero frames."""


class IncompatibleFeatures(InvalidInput):
    """A cached feature file is missing or unreadable, lacks the keys the detector needs,
    or disagrees in shape with the other files of a batch; re-extracting fixes it."""
