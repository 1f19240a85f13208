"""A pure-Python reader of dlib's serialised ``loss_metric`` ResNet.

dlib writes a network as nested templates: every layer's version header comes first,
outermost to innermost, then the input layer, then each layer's details from the
innermost outwards. Tag ids and the skip topology are not stored, so the reader walks
a type description of the network (``NETWORK``, the ``anet_type`` of dlib's
``dnn_face_recognition_ex.cpp``) and checks every name and shape it meets. The
result is the list of parameter tensors in forward order; nothing else in the file is
kept. See ``shared/docs/dlib-metric-resnet.md`` for the encodings.
"""

from __future__ import annotations

import builtins
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from accessctl.errors import EncoderError


@dataclass(frozen=True)
class LayerParams:
    """The learned tensors of one layer, as dlib stores them."""

    kind: str  # "con", "affine" or "fc"
    tensors: tuple[np.ndarray, ...]  # con: (weight OIHW, bias); affine: (gamma, beta); fc: (W in x out,)


# The chain of layers, outermost first, after the loss layer. Tuples are
# (kind, args); tag and skip layers carry no data but do carry a version header.
def _block(n: int, stride: int) -> list[tuple]:
    # BN<con<N,3,3,1,1,relu<BN<con<N,3,3,stride,stride,SUBNET>>>>>
    return [("affine", n), ("con", n, 3, 1), ("relu",), ("affine", n), ("con", n, 3, stride)]


def _ares(n: int) -> list[tuple]:
    # relu<add_prev1<block<N,1,tag1<SUBNET>>>>
    return [("relu",), ("add_prev",), *_block(n, 1), ("tag",)]


def _ares_down(n: int) -> list[tuple]:
    # relu<add_prev2<avg_pool<2,2,2,2,skip1<tag2<block<N,2,tag1<SUBNET>>>>>>>
    return [("relu",), ("add_prev",), ("avg_pool", 2, 2), ("skip",), ("tag",), *_block(n, 2), ("tag",)]


NETWORK: list[tuple] = [
    ("fc", 128),
    ("avg_pool", 0, 1),  # avg_pool_everything
    *_ares_down(256),  # level 0
    *_ares(256),
    *_ares(256),
    *_ares_down(256),  # level 1
    *_ares(128),
    *_ares(128),
    *_ares_down(128),  # level 2
    *_ares(64),
    *_ares(64),
    *_ares(64),
    *_ares_down(64),  # level 3
    *_ares(32),
    *_ares(32),
    *_ares(32),  # level 4
    ("max_pool", 3, 2),
    ("relu",),
    ("affine", 32),
    ("con", 32, 7, 2),
]
INPUT_SIZE = 150
INPUT_MEAN = (122.782, 117.001, 104.298)  # RGB, subtracted before dividing by 256


class _Stream:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def _take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise EncoderError(f"encoder weights end early at byte {self.pos} (file truncated or not a dlib network)")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def int(self) -> int:
        ctrl = self._take(1)[0]
        n = ctrl & 0x0F
        if n > 8 or (ctrl & 0x70):
            raise EncoderError(f"encoder weights: bad integer control byte {ctrl:#x} at byte {self.pos - 1}")
        value = int.from_bytes(self._take(n), "little") if n else 0
        return -value if ctrl & 0x80 else value

    def float(self) -> float:
        mantissa = self.int()
        exponent = self.int()
        if exponent in (32000, 32001, 32002):
            return (float("inf"), float("-inf"), float("nan"))[exponent - 32000]
        return float(mantissa) * 2.0**exponent

    def bool(self) -> bool:
        b = self._take(1)
        if b not in (b"0", b"1"):
            raise EncoderError(f"encoder weights: bad bool {b!r} at byte {self.pos - 1}")
        return b == b"1"

    def string(self) -> str:
        return self._take(self.int()).decode("ascii", errors="replace")

    def expect_name(self, *names: str) -> str:
        got = self.string()
        if got not in names:
            raise EncoderError(
                f"encoder weights: expected layer {' or '.join(names)}, found {got!r} at byte {self.pos}"
            )
        return got

    def expect_int(self, value: builtins.int, what: str) -> None:
        got = self.int()
        if got != value:
            raise EncoderError(f"encoder weights: {what} is {got}, expected {value}")

    def tensor(self) -> np.ndarray:
        self.expect_int(2, "tensor version")
        dims = tuple(self.int() for _ in range(4))
        count = int(np.prod(dims))
        raw = self._take(4 * count)
        return np.frombuffer(raw, dtype="<f4").reshape(dims).copy()

    def alias(self) -> tuple[builtins.int, ...]:
        self.expect_int(1, "alias tensor version")
        return tuple(self.int() for _ in range(4))


