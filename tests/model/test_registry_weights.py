"""Registry lookups and safe, strict weight loading (timm's test_checkpoint_loading idea)."""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from ddm.errors import InvalidInput, SetupError
from model import create_model, get_cfg, list_models
from model.errors import IncompatibleWeights, UnknownModel, WeightsNotFound
from model.registry import resolve_weights
from model.weights import (
    default_state_dict,
    find_weights,
    load_pretrained,
    read_weights_file,
    sha256_file,
)


class ExecutesOnLoad:
    """Unpickling this calls builtins.open(marker, "w"): arbitrary code on load."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (str(self.marker), "w"))


def tiny() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3))


def test_all_families_are_registered() -> None:
    families = {"psp_encoder", "slow_r50", "style_flow_detector"}
    assert families | {"psp_encoder_small", "slow_r50_small"} <= set(list_models())
    assert list_models("psp*") == ["psp_encoder", "psp_encoder_small"]


def test_unknown_model_names_the_closest_match() -> None:
    with pytest.raises(UnknownModel, match="Did you mean psp_encoder") as info:
        create_model("psp_encodr")
    assert isinstance(info.value, InvalidInput)


def test_official_file_names_and_normalisation() -> None:
    psp, slow = get_cfg("psp_encoder"), get_cfg("slow_r50")
    assert psp.weights_file == "psp_ffhq_encode.pt"
    assert (psp.mean, psp.std, psp.input_size) == ((0.5,) * 3, (0.5,) * 3, (3, 256, 256))
    assert slow.weights_file == "SLOW_8x8_R50.pyth"
    assert (slow.mean, slow.std) == ((0.45,) * 3, (0.225,) * 3)
    assert slow.input_size == (3, 16, 112, 112)


def test_plain_state_dict_round_trip(tmp_path: Path) -> None:
    source = tiny()
    source[1].running_mean.uniform_()
    path = tmp_path / "w.pt"
    torch.save({"state_dict": source.state_dict()}, path)
    target = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3))
    report = load_pretrained(target, path)
    assert report.is_exact
    assert report.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    for key, value in source.state_dict().items():
        assert torch.equal(target.state_dict()[key], value), key


def test_safetensors_round_trip(tmp_path: Path) -> None:
    source = tiny()
    path = tmp_path / "w.safetensors"
    save_file(source.state_dict(), str(path))
    target = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3))
    assert load_pretrained(target, path).is_exact
    assert torch.equal(target[0].weight, source[0].weight)


def test_weights_only_refuses_a_pickled_object(tmp_path: Path) -> None:
    marker = tmp_path / "code-ran"
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": tiny().state_dict(), "payload": ExecutesOnLoad(marker)}, path)
    with pytest.raises(IncompatibleWeights) as info:
        load_pretrained(tiny(), path)
    assert not marker.exists()
    message = str(info.value)
    assert "pickled objects other than tensors (io.open)" in message
    assert "weights_only=False" not in message and "safe_globals" not in message
    assert len(message.splitlines()) == 1
    # The payload is real: an unsafe load would have run it.
    torch.load(path, weights_only=False)
    assert marker.exists()


def test_missing_and_unexpected_keys_are_named(tmp_path: Path) -> None:
    state = tiny().state_dict()
    del state["0.bias"]
    state["extra.weight"] = torch.zeros(2)
    path = tmp_path / "w.pt"
    torch.save(state, path)
    with pytest.raises(IncompatibleWeights) as info:
        load_pretrained(tiny(), path)
    message = str(info.value)
    assert "missing keys: 0.bias" in message
    assert "unexpected keys: extra.weight" in message


def test_shape_mismatch_is_named(tmp_path: Path) -> None:
    state = tiny().state_dict()
    state["0.weight"] = torch.zeros(2, 4)
    path = tmp_path / "w.pt"
    torch.save(state, path)
    with pytest.raises(IncompatibleWeights, match=r"0\.weight \(module \(3, 4\), file \(2, 4\)\)"):
        load_pretrained(tiny(), path)


def test_non_strict_load_reports_and_loads_the_rest(tmp_path: Path) -> None:
    source = tiny()
    state = source.state_dict()
    del state["0.bias"]
    path = tmp_path / "w.pt"
    torch.save(state, path)
    target = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3))
    report = load_pretrained(target, path, strict=False)
    assert report.missing_keys == ("0.bias",)
    assert torch.equal(target[0].weight, source[0].weight)


def _truncated(path: Path, *, zip_format: bool) -> bytes:
    torch.save(tiny().state_dict(), path, _use_new_zipfile_serialization=zip_format)
    data = path.read_bytes()
    return data[: len(data) // 2]


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("empty", "is empty (0 bytes), not a weights file"),
        ("random", "is not a torch checkpoint"),
        ("text", "is not a torch checkpoint"),
        ("truncated zip", "is not a torch checkpoint"),
        ("truncated legacy", "is a truncated or corrupt torch checkpoint"),
    ],
)
def test_corrupt_files_say_what_they_are(tmp_path: Path, kind: str, expected: str) -> None:
    content = {
        "empty": lambda: b"",
        "random": lambda: bytes(random.Random(0).randbytes(5000)),
        "text": lambda: b"not a torch file at all",
        "truncated zip": lambda: _truncated(tmp_path / "full.pt", zip_format=True),
        "truncated legacy": lambda: _truncated(tmp_path / "full.pt", zip_format=False),
    }[kind]()
    path = tmp_path / "w.pt"
    path.write_bytes(content)
    with pytest.raises(IncompatibleWeights) as info:
        read_weights_file(path)
    message = str(info.value)
    assert expected in message
    assert "pickled" not in message and "weights_only" not in message
    assert len(message.splitlines()) == 1


def test_corrupt_safetensors_is_incompatible(tmp_path: Path) -> None:
    path = tmp_path / "w.safetensors"
    path.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{bad json}")
    with pytest.raises(IncompatibleWeights):
        read_weights_file(path)


def test_a_bare_tensor_file_is_not_weights(tmp_path: Path) -> None:
    path = tmp_path / "w.pt"
    torch.save(torch.zeros(3), path)
    with pytest.raises(IncompatibleWeights, match="expected a dict"):
        read_weights_file(path)


def test_missing_file_is_weights_not_found(tmp_path: Path) -> None:
    with pytest.raises(WeightsNotFound) as info:
        read_weights_file(tmp_path / "absent.pt")
    assert isinstance(info.value, SetupError)


@pytest.mark.parametrize("key", ["state_dict", "model_state", "model"])
def test_default_state_dict_finds_nested_layouts(key: str) -> None:
    state = tiny().state_dict()
    assert default_state_dict({key: state, "epoch": 3}).keys() == state.keys()


def test_default_state_dict_names_top_level_keys() -> None:
    with pytest.raises(IncompatibleWeights, match="epoch, opts"):
        default_state_dict({"epoch": 3, "opts": {}})


def test_weights_are_found_by_official_name(tmp_path: Path) -> None:
    (tmp_path / "SLOW_8x8_R50.pyth").write_bytes(b"x")
    assert resolve_weights("slow_r50", weights_dir=tmp_path) == tmp_path / "SLOW_8x8_R50.pyth"
    explicit = tmp_path / "mine.pt"
    explicit.write_bytes(b"y")
    assert resolve_weights("psp_encoder", path=explicit, weights_dir=tmp_path) == explicit


def test_missing_weights_say_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(WeightsNotFound, match="psp_ffhq_encode.pt.*DDM_WEIGHTS_DIR"):
        resolve_weights("psp_encoder", weights_dir=tmp_path)
    with pytest.raises(WeightsNotFound, match="DDM_WEIGHTS_DIR"):
        resolve_weights("psp_encoder")
    with pytest.raises(WeightsNotFound, match="does not exist"):
        find_weights("x.pt", path=tmp_path / "nope.pt")


def test_sha256_file_matches_hashlib(tmp_path: Path) -> None:
    path = tmp_path / "blob"
    path.write_bytes(bytes(range(256)) * 9000)
    assert sha256_file(path, chunk_size=4096) == hashlib.sha256(path.read_bytes()).hexdigest()
