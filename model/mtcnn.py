"""facenet-pytorch's MTCNN detection with its candidate crops vectorised (model layer).

facenet-pytorch's `detect_face` cuts each second- and third-stage candidate out of its frame
in a Python loop, indexing the frames by a 0-d tensor: on a GPU that is one device
synchronisation per candidate (thousands per video). Here the three networks, the pyramid,
the thresholds and the NMS are facenet-pytorch's own, called in the same order; only the
crop step differs: the candidates' pixel ranges are computed on the host once per stage and
every candidate's area resize is read from one summed-area table per frame. On a CPU the
networks' max-pooling layers are swapped for `StridedMaxPool` (`use_strided_pooling`): the
same maxima, computed from strided views.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from facenet_pytorch.models.utils.detect_face import (
    batched_nms_numpy,
    bbreg,
    fixed_batch_process,
    generateBoundingBox,
    imresample,
    pad,
    rerec,
)
from torch import Tensor, nn
from torchvision.ops.boxes import batched_nms

# facenet-pytorch's input scaling of the three networks, and the R-Net and O-Net inputs.
PIXEL_CENTRE, PIXEL_SCALE = 127.5, 0.0078125
RNET_SIZE, ONET_SIZE = 24, 48

Detections = tuple[list[np.ndarray | None], list[np.ndarray | None], list[np.ndarray | None]]


class StridedMaxPool(nn.Module):
    """`nn.MaxPool2d(kernel, stride=2, ceil_mode=True)` as element-wise maxima of strided
    views of the input, one axis at a time: the same values (a maximum is exact, and the
    -inf padding of ceil mode's last window never wins), 8x faster on a CPU for P-Net's
    10-channel maps over a frame pyramid, where oneDNN's pooling took a third of detection."""

    def __init__(self, kernel: int) -> None:
        super().__init__()
        self.kernel = kernel

    def forward(self, x: Tensor) -> Tensor:
        return _pool_axis(_pool_axis(x, self.kernel, 2), self.kernel, 3)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel}, stride=2, ceil_mode=True"


