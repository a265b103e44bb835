"""Our MTCNN pass (`model.mtcnn`) against facenet-pytorch's own on the real clips, its
vectorised candidate crops against the per-box crops they replace, and the host reads of
device values a detection needs (each one a device synchronisation on a GPU)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import torch
from facenet_pytorch import MTCNN
from facenet_pytorch.models.utils.detect_face import imresample
from torch.utils._python_dispatch import TorchDispatchMode

from model.faces import FaceCfg, FaceDetector, read_frames
from model.mtcnn import StridedMaxPool, crop_candidates, detect_faces, use_strided_pooling
from tests.model.helpers import FFPP_VIDEOS, MEDIA

FFPP_CLIP = FFPP_VIDEOS / "004.mp4"
DFDC_CLIP = MEDIA / "dfdc" / "dfdc_train_part_0" / "brtujopkby.mp4"


@pytest.fixture(scope="module")
def mtcnn() -> MTCNN:
    return MTCNN(keep_all=True)


def first_pass_frames(clip: Path, num_frames: int = 8) -> np.ndarray:
    """The clip's sampled frames at the scale of `FaceDetector`'s first detection pass."""
    if not clip.is_file():
        pytest.skip(f"real media not available at {clip}")
    frames, _, _ = read_frames(clip, num_frames)
    height, width = frames.shape[1:3]
    scale = min(1.0, FaceCfg().detect_max_side / max(height, width))
    size = (round(width * scale), round(height * scale))
    return np.stack([cv2.resize(f, size, interpolation=cv2.INTER_AREA) for f in frames])


@pytest.fixture(scope="module")
def strided_mtcnn() -> MTCNN:
    """facenet-pytorch's MTCNN with the pooling layers `FaceDetector` uses on a CPU."""
    strided = MTCNN(keep_all=True)
    use_strided_pooling(strided.pnet, strided.rnet, strided.onet)
    pools = [m for net in (strided.pnet, strided.rnet, strided.onet) for m in net.modules()]
    assert sum(isinstance(m, StridedMaxPool) for m in pools) == 6  # every pooling layer
    assert not any(isinstance(m, torch.nn.MaxPool2d) for m in pools)
    return strided


@pytest.mark.parametrize("pooling", ["max_pool2d", "strided"])
@pytest.mark.parametrize("clip", [FFPP_CLIP, DFDC_CLIP], ids=["ffpp-004", "dfdc-brtujopkby"])
def test_detections_equal_facenet_pytorchs_on_real_clips(
    mtcnn: MTCNN, strided_mtcnn: MTCNN, clip: Path, pooling: str
) -> None:
    frames = first_pass_frames(clip)
    their_boxes, their_probs, their_points = mtcnn.detect(frames, landmarks=True)
    ours_with = mtcnn if pooling == "max_pool2d" else strided_mtcnn
    our_boxes, our_probs, our_points = detect_faces(ours_with, frames)
    assert len(our_boxes) == len(their_boxes) == len(frames)
    assert sum(len(b) for b in their_boxes if b is not None) >= len(frames)  # faces were found
    for ours, theirs in [
        *zip(our_boxes, their_boxes, strict=True),
        *zip(our_probs, their_probs, strict=True),
        *zip(our_points, their_points, strict=True),
    ]:
        if theirs is None or theirs[0] is None:  # facenet's "no face" marks
            assert ours is None or len(ours) == 0
            continue
        # Bit-equal on a CPU: the same networks see the same inputs in the same layout.
        np.testing.assert_array_equal(np.asarray(ours), np.asarray(theirs, ours.dtype))


