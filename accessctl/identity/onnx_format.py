"""Reading the weights out of an ONNX file, with our own code (no onnx package).

ONNX is a protocol-buffer message. We need little of it: the graph's nodes (operator,
inputs, outputs, attributes) and its initialisers (named tensors), so that a network
defined in torch can take the weights of OpenCV Zoo's SFace. The ``onnx`` package
itself needs a newer protobuf than MediaPipe allows, and a dependency for two hundred
lines of wire format is not worth its weight. Block-quantised weights
(``DequantizeLinear`` with ``block_size``, opset 21) are turned back into float32 here,
once, exactly as the operator defines it.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from accessctl.errors import EncoderError

# TensorProto.DataType -> numpy
_DTYPES = {
    1: np.float32,
    2: np.uint8,
    3: np.int8,
    5: np.int16,
    6: np.int32,
    7: np.int64,
    10: np.float16,
    11: np.float64,
}


@dataclass
class Node:
    op: str
    inputs: list[str]
    outputs: list[str]
    attrs: dict[str, int | float | list[int] | list[float] | bytes] = field(default_factory=dict)


@dataclass
class Graph:
    nodes: list[Node]
    tensors: dict[str, np.ndarray]


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    out = shift = 0
    while True:
        if pos >= len(buf):
            raise EncoderError("ONNX file: truncated")
        b = buf[pos]
        pos += 1
        out |= (b & 0x7F) << shift
        if b < 0x80:
            return out, pos
        shift += 7
        if shift > 63:
            raise EncoderError("ONNX file: malformed number")


def _fields(buf: bytes) -> Iterator[tuple[int, int | bytes]]:
    """(field number, value) of a message: an int for varints and fixed widths, bytes
    for length-delimited fields."""
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
            yield number, value
        elif wire == 1:
            yield number, struct.unpack_from("<q", buf, pos)[0]
            pos += 8
        elif wire == 2:
            size, pos = _varint(buf, pos)
            if pos + size > len(buf):
                raise EncoderError("ONNX file: truncated")
            yield number, buf[pos : pos + size]
            pos += size
        elif wire == 5:
            yield number, struct.unpack_from("<i", buf, pos)[0]
            pos += 4
        else:
            raise EncoderError(f"ONNX file: unknown wire type {wire}")


def _signed(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


def _ints(value: int | bytes) -> list[int]:
    """A repeated int64 field, packed or not."""
    if isinstance(value, int):
        return [_signed(value)]
    out, pos = [], 0
    while pos < len(value):
        v, pos = _varint(value, pos)
        out.append(_signed(v))
    return out


def _tensor(buf: bytes) -> tuple[str, np.ndarray]:
    dims: list[int] = []
    dtype, name, raw = 0, "", b""
    floats: list[float] = []
    int32s: list[int] = []
    int64s: list[int] = []
    for number, value in _fields(buf):
        if number == 1:
            dims += _ints(value)
        elif number == 2 and isinstance(value, int):
            dtype = value
        elif number == 4:
            if isinstance(value, bytes):
                floats += list(np.frombuffer(value, "<f4"))
            else:
                floats.append(struct.unpack("<f", struct.pack("<i", value))[0])
        elif number == 5:
            int32s += _ints(value)
        elif number == 7:
            int64s += _ints(value)
        elif number == 8 and isinstance(value, bytes):
            name = value.decode()
        elif number == 9 and isinstance(value, bytes):
            raw = value
    if dtype not in _DTYPES:
        raise EncoderError(f"ONNX file: tensor {name!r} has an unsupported type {dtype}")
    np_type = np.dtype(_DTYPES[dtype]).newbyteorder("<")
    if raw:
        array = np.frombuffer(raw, np_type).astype(_DTYPES[dtype])
    elif floats:
        array = np.array(floats, np.float32)
    else:
        array = np.array(int64s or int32s, _DTYPES[dtype])
    count = int(np.prod(dims)) if dims else 1
    if array.size != count:
        raise EncoderError(f"ONNX file: tensor {name!r} holds {array.size} values for shape {dims}")
    return name, array.reshape(dims)


def _attribute(buf: bytes) -> tuple[str, int | float | list[int] | list[float] | bytes]:
    name = ""
    value: int | float | list[int] | list[float] | bytes = b""
    ints: list[int] = []
    floats: list[float] = []
    for number, v in _fields(buf):
        if number == 1 and isinstance(v, bytes):
            name = v.decode()
        elif number == 2 and isinstance(v, int):
            value = struct.unpack("<f", struct.pack("<i", v))[0]
        elif number == 3 and isinstance(v, int):
            value = _signed(v)
        elif number == 4 and isinstance(v, bytes):
            value = v
        elif number == 5 and isinstance(v, bytes):
            value = _tensor(v)[1].ravel().tolist()
        elif number == 7:
            floats += (
                list(np.frombuffer(v, "<f4"))
                if isinstance(v, bytes)
                else [struct.unpack("<f", struct.pack("<i", v))[0]]
            )
        elif number == 8:
            ints += _ints(v)
    if ints:
        value = ints
    elif floats:
        value = [float(f) for f in floats]
    return name, value


def _node(buf: bytes) -> Node:
    node = Node("", [], [])
    for number, v in _fields(buf):
        if not isinstance(v, bytes):
            continue
        if number == 1:
            node.inputs.append(v.decode())
        elif number == 2:
            node.outputs.append(v.decode())
        elif number == 4:
            node.op = v.decode()
        elif number == 5:
            key, value = _attribute(v)
            node.attrs[key] = value
    return node


def read_graph(data: bytes) -> Graph:
    """The nodes and the initialisers of an ONNX model file's graph."""
    graph = next((v for n, v in _fields(data) if n == 7 and isinstance(v, bytes)), None)
    if graph is None:
        raise EncoderError("ONNX file: no graph")
    nodes, tensors = [], {}
    for number, v in _fields(graph):
        if number == 1 and isinstance(v, bytes):
            nodes.append(_node(v))
        elif number == 5 and isinstance(v, bytes):
            name, array = _tensor(v)
            tensors[name] = array
    return Graph(nodes, tensors)


