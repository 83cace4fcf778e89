"""Static int8 quantisation of the exported fp32 files, calibrated on real training images.

- ONNX: onnxruntime's ``quantize_static`` in QDQ form (int8 weights per output channel, uint8 activations
  with ranges at the 99.999th percentile of the calibration activations); the input and output stay float32,
  so the file drops in where the fp32 one was. uint8 activations ("U8S8") because onnxruntime's x86 CPU
  kernels are built for them: the largest tiny-mbv3 subnet, 1 thread, Intel Xeon with AVX-512 VNNI, ran
  14.4 ms with int8 activations (S8S8) and 1.87 ms with uint8 (fp32: 1.67 ms); QOperator instead of QDQ,
  uint8 weights, per-tensor weights or leaving HardSwish/Add/Mul in float were no faster (1.86–2.25 ms).
- TFLite: ai-edge-quantizer, ``dynamic`` (int8 weights, activations quantised at run time; the default for
  CPUs) or ``static`` (``static_wi8_ai8``: full integer, int8 input and output with their scale and zero point
  in the tensor details, which the bundle's ``run.py`` applies). The hwnas metadata of the fp32 file is carried.

Both take float calibration batches already normalised and resized exactly as inference will see them.
``onnx_int8`` / ``tflite_int8`` return the quantised bytes (the latency profiler quantises one op at a time,
``hwnas profile --precision int8``); ``quantize_onnx`` / ``quantize_tflite`` write them atomically (export).
A format-level module: export and the latency layer both use it.
"""
from __future__ import annotations

import contextlib
import io
import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np

from ..atomic import write_bytes_atomic


def _check_calibration(images: np.ndarray, layout: str, channels: int | None = 3) -> np.ndarray:
    """A float32 ``layout`` batch; ``channels`` None accepts any channel count (an op's input, not images)."""
    images = np.ascontiguousarray(images, dtype=np.float32)
    channel_axis = 1 if layout == "NCHW" else 3
    if images.ndim != 4 or len(images) == 0 or (channels is not None and images.shape[channel_axis] != channels):
        raise ValueError(f"calibration images must be a non-empty {layout} batch with {channels or 'any number of'} "
                         f"channels; got {images.shape}")
    if not np.isfinite(images).all():
        raise ValueError("calibration images contain NaN or infinity")
    return images


ONNX_CALIB_PERCENTILE = 99.999


class _Batches:
    """onnxruntime's CalibrationDataReader protocol over one array, in batches of ``batch``."""

    def __init__(self, name: str, images: np.ndarray, batch: int = 16) -> None:
        self._iter: Iterator[dict[str, np.ndarray]] = iter(
            [{name: images[i:i + batch]} for i in range(0, len(images), batch)])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._iter, None)

    def rewind(self) -> None:  # pragma: no cover - only called by calibration methods hwnas does not use
        raise NotImplementedError


def quantize_onnx(fp32: bytes, calibration_nchw: np.ndarray, out: str | os.PathLike[str]) -> Path:
    """:func:`onnx_int8` of ``fp32`` calibrated on images (``calibration_nchw``), written atomically to ``out``."""
    return write_bytes_atomic(out, onnx_int8(fp32, _check_calibration(calibration_nchw, "NCHW")))