def _pool_axis(x: Tensor, kernel: int, dim: int) -> Tensor:
    size = x.shape[dim]
    if size < kernel:  # as nn.MaxPool2d refuses it
        raise RuntimeError(f"max pooling: an input of {size} is smaller than the kernel {kernel}")
    count = -(-(size - kernel) // 2) + 1  # ceil((size - kernel) / 2) + 1
    if (count - 1) * 2 >= size:  # PyTorch drops a last window starting past the input
        count -= 1
    index: list[Any] = [slice(None)] * x.ndim

    def window_row(offset: int) -> Tensor:  # the `offset`-th element of every window
        # Ceil mode's last window may lack its last element: that row is one shorter.
        index[dim] = slice(offset, min(offset + 2 * (count - 1) + 1, size), 2)
        return x[tuple(index)]

    # Rather than padding with -inf, which copied the whole map (11% of detection): a
    # short row updates only the windows it reaches.
    pooled = torch.maximum(window_row(0), window_row(1)) if kernel > 2 else window_row(0).clone()
    for offset in range(2 if kernel > 2 else 1, kernel):
        row = window_row(offset)
        reached = pooled.narrow(dim, 0, row.shape[dim])
        torch.maximum(reached, row, out=reached)
    return pooled


def use_strided_pooling(*networks: nn.Module) -> None:
    """Swap each network's stride-2, ceil-mode max-pooling layers for `StridedMaxPool`."""
    for network in networks:
        for name, layer in list(network.named_children()):
            if _is_strided_pool(layer):
                setattr(network, name, StridedMaxPool(int(layer.kernel_size)))  # type: ignore[arg-type]


def _is_strided_pool(layer: nn.Module) -> bool:
    return (
        isinstance(layer, nn.MaxPool2d)
        and layer.kernel_size in (2, 3)
        and layer.stride == 2
        and layer.padding == 0
        and layer.dilation == 1
        and layer.ceil_mode
    )


def detect_faces(mtcnn: Any, frames: np.ndarray) -> Detections:
    """`MTCNN.detect(frames, landmarks=True)` of a batch, through `detect_face` below.

    Args:
        mtcnn: a facenet-pytorch `MTCNN`; its networks, thresholds and device are used.
        frames: (B, H, W, 3) uint8 RGB.

    Returns:
        Per frame: (n, 4) boxes, (n,) probabilities and (n, 5, 2) landmarks, ordered as
        facenet-pytorch orders them (largest first when `mtcnn.select_largest`); None for
        all three on a frame without faces.
    """
    with torch.no_grad():
        batch_boxes, batch_points = detect_face(
            frames,
            mtcnn.min_face_size,
            mtcnn.pnet,
            mtcnn.rnet,
            mtcnn.onet,
            mtcnn.thresholds,
            mtcnn.factor,
            mtcnn.device,
        )
    boxes: list[np.ndarray | None] = []
    probs: list[np.ndarray | None] = []
    points: list[np.ndarray | None] = []
    for box, point in zip(batch_boxes, batch_points, strict=True):
        if len(box) and mtcnn.select_largest:
            order = np.argsort((box[:, 2] - box[:, 0]) * (box[:, 3] - box[:, 1]))[::-1]
            box, point = box[order], point[order]
        boxes.append(box[:, :4] if len(box) else None)
        probs.append(box[:, 4] if len(box) else None)
        points.append(point if len(box) else None)
    return boxes, probs, points


def detect_face(
    imgs: np.ndarray | Tensor,
    minsize: int,
    pnet: nn.Module,
    rnet: nn.Module,
    onet: nn.Module,
    threshold: list[float],
    factor: float,
    device: torch.device,
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """facenet-pytorch's `detect_face` for a (B, H, W, 3) batch, with vectorised crops.

    Returns:
        Per frame, (n, 5) boxes with the probability last, and (n, 5, 2) landmarks.
    """
    images = _as_batch(imgs, device, next(pnet.parameters()).dtype)  # (B, 3, H, W)
    boxes, image_inds = _propose(images, minsize, pnet, threshold[0], factor)
    points = torch.zeros(0, 5, 2, device=device)
    if len(boxes) > 0:
        boxes, image_inds = _refine(images, boxes, image_inds, rnet, threshold[1])
    if len(boxes) > 0:
        boxes, image_inds, points = _output(images, boxes, image_inds, onet, threshold[2])
    return _per_image(boxes, points, image_inds, len(images))


def _as_batch(imgs: np.ndarray | Tensor, device: torch.device, dtype: torch.dtype) -> Tensor:
    images = torch.as_tensor(imgs.copy() if isinstance(imgs, np.ndarray) else imgs, device=device)
    if images.ndim == 3:
        images = images.unsqueeze(0)
    return images.permute(0, 3, 1, 2).type(dtype)


def _pyramid(height: int, width: int, minsize: int, factor: float) -> list[float]:
    scale = 12.0 / minsize
    side = min(height, width) * scale
    scales = []
    while side >= 12:
        scales.append(scale)
        scale, side = scale * factor, side * factor
    return scales


def _propose(
    images: Tensor, minsize: int, pnet: nn.Module, threshold: float, factor: float
) -> tuple[Tensor, Tensor]:
    """Stage 1, as facenet-pytorch runs it: P-Net over the pyramid, NMS per scale and frame,
    then per frame, and the boxes squared after their regression."""
    height, width = images.shape[2:4]
    boxes, image_inds, picks = [], [], []
    offset = 0
    for scale in _pyramid(height, width, minsize, factor):
        data = imresample(images, (int(height * scale + 1), int(width * scale + 1)))
        reg, probs = pnet((data - PIXEL_CENTRE) * PIXEL_SCALE)
        boxes_scale, inds_scale = generateBoundingBox(reg, probs[:, 1], scale, threshold)
        boxes.append(boxes_scale)
        image_inds.append(inds_scale)
        picks.append(batched_nms(boxes_scale[:, :4], boxes_scale[:, 4], inds_scale, 0.5) + offset)
        offset += boxes_scale.shape[0]
    pick = torch.cat(picks)
    found, found_inds = torch.cat(boxes)[pick], torch.cat(image_inds)[pick]
    pick = batched_nms(found[:, :4], found[:, 4], found_inds, 0.7)
    found, found_inds = found[pick], found_inds[pick]
    reg_w, reg_h = found[:, 2] - found[:, 0], found[:, 3] - found[:, 1]
    corners = [
        found[:, 0] + found[:, 5] * reg_w,
        found[:, 1] + found[:, 6] * reg_h,
        found[:, 2] + found[:, 7] * reg_w,
        found[:, 3] + found[:, 8] * reg_h,
    ]
    return rerec(torch.stack([*corners, found[:, 4]]).permute(1, 0)), found_inds


def _refine(
    images: Tensor, boxes: Tensor, image_inds: Tensor, rnet: nn.Module, threshold: float
) -> tuple[Tensor, Tensor]:
    """Stage 2: R-Net on 24 x 24 crops, its threshold, NMS, regression, squaring."""
    data, boxes, image_inds = _candidate_crops(images, boxes, image_inds, RNET_SIZE)
    if len(data) == 0:
        return boxes, image_inds
    reg, scores = (out.permute(1, 0) for out in fixed_batch_process(data, rnet))
    score = scores[1, :]
    is_kept = score > threshold
    boxes = torch.cat((boxes[is_kept, :4], score[is_kept].unsqueeze(1)), dim=1)
    image_inds, reg = image_inds[is_kept], reg[:, is_kept].permute(1, 0)
    pick = batched_nms(boxes[:, :4], boxes[:, 4], image_inds, 0.7)
    return rerec(bbreg(boxes[pick], reg[pick])), image_inds[pick]


def _output(
    images: Tensor, boxes: Tensor, image_inds: Tensor, onet: nn.Module, threshold: float
) -> tuple[Tensor, Tensor, Tensor]:
    """Stage 3: O-Net on 48 x 48 crops, its threshold, landmarks, regression, "Min" NMS."""
    data, boxes, image_inds = _candidate_crops(images, boxes, image_inds, ONET_SIZE)
    if len(data) == 0:
        return boxes, image_inds, torch.zeros(0, 5, 2, device=boxes.device)
    reg, points, scores = (out.permute(1, 0) for out in fixed_batch_process(data, onet))
    score = scores[1, :]
    is_kept = score > threshold
    points = points[:, is_kept]
    boxes = torch.cat((boxes[is_kept, :4], score[is_kept].unsqueeze(1)), dim=1)
    image_inds, reg = image_inds[is_kept], reg[:, is_kept].permute(1, 0)
    box_w = boxes[:, 2] - boxes[:, 0] + 1
    box_h = boxes[:, 3] - boxes[:, 1] + 1
    points_x = box_w.repeat(5, 1) * points[:5, :] + boxes[:, 0].repeat(5, 1) - 1
    points_y = box_h.repeat(5, 1) * points[5:10, :] + boxes[:, 1].repeat(5, 1) - 1
    points = torch.stack((points_x, points_y)).permute(2, 1, 0)
    boxes = bbreg(boxes, reg)
    pick = batched_nms_numpy(boxes[:, :4], boxes[:, 4], image_inds, 0.7, "Min")
    return boxes[pick], image_inds[pick], points[pick]


def _candidate_crops(
    images: Tensor, boxes: Tensor, image_inds: Tensor, size: int
) -> tuple[Tensor, Tensor, Tensor]:
    """The scaled network input of each candidate, and the candidates that have one.

    facenet-pytorch skips a candidate whose clipped box is empty but keeps its row, which
    misaligns every later one (and then fails); such candidates are dropped here instead.
    """
    y, ey, x, ex = pad(boxes, images.shape[3], images.shape[2])  # boxes to the host, once
    inds = image_inds.cpu().numpy()  # and the frame indices, once
    is_valid = (ey > y - 1) & (ex > x - 1)
    if not is_valid.all():
        kept = torch.as_tensor(np.flatnonzero(is_valid), device=boxes.device)
        boxes, image_inds = boxes[kept], image_inds[kept]
        y, ey, x, ex, inds = (a[is_valid] for a in (y, ey, x, ex, inds))
    crops = crop_candidates(images, inds, y, ey, x, ex, size)
    return (crops - PIXEL_CENTRE) * PIXEL_SCALE, boxes, image_inds


def crop_candidates(
    images: Tensor,
    image_inds: np.ndarray,
    y: np.ndarray,
    ey: np.ndarray,
    x: np.ndarray,
    ex: np.ndarray,
    size: int,
) -> Tensor:
    """Area-resize every candidate's pixels to `size` x `size` in a few batched operations.

    Equal to facenet-pytorch's per-candidate `imresample(images[i, :, y-1:ey, x-1:ex])`:
    each output pixel averages the bin adaptive average pooling uses, its sum read from a
    32-bit integer summed-area table (exact for 8-bit pixels: a 1920 x 1080 frame sums to
    at most 529 M, under 2**31; a bin's sum, under 2**24, is exact in float32 too) and
    divided as PyTorch divides.

    Args:
        images: (B, C, H, W) frames.
        image_inds: (N,) host ints, each candidate's frame.
        y, ey, x, ex: (N,) host ints, each candidate's 1-based first row, last row,
            1-based first column and last column (as facenet-pytorch's `pad` returns them);
            the ranges must not be empty.
        size: side of the output.

    Returns:
        (N, C, size, size), contiguous like facenet-pytorch's concatenated crops (the
        networks' convolutions round differently on other layouts).
    """
    num = len(image_inds)
    if num == 0:
        return images.new_zeros(0, images.shape[1], size, size)
    order = np.argsort(image_inds, kind="stable")  # each frame's candidates together
    edges = np.stack([_bins(y - 1, ey, size), _bins(x - 1, ex, size)])[:, :, order]
    # One host-to-device copy for the stage: the bin edges and the way back to box order.
    packed = torch.as_tensor(
        np.concatenate([edges.ravel(), np.argsort(order)]), device=images.device
    )
    device_edges, back = packed[: edges.size].view(edges.shape), packed[edges.size :]
    sums, start = [], 0
    for frame, count in enumerate(np.bincount(image_inds, minlength=len(images)).tolist()):
        if count:
            table = _summed_area_table(images[frame])
            sums.append(_bin_sums(table, device_edges[:, :, start : start + count]))
            start += count
    total = torch.cat(sums)[back].to(images.dtype)  # (N, C, S, S)
    heights = (device_edges[0, 1] - device_edges[0, 0])[back].to(images.dtype)
    widths = (device_edges[1, 1] - device_edges[1, 0])[back].to(images.dtype)
    # Divided by the bin's height, then by its width, as PyTorch's CPU pooling kernel does.
    return (total / heights[:, None, :, None] / widths[:, None, None, :]).contiguous()


def _bins(first: np.ndarray, end: np.ndarray, size: int) -> np.ndarray:
    """(2, N, size) bin edges of adaptive pooling over [first, end): floor(i * n / size)
    to ceil((i + 1) * n / size), offset by `first`."""
    first = first.astype(np.int64)[:, None]
    length = end.astype(np.int64)[:, None] - first
    i = np.arange(size, dtype=np.int64)[None, :]
    return np.stack([first + (i * length) // size, first + ((i + 1) * length + size - 1) // size])


def _summed_area_table(image: Tensor) -> Tensor:
    """(C, H + 1, W + 1) int32 sums of the pixels above and left of each corner: exact, and
    half the memory traffic of float64 in the corner reads that dominate the crops."""
    pixels = image.to(torch.int32)
    return F.pad(pixels.cumsum(1, dtype=torch.int32).cumsum(2, dtype=torch.int32), (1, 0, 1, 0))


def _bin_sums(table: Tensor, edges: Tensor) -> Tensor:
    """(n, C, S, S) pixel sums of each bin, from (2, 2, n, S) edges: rows, then columns.

    Each corner is read with one `index_select` over the flattened table: the same values
    and the same arithmetic as indexing the table with broadcast row and column indices,
    several times faster on a CPU, where broadcast advanced indexing took most of the
    detection time (bench/README.md).
    """
    channels, rows, cols = table.shape
    flat = table.reshape(channels, rows * cols)
    top, bottom = edges[0, 0][:, :, None] * cols, edges[0, 1][:, :, None] * cols  # (n, S, 1)
    left, right = edges[1, 0][:, None, :], edges[1, 1][:, None, :]  # (n, 1, S)
    shape = (channels, *torch.broadcast_shapes(top.shape, left.shape))

    def corner(row: Tensor, col: Tensor) -> Tensor:
        return flat.index_select(1, (row + col).reshape(-1)).view(shape)

    sums = corner(bottom, right) - corner(top, right) - corner(bottom, left)
    sums += corner(top, left)  # (C, n, S, S)
    return sums.permute(1, 0, 2, 3)


def _per_image(
    boxes: Tensor, points: Tensor, image_inds: Tensor, batch_size: int
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    boxes_np, points_np = boxes.cpu().numpy(), points.cpu().numpy()
    inds = image_inds.cpu().numpy()
    return (
        [boxes_np[inds == i].copy() for i in range(batch_size)],
        [points_np[inds == i].copy() for i in range(batch_size)],
    )
