"""hwnas's own TFLite writer: every op kind and whole subnets match PyTorch when run by LiteRT."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

pytest.importorskip("ai_edge_litert")
from ai_edge_litert import schema_py_generated as tfl
from ai_edge_litert.interpreter import Interpreter

from hwnas.formats.ir import Conv, Graph, lower
from hwnas.formats.tflite_writer import graph_to_tflite, module_to_tflite, read_tflite_metadata
from hwnas.latency.targets.base import static_op
from hwnas.nn import OFAMobileNetV3, StaticSubnet, recalibrate_bn
from hwnas.space import OpSignature, ceil_div, get_space

ATOL = 1e-4


def run_tflite(data: bytes, x_nchw: np.ndarray) -> np.ndarray:
    """LiteRT (default XNNPACK) output for an NCHW input, transposed back to NCHW for feature maps."""
    interpreter = Interpreter(model_content=data, num_threads=1)
    interpreter.allocate_tensors()
    (inp,), (out,) = interpreter.get_input_details(), interpreter.get_output_details()
    assert inp["name"] == "input" and out["name"] == "output"
    interpreter.set_tensor(inp["index"], np.ascontiguousarray(x_nchw.transpose(0, 2, 3, 1)))
    interpreter.invoke()
    y = interpreter.get_tensor(out["index"])
    return y.transpose(0, 3, 1, 2) if y.ndim == 4 else y


def assert_matches_torch(module: torch.nn.Module, x: np.ndarray, relative: bool = False) -> None:
    """Max abs diff <= 1e-4 (``relative``: times the output's largest magnitude when that exceeds 1)."""
    with torch.no_grad():
        expected = module(torch.from_numpy(x)).numpy()
    got = run_tflite(module_to_tflite(module, x.shape), x)
    assert got.shape == expected.shape
    atol = ATOL * max(1.0, float(np.abs(expected).max())) if relative else ATOL
    np.testing.assert_allclose(got, expected, rtol=0, atol=atol)


def op_codes(data: bytes) -> list[str]:
    model = tfl.ModelT.InitFromPackedBuf(data, 0)
    names = {v: k for k, v in vars(tfl.BuiltinOperator).items() if not k.startswith("_")}
    return [names[model.operatorCodes[op.opcodeIndex].builtinCode] for op in model.subgraphs[0].operators]


def _tiny_op_signatures() -> list[OpSignature]:
    """One signature per distinct op shape class of tiny-mbv3, plus stride-2 ops at odd and even sizes."""
    space = get_space("tiny-mbv3")
    chosen: dict[tuple, OpSignature] = {}
    for sig in space.lut_layout([32])["signatures"]:
        category = (sig.kind, sig.kernel, sig.stride, sig.se, sig.act, sig.residual, sig.expands)
        chosen.setdefault(category, sig)
    signatures = list(chosen.values())
    for sig in list(chosen.values()):
        if sig.stride == 2:  # 25 and 13 px: SAME would be right; 26 px: SAME would shift the window
            for in_hw in (25, 26, 13):
                signatures.append(dataclasses.replace(sig, in_hw=in_hw, out_hw=ceil_div(in_hw, 2)))
    ofa = get_space("ofa-mbv3-w1.0")
    (stem, first), _ = ofa.fixed_signatures(64)
    for in_hw in (33, 32):  # OFA's stride-2 dense stem conv at odd and even sizes, and its expand-1 first block
        signatures.append(dataclasses.replace(stem, in_hw=in_hw, out_hw=ceil_div(in_hw, 2)))
    signatures.append(first)
    return signatures


TINY_OPS = _tiny_op_signatures()


def test_op_selection_covers_every_kind() -> None:
    kinds = {sig.kind for sig in TINY_OPS}
    assert kinds == {"Conv", "expanded_conv", "Conv_1", "AvgPool2D", "Conv_2", "Logits"}
    blocks = [sig for sig in TINY_OPS if sig.kind == "expanded_conv"]
    assert {sig.kernel for sig in blocks} == {3, 5, 7} and {sig.stride for sig in blocks} == {1, 2}
    assert {sig.se for sig in blocks} == {False, True} and {sig.act for sig in blocks} == {"relu", "h_swish"}
    assert {sig.residual for sig in blocks} == {False, True} and {sig.expands for sig in blocks} == {False, True}
    assert {sig.in_hw % 2 for sig in blocks if sig.stride == 2} == {0, 1}


@pytest.mark.parametrize("sig", TINY_OPS, ids=[f"{s.key}" for s in TINY_OPS])
def test_op_matches_pytorch(sig: OpSignature) -> None:
    op = static_op(sig, seed=3)
    x = np.random.default_rng(sig.in_hw).standard_normal((1, sig.in_c, sig.in_hw, sig.in_hw)).astype(np.float32)
    assert_matches_torch(op, x)


def _random_subnet(space_name: str, seed: int, **overrides) -> tuple[StaticSubnet, int]:
    """A random subnet whose BN statistics are estimated on random images, so activations keep unit scale.

    (With OFA's initialisation and arbitrary statistics the signal shrinks block by block and the logits
    barely depend on the input, which would hide a shifted padding window.)
    """
    space = get_space(space_name, **overrides)
    torch.manual_seed(seed)
    arch = space.sample(np.random.default_rng(seed))
    subnet = OFAMobileNetV3(space).extract(arch)
    images = torch.randn(8, 3, arch.r, arch.r, generator=torch.Generator().manual_seed(seed))
    recalibrate_bn(subnet, [images], 1)
    return subnet.eval(), arch.r


@pytest.mark.parametrize(("space_name", "seed", "overrides"), [
    ("tiny-mbv3", 0, {}),
    ("tiny-mbv3", 1, {"resolutions": (25, 33)}),  # odd sizes: SAME at stride 2 where it equals PyTorch
    ("ofa-mbv3-w1.0", 2, {"resolutions": (64, 96)}),
], ids=["tiny", "tiny-odd", "ofa-w1.0"])
def test_whole_subnet_matches_pytorch(space_name: str, seed: int, overrides: dict) -> None:
    subnet, r = _random_subnet(space_name, seed, **overrides)
    x = np.random.default_rng(seed).standard_normal((1, 3, r, r)).astype(np.float32)
    assert_matches_torch(subnet, x)
    # the feature map entering the head (magnitudes up to ~10: fp32 summation order differs by ~1e-5 relative)
    features = StaticSubnet(*list(subnet)[:-3]).eval()
    assert_matches_torch(features, x, relative=True)


def test_padding_is_explicit_only_where_same_would_differ() -> None:
    sig = OpSignature("expanded_conv", in_hw=26, in_c=16, out_hw=13, out_c=24, mid_c=48, kernel=5, stride=2,
                      act="relu")
    op = static_op(sig)
    even = op_codes(module_to_tflite(op, (1, 16, 26, 26)))
    odd = op_codes(module_to_tflite(op, (1, 16, 25, 25)))
    assert even == ["CONV_2D", "PAD", "DEPTHWISE_CONV_2D", "CONV_2D"]
    assert odd == ["CONV_2D", "DEPTHWISE_CONV_2D", "CONV_2D"]
    stride1 = OpSignature("expanded_conv", in_hw=26, in_c=16, out_hw=26, out_c=16, mid_c=48, kernel=5, act="h_swish",
                          residual=True)
    assert "PAD" not in op_codes(module_to_tflite(static_op(stride1), (1, 16, 26, 26)))


def test_depthwise_kernels_over_25_taps_are_split_into_row_bands() -> None:
    """k7 (49 taps) runs ~7x faster under XNNPACK as three bands of at most 25 taps (3, 3 and 1 rows) on one
    explicitly padded input, added, then activated; on maps smaller than the kernel it is first trimmed to the
    taps that reach a pixel; every k, stride, size and activation matches PyTorch."""
    sig = OpSignature("expanded_conv", in_hw=26, in_c=16, out_hw=26, out_c=16, mid_c=48, kernel=7, act="h_swish",
                      residual=True)
    assert op_codes(module_to_tflite(static_op(sig), (1, 16, 26, 26))) == [
        "CONV_2D", "HARD_SWISH", "PAD", "SLICE", "DEPTHWISE_CONV_2D", "SLICE", "DEPTHWISE_CONV_2D", "SLICE",
        "DEPTHWISE_CONV_2D", "ADD", "ADD", "HARD_SWISH", "CONV_2D", "ADD"]
    rng = np.random.default_rng(0)
    for k, stride, size, act in ((7, 1, 10, "relu"), (7, 2, 10, None), (7, 2, 9, "h_swish"), (9, 1, 8, "relu"),
                                 (9, 2, 11, None), (7, 1, 3, "relu"), (7, 1, 2, "h_swish"), (7, 2, 2, None)):
        c = 12
        weight = rng.standard_normal((c, 1, k, k)).astype(np.float32)
        bias = rng.standard_normal(c).astype(np.float32)
        graph = Graph(input="x", input_shape=(1, c, size, size))
        graph.nodes.append(Conv("x", "y", weight, bias, stride, k // 2, c, act))
        graph.output = "y"
        x = rng.standard_normal((1, c, size, size)).astype(np.float32)
        y = torch.nn.functional.conv2d(torch.from_numpy(x), torch.from_numpy(weight), torch.from_numpy(bias),
                                       stride=stride, padding=k // 2, groups=c)
        y = {"relu": torch.relu, "h_swish": torch.nn.functional.hardswish, None: lambda v: v}[act](y).numpy()
        data = graph_to_tflite(graph)
        reach = min(k, 2 * size - 1)  # on maps smaller than the kernel only the taps that reach a pixel are kept
        expected = 1 if reach * reach <= 25 else -(-reach // (25 // reach))
        assert op_codes(data).count("DEPTHWISE_CONV_2D") == expected, (k, size, op_codes(data))
        np.testing.assert_allclose(run_tflite(data, x), y, rtol=0, atol=ATOL)


def test_model_structure() -> None:
    sig = OpSignature("expanded_conv", in_hw=9, in_c=8, out_hw=5, out_c=16, mid_c=24, kernel=3, stride=2, se=True,
                      act="h_swish")
    data = module_to_tflite(static_op(sig), (1, 8, 9, 9))
    assert tfl.Model.ModelBufferHasIdentifier(data, 0)
    model = tfl.ModelT.InitFromPackedBuf(data, 0)
    assert model.version == 3
    assert model.buffers[0].data is None  # the schema's empty sentinel
    graph = model.subgraphs[0]
    tensors = {t.name.decode(): t for t in graph.tensors}
    assert graph.tensors[graph.inputs[0]].name == b"input" and list(tensors["input"].shape) == [1, 9, 9, 8]
    assert graph.tensors[graph.outputs[0]].name == b"output" and list(tensors["output"].shape) == [1, 5, 5, 16]
    weights = {name: list(t.shape) for name, t in tensors.items() if name.endswith("/weights")}
    assert sorted(weights.values()) == sorted([[24, 1, 1, 8], [1, 3, 3, 24], [8, 1, 1, 24], [24, 1, 1, 8],
                                               [16, 1, 1, 24]])
    for t in graph.tensors:  # constants carry data, activations use buffer 0
        is_const = t.name.decode().rsplit("/", 1)[-1] in ("weights", "bias", "axes", "one_sixth", "paddings")
        assert (t.buffer != 0) == is_const and (model.buffers[t.buffer].data is not None) == is_const
    assert op_codes(data).count("HARD_SWISH") == 2 and "MEAN" in op_codes(data)
    (signature,) = model.signatureDefs
    assert signature.signatureKey == b"serving_default"
    runner = Interpreter(model_content=data).get_signature_runner("serving_default")
    x = np.zeros((1, 9, 9, 8), np.float32)
    assert runner(input=x)["output"].shape == (1, 5, 5, 16)


def test_metadata_round_trip() -> None:
    meta = {"hwnas": json.dumps({"arch": {"ks": [3, 5], "r": 32}, "predicted_latency_ms": 1.25}),
            "note": "ünïcode ✓"}
    data = module_to_tflite(static_op(OpSignature("AvgPool2D", in_hw=4, in_c=8, out_hw=1, out_c=8)), (1, 8, 4, 4),
                            metadata=meta)
    assert read_tflite_metadata(data) == meta
    assert read_tflite_metadata(module_to_tflite(static_op(OpSignature("AvgPool2D", in_hw=4, in_c=8, out_hw=1,
                                                                       out_c=8)), (1, 8, 4, 4))) == {}
    with pytest.raises(ValueError, match="TFL3"):
        read_tflite_metadata(b"\0" * 32)
    with pytest.raises(TypeError, match="str -> str"):
        module_to_tflite(static_op(OpSignature("AvgPool2D", in_hw=4, in_c=8, out_hw=1, out_c=8)), (1, 8, 4, 4),
                         metadata={"x": 1})  # type: ignore[dict-item]


def test_batch_dimension_is_taken_from_the_graph() -> None:
    sig = OpSignature("Logits", in_hw=1, in_c=32, out_hw=0, out_c=10)
    op = static_op(sig)
    x = np.random.default_rng(0).standard_normal((3, 32, 1, 1)).astype(np.float32)
    assert_matches_torch(op, x)


def test_empty_graph_is_rejected() -> None:
    with pytest.raises(ValueError, match="no nodes"):
        graph_to_tflite(Graph(input="input", input_shape=(1, 3, 8, 8)))


def test_graph_lowering_is_what_is_written() -> None:
    """module_to_tflite is lower + graph_to_tflite: the same bytes either way."""
    op = static_op(OpSignature("Conv_2", in_hw=1, in_c=16, out_hw=1, out_c=32, act="h_swish"))
    assert module_to_tflite(op, (1, 16, 1, 1)) == graph_to_tflite(lower(op, (1, 16, 1, 1)))


def test_hard_swish_can_be_written_as_add_and_mul_for_full_integer_files() -> None:
    """The form full-integer files are quantised from: no HARD_SWISH op (LiteRT's XNNPACK declines it in int8),
    the same numbers as the plain file and PyTorch, and once quantised to full integer one XNNPACK partition."""
    sig = OpSignature("expanded_conv", in_hw=10, in_c=16, out_hw=10, out_c=16, mid_c=48, kernel=7, act="h_swish",
                      se=True, residual=True)
    module, shape = static_op(sig, seed=1), (1, 16, 10, 10)
    plain, decomposed = module_to_tflite(module, shape), module_to_tflite(module, shape, decompose_hard_swish=True)
    assert "HARD_SWISH" in op_codes(plain) and "HARD_SWISH" not in op_codes(decomposed)
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    np.testing.assert_allclose(run_tflite(decomposed, x), run_tflite(plain, x), rtol=0, atol=ATOL)
    assert_matches_torch(module, x)
    pytest.importorskip("ai_edge_quantizer")
    from hwnas.formats.quantize import tflite_int8

    calibration = np.random.default_rng(1).standard_normal((8, 10, 10, 16)).astype(np.float32)  # an op: 16 channels
    partitions = {}
    for name, data in (("plain", plain), ("decomposed", decomposed)):
        interpreter = Interpreter(model_content=tflite_int8(data, calibration, mode="static"), num_threads=1)
        interpreter.allocate_tensors()
        partitions[name] = [op["op_name"] for op in interpreter._get_ops_details()].count("DELEGATE")
    assert partitions["decomposed"] == 1 and partitions["plain"] > 1, partitions