def onnx_int8(fp32: bytes, calibration_nchw: np.ndarray) -> bytes:
    """int8 QDQ ONNX of ``fp32`` (model bytes) calibrated on ``calibration_nchw`` (NCHW float batches).

    Activation ranges are the 99.999th percentile of the calibration activations, not their min/max: on the
    quick CIFAR-10 supernet, 3 subnets, 500 test images, top-1 agreement with fp32 went 0.974/0.982/0.986
    (MinMax) → 0.988/0.986/0.994 (Percentile); Entropy and a moving-average MinMax did no better, and keeping
    the first and last layers in float helped less than percentile ranges."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    images = _check_calibration(calibration_nchw, "NCHW", channels=None)
    model = onnx.load_from_string(fp32)
    input_name = model.graph.input[0].name
    batch_dim = model.graph.input[0].type.tensor_type.shape.dim[0]
    batch = batch_dim.dim_value if batch_dim.HasField("dim_value") else 16  # a fixed batch must be honoured
    with tempfile.TemporaryDirectory(prefix="hwnas-quant-") as tmp:
        source, target = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        source.write_bytes(fp32)
        prepared = Path(tmp) / "prepared.onnx"  # shape inference + graph cleanup, as onnxruntime recommends
        quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
        with contextlib.redirect_stdout(io.StringIO()):  # the percentile calibrator prints its histogram setup
            quantize_static(str(prepared), str(target), _Batches(input_name, images, batch), quant_format=QuantFormat.QDQ,
                            per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            calibrate_method=CalibrationMethod.Percentile,
                            extra_options={"ActivationSymmetric": False, "WeightSymmetric": True,
                                           "CalibPercentile": ONNX_CALIB_PERCENTILE})
        quantized = onnx.load(str(target))
    props = {p.key: p.value for p in model.metadata_props}
    props["hwnas.precision"] = (f"int8 (onnxruntime quantize_static, QDQ, uint8 activations, per-channel int8 weights, "
                                f"activation ranges at the {ONNX_CALIB_PERCENTILE}th percentile)")
    onnx.helper.set_model_props(quantized, props)
    return quantized.SerializeToString()


TFLITE_MODES = {
    # mode: (recipe, what the file holds)
    "dynamic": ("dynamic_wi8_afp32", "int8 weights per channel, activations quantised at run time (dynamic range)"),
    "static": ("static_wi8_ai8", "int8 weights and activations, int8 input/output (calibrated)"),
}


def quantize_tflite(fp32: bytes, calibration_nhwc: np.ndarray, out: str | os.PathLike[str],
                    metadata: Mapping[str, str] | None = None, mode: str = "dynamic") -> Path:
    """:func:`tflite_int8` of ``fp32`` calibrated on images (``calibration_nhwc``), written atomically to ``out``."""
    return write_bytes_atomic(out, tflite_int8(fp32, _check_calibration(calibration_nhwc, "NHWC"), metadata, mode))


def tflite_int8(fp32: bytes, calibration_nhwc: np.ndarray, metadata: Mapping[str, str] | None = None,
                mode: str = "dynamic") -> bytes:
    """int8 TFLite of ``fp32`` (flatbuffer bytes; batch 1) via ai-edge-quantizer.

    ``static`` is full integer (what integer-only NPUs need), calibrated image by image on ``calibration_nhwc``;
    ``dynamic`` keeps float activations and quantises them on the fly. Measured on the quick CIFAR-10 supernet
    (benchmarks/RESULTS.md): static agreed with PyTorch's top-1 on 93.8–97.6% of test images (below the 98%
    check); dynamic agreed on 98.8–100% — so CPU targets get ``dynamic`` by default. Export quantises static
    files from the TFLite form with h-swish as ADD/MUL: LiteRT 2.3's XNNPACK declines int8 HARD_SWISH, which
    cut the largest zoo subnet into 28 partitions (3.92 ms); decomposed it is one (2.30 ms, fp32 2.28 ms).
    """
    if mode not in TFLITE_MODES:
        raise ValueError(f"TFLite int8 mode {mode!r}; choose one of {list(TFLITE_MODES)}")
    try:
        from ai_edge_quantizer import quantizer, recipe
    except ImportError as error:
        raise RuntimeError("int8 TFLite needs ai-edge-quantizer (pip install ai-edge-quantizer); "
                           f"import failed: {error}") from error
    images = _check_calibration(calibration_nhwc, "NHWC", channels=None)
    recipe_name, description = TFLITE_MODES[mode]
    with tempfile.TemporaryDirectory(prefix="hwnas-quant-") as tmp:
        source, target = Path(tmp) / "fp32.tflite", Path(tmp) / "int8.tflite"
        source.write_bytes(fp32)
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            # the quantiser prints a size summary and progress bars; errors still raise
            engine = quantizer.Quantizer(str(source))
            engine.load_quantization_recipe(getattr(recipe, recipe_name)())
            if mode == "static":
                samples = [{"input": images[i:i + 1]} for i in range(len(images))]
                result = engine.quantize(engine.calibrate({"serving_default": samples}))
            else:
                result = engine.quantize()
            result.export_model(str(target), overwrite=True)
        data = target.read_bytes()
    from .tflite_writer import read_tflite_metadata, with_metadata

    carried = {**read_tflite_metadata(data), **(metadata or {}),
               "hwnas.precision": f"int8 ({description}; ai-edge-quantizer {recipe_name})"}
    return with_metadata(data, carried)