@pytest.mark.parametrize("kernel", [2, 3])
def test_strided_pooling_is_max_pool2d_in_ceil_mode(kernel: int) -> None:
    torch.manual_seed(0)
    pool = torch.nn.MaxPool2d(kernel, 2, ceil_mode=True)
    for height in range(kernel, 14):
        for width in (kernel, 4, 7, 10, 13):
            x = torch.randn(2, 10, height, width)
            x[0, 0, 0, 0] = float("nan")  # propagated as max_pool2d propagates it
            expected, got = pool(x), StridedMaxPool(kernel)(x)
            assert got.shape == expected.shape, (height, width)
            assert got.is_contiguous()  # the next convolution rounds by layout
            torch.testing.assert_close(got, expected, rtol=0, atol=0, equal_nan=True)
    with pytest.raises(RuntimeError):
        StridedMaxPool(kernel)(torch.zeros(1, 1, kernel - 1, 5))  # as max_pool2d refuses it


def per_box_crops(
    images: torch.Tensor,
    image_inds: np.ndarray,
    y: np.ndarray,
    ey: np.ndarray,
    x: np.ndarray,
    ex: np.ndarray,
    size: int,
) -> torch.Tensor:
    """facenet-pytorch's crop step: one area resize per candidate, in a Python loop."""
    crops = [
        imresample(images[i, :, y[k] - 1 : ey[k], x[k] - 1 : ex[k]].unsqueeze(0), (size, size))
        for k, i in enumerate(image_inds)
    ]
    return torch.cat(crops)


@pytest.mark.parametrize("size", [24, 48])
def test_candidate_crops_equal_the_per_box_crops(size: int) -> None:
    generator = np.random.default_rng(7)
    pixels = generator.integers(0, 256, (3, 90, 120, 3), dtype=np.uint8)
    images = torch.from_numpy(pixels).permute(0, 3, 1, 2).float()  # channels-last, as MTCNN's
    count = 200
    x = generator.integers(1, 121, count)
    y = generator.integers(1, 91, count)
    ex = np.minimum(x - 1 + generator.integers(1, 80, count), 120)
    ey = np.minimum(y - 1 + generator.integers(1, 80, count), 90)
    # Edges: the whole frame, one pixel, and a box in a corner.
    x[:3], y[:3], ex[:3], ey[:3] = [1, 60, 118], [1, 45, 89], [120, 60, 120], [90, 45, 90]
    image_inds = generator.integers(0, 3, count)
    expected = per_box_crops(images, image_inds, y, ey, x, ex, size)
    actual = crop_candidates(images, image_inds, y, ey, x, ex, size)
    assert actual.shape == (count, 3, size, size)
    torch.testing.assert_close(actual, expected, rtol=0, atol=0)  # integer sums: exact


class HostReads(TorchDispatchMode):
    """Counts the operations that read device values on the host, each a synchronisation
    on a GPU: scalar reads (`.item()`, `int()`, indexing by a 0-d tensor), `nonzero`, and
    indexing with a boolean mask (which runs `nonzero`)."""

    def __init__(self) -> None:
        super().__init__()
        self.counts: Counter[str] = Counter()

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        name = func.__name__
        if name.startswith(("_local_scalar_dense", "nonzero")):
            self.counts[name] += 1
        elif name.startswith("index.") and any(
            isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in args[1]
        ):
            self.counts["boolean index"] += 1
        return func(*args, **(kwargs or {}))


def test_host_reads_do_not_grow_with_the_candidate_boxes() -> None:
    frames = first_pass_frames(DFDC_CLIP)
    detector = FaceDetector(FaceCfg(num_frames=len(frames)))
    candidates = []
    for net in (detector.mtcnn.rnet, detector.mtcnn.onet):
        net.register_forward_hook(lambda _m, args, _out: candidates.append(len(args[0])))
    with HostReads() as reads:
        found = detector.detect(frames)
    assert sum(len(f) for f in found) >= len(frames)
    # 2,000+ candidates reach the second and third stages on these 8 frames; facenet-pytorch
    # read one index per candidate. What is left is a few reads per pyramid scale and stage.
    assert sum(candidates) > 1000, candidates
    assert sum(reads.counts.values()) < 100, reads.counts
