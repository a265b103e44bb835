"""Reading weights files safely and loading them strictly into modules (model layer).

Only tensor containers are accepted: `.safetensors`, or `torch.load(weights_only=True)`,
which refuses arbitrary pickled objects (timm's default for the same reason). Every load
reports the missing, unexpected and mis-shaped keys by name.
"""

from __future__ import annotations

import logging
import os
import pickle
import re
import struct
import zipfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ddm.fs import sha256_of
from model.errors import IncompatibleWeights, WeightsNotFound

logger = logging.getLogger(__name__)

# Keys under which common checkpoint layouts nest their state dict, tried in order.
_STATE_DICT_KEYS = ("state_dict", "model_state", "model")
_MAX_NAMED_KEYS = 8
_MMAP_MIN_BYTES = 64 << 20
# What torch.save's legacy (pre-zip) format starts with: a pickled protocol-2 magic number.
# What torch.load raises on a file of its format cut short or damaged: the zip reader's
# RuntimeError, or whatever the unpickler trips over when the stream ends mid-opcode.
_CORRUPT_FILE_ERRORS = (RuntimeError, EOFError, IndexError, KeyError, ValueError, struct.error)
_LEGACY_TORCH_MAGIC = b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19"


@dataclass(frozen=True)
class LoadReport:
    """What happened when a weights file was loaded into a module.

    Attributes:
        path: the file that was read.
        sha256: hex digest of the file's bytes.
        missing_keys: module keys the file did not provide.
        unexpected_keys: file keys the module does not have.
        mismatched_shapes: (key, module shape, file shape) for keys present in both.
    """

    path: str
    sha256: str
    missing_keys: tuple[str, ...] = ()
    unexpected_keys: tuple[str, ...] = ()
    mismatched_shapes: tuple[tuple[str, tuple[int, ...], tuple[int, ...]], ...] = ()

    @property
    def is_exact(self) -> bool:
        """True when every key matched in name and shape."""
        return not (self.missing_keys or self.unexpected_keys or self.mismatched_shapes)


def sha256_file(path: str | os.PathLike[str], chunk_size: int = 1 << 20) -> str:
    """Return the hex sha256 of a weights file (read in chunks: multi-GB files stay cheap)."""
    return sha256_of(path, chunk_size)