def dequantize(q: np.ndarray, scale: np.ndarray, zero: np.ndarray | None, axis: int, block: int) -> np.ndarray:
    """``DequantizeLinear``: (q - zero) * scale, one scale (and zero point) per block of
    ``block`` values along ``axis`` (block 0: one per slice along ``axis``, or per tensor)."""
    x = q.astype(np.float32)
    z = np.zeros_like(scale) if zero is None else zero.astype(np.float32)
    if block:
        reps = np.repeat(scale, block, axis=axis), np.repeat(z, block, axis=axis)
        take = [slice(None)] * q.ndim
        take[axis] = slice(0, q.shape[axis])
        s, z = reps[0][tuple(take)], reps[1][tuple(take)]
    elif scale.ndim == 1 and scale.size > 1:
        shape = [1] * q.ndim
        shape[axis] = -1
        s, z = scale.reshape(shape), z.reshape(shape)
    else:
        s = scale
    return ((x - z) * s).astype(np.float32)


def constants(graph: Graph) -> dict[str, np.ndarray]:
    """Every tensor the graph computes from its initialisers alone (dequantised and
    reshaped weights), with the initialisers themselves."""
    values = dict(graph.tensors)
    for node in graph.nodes:
        if not all(i in values for i in node.inputs if i):
            continue
        if node.op == "DequantizeLinear":
            q, s = values[node.inputs[0]], values[node.inputs[1]]
            zp = values[node.inputs[2]] if len(node.inputs) > 2 and node.inputs[2] else None
            axis, block = node.attrs.get("axis", 1), node.attrs.get("block_size", 0)
            assert isinstance(axis, int) and isinstance(block, int)
            values[node.outputs[0]] = dequantize(q, s, zp, axis % q.ndim if q.ndim else 0, block)
        elif node.op == "Reshape":
            values[node.outputs[0]] = values[node.inputs[0]].reshape([int(d) for d in values[node.inputs[1]]])
        elif node.op == "Constant" and "value" in node.attrs:
            v = node.attrs["value"]
            values[node.outputs[0]] = np.asarray(v, np.float32)
    return values