def _read_details(s: _Stream, layer: tuple) -> LayerParams | None:
    kind = layer[0]
    if kind == "con":
        _, n, k, stride = layer
        s.expect_name("con_4", "con_5", "con_6")
        params = s.tensor()
        got = tuple(s.int() for _ in range(7))  # num_filters, nr, nc, stride_y, stride_x, pad_y, pad_x
        pad = k // 2 if stride == 1 else 0
        if got != (n, k, k, stride, stride, pad, pad):
            raise EncoderError(f"encoder weights: convolution {got} does not match the network ({n}, {k}x{k}/{stride})")
        filters = s.alias()
        s.alias()  # biases
        for _ in range(4):
            s.float()  # learning-rate and weight-decay multipliers
        n_w = int(np.prod(filters))
        flat = params.reshape(-1)
        if flat.size != n_w + n:
            raise EncoderError("encoder weights: convolution parameter count mismatch")
        return LayerParams("con", (flat[:n_w].reshape(filters).copy(), flat[n_w:].copy()))
    if kind == "affine":
        n = layer[1]
        s.expect_name("affine_")
        params = s.tensor().reshape(-1)
        s.alias()
        s.alias()
        mode = s.int()
        if mode != 0 or params.size != 2 * n:
            raise EncoderError(
                f"encoder weights: affine layer of {params.size // 2} channels (mode {mode}), expected {n}"
            )
        return LayerParams("affine", (params[:n].copy(), params[n:].copy()))
    if kind == "fc":
        n = layer[1]
        s.expect_name("fc_2")
        n_out, n_in = s.int(), s.int()
        params = s.tensor()
        s.alias()
        s.alias()
        bias_mode = s.int()
        for _ in range(4):
            s.float()
        if n_out != n or bias_mode != 1 or params.size != n_in * n_out:
            raise EncoderError(
                f"encoder weights: fc layer {n_in}->{n_out} (bias mode {bias_mode}), expected ->{n} without bias"
            )
        return LayerParams("fc", (params.reshape(n_in, n_out).copy(),))
    if kind in ("max_pool", "avg_pool"):
        _, k, stride = layer
        s.expect_name(f"{kind}_2")
        got = tuple(s.int() for _ in range(6))
        pad = 0 if (stride != 1 or k == 0) else k // 2
        if got != (k, k, stride, stride, pad, pad):
            raise EncoderError(f"encoder weights: {kind} {got} does not match the network")
        return None
    if kind == "relu":
        s.expect_name("relu_")
        return None
    if kind == "add_prev":
        s.expect_name("add_prev_")
        return None
    raise AssertionError(kind)


def read_dlib_metric_net(path: str | Path) -> list[LayerParams]:
    """All learned tensors of dlib's face ResNet, in forward order.

    Raises EncoderError unless the file matches the network exactly and is consumed to
    its last byte.
    """
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise EncoderError(f"cannot read encoder weights {path}: {exc.strerror or exc}") from None
    s = _Stream(data)
    s.expect_int(1, "loss layer version")
    s.expect_name("loss_metric_2", "loss_metric_")
    s.float()  # margin
    s.float()  # distance threshold

    # Version headers, outermost first; the last add layer sits on the input (version 3).
    add_layers = [layer for layer in NETWORK if layer[0] not in ("tag", "skip")]
    for layer in NETWORK:
        if layer[0] in ("tag", "skip"):
            s.expect_int(1, f"{layer[0]} layer version")
        else:
            s.expect_int(3 if layer is add_layers[-1] else 2, f"{layer[0]} layer version")

    s.expect_name("input_rgb_image_sized")
    mean = (s.float(), s.float(), s.float())
    size = (s.int(), s.int())
    if (
        size != (INPUT_SIZE, INPUT_SIZE)
        or len(mean) != len(INPUT_MEAN)
        or any(abs(a - b) > 1e-3 for a, b in zip(mean, INPUT_MEAN, strict=True))
    ):
        raise EncoderError(f"encoder weights: input layer {size} mean {mean} is not the 150x150 face network")

    params: list[LayerParams] = []
    for i, layer in enumerate(reversed(add_layers)):
        got = _read_details(s, layer)
        if got is not None:
            params.append(got)
        for _ in range(3):
            s.bool()
        s.tensor()  # x_grad
        s.tensor()  # cached_output
        s.tensor()  # params_grad (grad_final for the layer on the input)
        if i == 0:
            s.int()  # sample_expansion_factor
    if s.pos != len(data):
        raise EncoderError(f"encoder weights: {len(data) - s.pos} bytes left over after the network")
    return params