def read_weights_file(path: str | os.PathLike[str]) -> Mapping[str, Any]:
    """Read a weights or checkpoint file without executing pickled code.

    Args:
        path: a `.safetensors` file or a file written by `torch.save`.

    Returns:
        The stored object; for safetensors, a flat dict of tensors.

    Raises:
        WeightsNotFound: the file does not exist.
        IncompatibleWeights: the file is empty, is not a torch or safetensors file, is
            truncated or corrupt, holds pickled objects other than tensors and plain
            containers, or is not a mapping.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsNotFound(f"weights file {str(path)!r} does not exist")
    if path.suffix == ".safetensors":
        return _read_safetensors(path)
    _require_torch_format(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True, mmap=_use_mmap(path))
    except pickle.UnpicklingError as exc:
        raise IncompatibleWeights(_refusal(path, exc)) from exc
    except _CORRUPT_FILE_ERRORS as exc:
        raise IncompatibleWeights(
            f"{str(path)!r} is a truncated or corrupt torch checkpoint ({_first_line(exc)}); "
            "copy the file again"
        ) from exc
    if not isinstance(obj, Mapping):
        raise IncompatibleWeights(
            f"{str(path)!r} holds a {type(obj).__name__}, expected a dict of tensors"
        )
    return obj


def _require_torch_format(path: Path) -> None:
    # Checked before torch.load, which calls anything that is not its format "pickled
    # objects" and advises an unsafe load; a wrong or cut-off file deserves its own name.
    if path.stat().st_size == 0:
        raise IncompatibleWeights(f"{str(path)!r} is empty (0 bytes), not a weights file")
    with path.open("rb") as file:
        head = file.read(len(_LEGACY_TORCH_MAGIC))
    if not (zipfile.is_zipfile(path) or head == _LEGACY_TORCH_MAGIC):
        raise IncompatibleWeights(
            f"{str(path)!r} is not a torch checkpoint: neither a complete torch zip archive "
            "nor a legacy torch file (is it truncated, or another kind of file?)"
        )


def _refusal(path: Path, exc: pickle.UnpicklingError) -> str:
    # torch's message spans lines and suggests weights_only=False or allow-listing the
    # global; neither is safe for a file from elsewhere, so only the culprit is kept.
    culprit = re.search(r"GLOBAL (\S+)", str(exc))
    if culprit is None:
        return f"{str(path)!r} is a corrupt torch checkpoint (its pickle cannot be read)"
    return (
        f"{str(path)!r} holds pickled objects other than tensors ({culprit.group(1)}), which "
        "ddm refuses to load; re-save it as a plain state dict or as .safetensors"
    )


def _use_mmap(path: Path) -> bool:
    # mmap spares a second in-memory copy of GB-sized weights, but only the zip format
    # (torch >= 1.6) supports it; small files such as feature caches are read outright
    # so that thousands of preloaded ones do not each hold a mapping.
    return path.stat().st_size >= _MMAP_MIN_BYTES and zipfile.is_zipfile(path)


def _read_safetensors(path: Path) -> dict[str, Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except SafetensorError as exc:
        raise IncompatibleWeights(f"{str(path)!r} is not a valid safetensors file: {exc}") from exc


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def default_state_dict(checkpoint: Mapping[str, Any]) -> dict[str, Tensor]:
    """Pick the state dict out of a checkpoint: the mapping itself when it holds only
    tensors, else the first of `state_dict`, `model_state`, `model` that is a mapping."""
    if all(isinstance(value, Tensor) for value in checkpoint.values()):
        return dict(checkpoint)
    for key in _STATE_DICT_KEYS:
        if isinstance(checkpoint.get(key), Mapping):
            return dict(checkpoint[key])
    raise IncompatibleWeights(
        f"checkpoint has no state dict under {', '.join(_STATE_DICT_KEYS)}; "
        f"top-level keys: {_name_keys(checkpoint.keys())}"
    )


def compare_state_dicts(
    expected: Mapping[str, Tensor], given: Mapping[str, Tensor]
) -> tuple[list[str], list[str], list[tuple[str, tuple[int, ...], tuple[int, ...]]]]:
    """Return (missing, unexpected, mismatched shapes) of `given` against `expected`."""
    missing = [key for key in expected if key not in given]
    unexpected = [key for key in given if key not in expected]
    mismatched = [
        (key, tuple(expected[key].shape), tuple(given[key].shape))
        for key in expected
        if key in given and tuple(expected[key].shape) != tuple(given[key].shape)
    ]
    return missing, unexpected, mismatched


def load_pretrained(
    model: nn.Module,
    path: str | os.PathLike[str],
    *,
    strict: bool = True,
    filter_fn: Callable[[Mapping[str, Any], nn.Module], dict[str, Tensor]] | None = None,
) -> LoadReport:
    """Load a local weights file into `model`.

    Args:
        model: the freshly built module.
        path: `.safetensors` or a `torch.save` file (read with `weights_only=True`).
        strict: fail unless keys and shapes match exactly; when False, load the keys
            that match and log the rest.
        filter_fn: maps the loaded checkpoint object to this module's state dict
            (strip prefixes, drop heads, pick nested keys); defaults to
            `default_state_dict`.

    Returns:
        A report with the file's sha256 and any key differences.

    Raises:
        WeightsNotFound: `path` does not exist.
        IncompatibleWeights: the file is refused, or `strict` and the keys differ.
    """
    checkpoint = read_weights_file(path)
    state_dict = filter_fn(checkpoint, model) if filter_fn else default_state_dict(checkpoint)
    return load_state_dict_checked(
        model, state_dict, str(path), strict=strict, sha256=sha256_file(path)
    )


def load_state_dict_checked(
    model: nn.Module,
    state_dict: Mapping[str, Any],
    source: str,
    *,
    strict: bool = True,
    sha256: str = "",
) -> LoadReport:
    """Compare `state_dict` with the module's own, then load it.

    Args:
        model: the module to fill.
        state_dict: name -> tensor.
        source: the file the state dict came from, for the report and messages.
        strict: raise unless names and shapes match exactly; otherwise load what
            matches and log the rest.
        sha256: digest of the source file, recorded in the report.

    Raises:
        IncompatibleWeights: a value is not a tensor, or `strict` and the keys differ;
            the message names the missing, unexpected and mis-shaped keys.
    """
    _require_tensors(state_dict, source)
    missing, unexpected, mismatched = compare_state_dicts(model.state_dict(), state_dict)
    report = LoadReport(
        path=source,
        sha256=sha256,
        missing_keys=tuple(missing),
        unexpected_keys=tuple(unexpected),
        mismatched_shapes=tuple(mismatched),
    )
    if strict and not report.is_exact:
        raise IncompatibleWeights(_describe(report, type(model).__name__))
    if not report.is_exact:
        logger.warning("non-strict load: %s", _describe(report, type(model).__name__))
    bad = {key for key, _, _ in mismatched}
    model.load_state_dict({k: v for k, v in state_dict.items() if k not in bad}, strict=strict)
    logger.info("loaded weights path=%s sha256=%s", source, sha256[:12])
    return report


def _require_tensors(state_dict: Mapping[str, Any], source: str) -> None:
    odd = [key for key, value in state_dict.items() if not isinstance(value, Tensor)]
    if odd:
        raise IncompatibleWeights(
            f"{source!r}: state dict entries are not tensors: {_name_keys(odd)}"
        )


def _describe(report: LoadReport, module_name: str) -> str:
    parts = [f"weights {report.path!r} do not match {module_name}"]
    if report.missing_keys:
        parts.append(f"missing keys: {_name_keys(report.missing_keys)}")
    if report.unexpected_keys:
        parts.append(f"unexpected keys: {_name_keys(report.unexpected_keys)}")
    if report.mismatched_shapes:
        shapes = [f"{key} (module {m}, file {f})" for key, m, f in report.mismatched_shapes]
        parts.append(f"shape mismatches: {_name_keys(shapes)}")
    parts.append("check that the file is the official checkpoint for this model")
    return "; ".join(parts)


def _name_keys(keys: Iterable[str]) -> str:
    keys = list(keys)
    named = ", ".join(keys[:_MAX_NAMED_KEYS])
    rest = len(keys) - _MAX_NAMED_KEYS
    return f"{named} (and {rest} more)" if rest > 0 else named


def find_weights(
    file_name: str | None,
    *,
    path: str | os.PathLike[str] | None = None,
    weights_dir: str | os.PathLike[str] | None = None,
    model: str = "",
) -> Path:
    """Return an explicit weights path, or `weights_dir / file_name` when it exists.

    Raises:
        WeightsNotFound: with the file name to place in the weights directory.
    """
    if path is not None:
        candidate = Path(path)
        if not candidate.is_file():
            raise WeightsNotFound(f"weights file {str(candidate)!r} for {model} does not exist")
        return candidate
    if file_name and weights_dir is not None:
        candidate = Path(weights_dir) / file_name
        if candidate.is_file():
            return candidate
        raise WeightsNotFound(
            f"{model}: {file_name!r} is not in the weights directory {str(weights_dir)!r}; "
            f"put the official file there (DDM_WEIGHTS_DIR) or pass its path"
        )
    raise WeightsNotFound(
        f"{model}: no weights path given and no weights directory set; set DDM_WEIGHTS_DIR "
        f"to a folder holding {file_name!r}, or allow random weights explicitly"
    )
