"""Classify images with an exported network: the ``run.py`` shipped inside a deploy bundle.

Usage::

    python run.py MODEL_FILE INPUT [--top K] [--json] [--batch-size N] [--threads T]

This file is copied verbatim into the bundle folder, next to the model files (``model.onnx``,
``model_int8.onnx``, ``model.tflite``, ``model_int8.tflite``), ``preprocess.json``, ``labels.json`` and
``png.py``. It runs on a board (Raspberry Pi, phone shell, ...) that has only numpy plus one runtime:
``onnxruntime`` for ``.onnx`` files, ``ai_edge_litert`` (or ``tflite_runtime``) for ``.tflite`` files. It never
imports torch or hwnas; the runtime is imported only when a model of its kind is loaded.

INPUT is an image file (PNG via the bundled ``png.py``; other formats need Pillow) or a ``.npy`` holding one
H×W×C image or an N×H×W×C batch, uint8 (0..255) or float (0..1). Preprocessing matches the trainer
(``hwnas.data.transforms``): normalise per channel, then bilinear resize to the trained resolution,
antialiased when shrinking as ``torch.nn.functional.interpolate(..., antialias=True)`` is.

Prints one line per image, ``index<TAB>class_id<TAB>label<TAB>probability`` (``--top K`` appends K-1 more
``class_id<TAB>label<TAB>probability`` triples), or with ``--json`` a single JSON list. Exit status: 0 on
success, 2 on a user error (bad input, bad bundle, missing runtime), reported on stderr without a traceback.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
MODEL_SUFFIXES = (".onnx", ".tflite")
FLOAT_TOLERANCE = 1e-3  # float images may overshoot [0, 1] by this much (rounding in whatever wrote them)
DEFAULT_BATCH = 64


class RunError(ValueError):
    """A user-facing error (bad input, bad bundle, missing runtime): ``main`` prints it and exits 2."""


# --- bundle files ---------------------------------------------------------------------------------------------
def _read_json(path: Path) -> Any:
    if not path.is_file():
        raise RunError(f"{path}: file not found (the bundle must hold it next to the model)")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RunError(f"{path}: not readable JSON ({exc})") from None


def load_labels(folder: str | Path) -> list[str]:
    """Class names from ``folder/labels.json`` (a JSON list, index = class id); ``[]`` when the file is absent,
    in which case outputs show the class id as the label."""
    path = Path(folder) / "labels.json"
    if not path.is_file():
        return []
    labels = _read_json(path)
    if not isinstance(labels, list):
        raise RunError(f"{path}: expected a JSON list of class names, got {type(labels).__name__}")
    return [str(label) for label in labels]


def load_preprocess(folder: str | Path) -> dict[str, Any]:
    """``folder/preprocess.json`` validated: ``{"resolution": int, "mean": [3 floats], "std": [3 floats]}``."""
    path = Path(folder) / "preprocess.json"
    config = _read_json(path)
    if not isinstance(config, dict):
        raise RunError(f"{path}: expected a JSON object, got {type(config).__name__}")
    for key in ("resolution", "mean", "std"):
        if key not in config:
            raise RunError(f"{path}: missing key {key!r}")
    resolution = config["resolution"]
    if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < 1:
        raise RunError(f"{path}: resolution must be a positive integer, got {resolution!r}")
    for key in ("mean", "std"):
        values = config[key]
        if (not isinstance(values, list) or len(values) != 3
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)):
            raise RunError(f"{path}: {key} must be a list of 3 numbers (RGB), got {values!r}")
    if any(v <= 0 for v in config["std"]):
        raise RunError(f"{path}: std values must be positive, got {config['std']!r}")
    return {"resolution": resolution, "mean": [float(v) for v in config["mean"]],
            "std": [float(v) for v in config["std"]]}


# --- input images ---------------------------------------------------------------------------------------------
def _decode_png(path: Path) -> np.ndarray:
    """The bundled ``png.py`` (loaded by file path, so a pip package named ``png`` cannot shadow it), else Pillow."""
    decoder = HERE / "png.py"
    error = "png.py is not next to run.py"
    if decoder.is_file():
        spec = importlib.util.spec_from_file_location("_bundle_png", decoder)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        try:
            return np.asarray(module.decode_png(path))
        except ValueError as exc:  # e.g. 16-bit or interlaced: Pillow may still read it
            error = str(exc)
    image = _decode_pillow(path)
    if image is None:
        raise RunError(f"{path}: cannot decode this PNG ({error}) and Pillow is not installed; "
                       "convert it to an 8-bit PNG or save the pixels as .npy")
    return image


def _decode_pillow(path: Path) -> np.ndarray | None:
    try:
        from PIL import Image
    except ImportError:
        return None
    try:
        with Image.open(path) as image:
            if image.mode not in ("L", "LA", "RGB", "RGBA"):
                image = image.convert("RGBA" if "A" in image.getbands() else "RGB")
            return np.asarray(image)
    except OSError as exc:
        raise RunError(f"{path}: Pillow cannot read this image ({exc})") from None


def _as_nhwc_rgb(array: np.ndarray, path: Path) -> np.ndarray:
    """Validate dtype/shape/range and return an N×H×W×3 batch (grey repeated, alpha dropped)."""
    if array.dtype != np.uint8 and not np.issubdtype(array.dtype, np.floating):
        raise RunError(f"{path}: dtype {array.dtype} is not supported; use uint8 (0..255) or float (0..1)")
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim == 3:
        array = array[None]
    if array.ndim != 4:
        raise RunError(f"{path}: expected an H×W×C image or an N×H×W×C batch, got ndim {array.ndim} "
                       f"(shape {array.shape})")
    channels = array.shape[-1]
    if channels not in (1, 2, 3, 4):
        raise RunError(f"{path}: expected 1 (grey), 2 (grey+alpha), 3 (RGB) or 4 (RGBA) channels in the last axis, "
                       f"got {channels} (shape {array.shape})")
    if 0 in array.shape:
        raise RunError(f"{path}: empty input (shape {array.shape})")
    if np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all():
            raise RunError(f"{path}: float input holds NaN or infinite values")
        low, high = float(array.min()), float(array.max())
        if low < -FLOAT_TOLERANCE or high > 1 + FLOAT_TOLERANCE:
            raise RunError(f"{path}: float input must lie in [0, 1], got values in [{low:g}, {high:g}]; "
                           "pass 0..255 pixels as uint8 or divide by 255")
        array = np.clip(array, 0.0, 1.0)
    if channels <= 2:
        array = np.repeat(array[..., :1], 3, axis=-1)
    return np.ascontiguousarray(array[..., :3])


def read_input(path: str | Path) -> np.ndarray:
    """An image file or ``.npy`` as an N×H×W×3 batch, uint8 (0..255) or float (0..1), validated."""
    path = Path(path)
    if not path.is_file():
        raise RunError(f"{path}: input file not found")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        try:
            array = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise RunError(f"{path}: not a readable .npy array ({exc})") from None
    elif suffix == ".png":
        array = _decode_png(path)
    else:
        image = _decode_pillow(path)
        if image is None:
            raise RunError(f"{path}: reading {suffix or 'extension-less'} images needs Pillow, which is not installed; "
                           "convert the image to PNG or save the pixels as .npy")
        array = image
    return _as_nhwc_rgb(np.asarray(array), path)


# --- preprocessing (mirrors hwnas.data.transforms.normalize / resize) ------------------------------------------
def _resize_weights(in_size: int, out_size: int, antialias: bool) -> np.ndarray:
    """The float32 (out, in) interpolation matrix of PyTorch's CPU bilinear resize along one axis (align_corners=False).

    ``antialias``: ATen's separable triangle filter (PIL-style) whose support grows with the downscale factor,
    taps normalised per output pixel. Otherwise plain bilinear: the half-pixel source index, clamped at 0.
    Indices and weights are rounded to float32 where ATen rounds them, so results agree to a few float32 ulps.
    """
    f32 = np.float32
    scale = f32(in_size) / f32(out_size)
    weights = np.zeros((out_size, in_size), dtype=np.float32)
    if antialias:
        support = scale if scale >= 1.0 else f32(1.0)  # (interp_size / 2) * scale, interp_size = 2 for bilinear
        invscale = float(f32(1.0 / float(scale))) if scale >= 1.0 else 1.0
        for i in range(out_size):
            center = f32(float(scale) * (i + 0.5))
            first = max(int(float(center - support) + 0.5), 0)
            last = min(int(float(center + support) + 0.5), in_size)
            distance = ((np.arange(first, last, dtype=np.float32) - center).astype(np.float64) + 0.5) * invscale
            distance = np.abs(distance.astype(np.float32))
            row = np.where(distance < 1, f32(1.0) - distance, f32(0.0)).astype(np.float32)
            total = np.add.accumulate(row, dtype=np.float32)[-1] if row.size else f32(0.0)
            weights[i, first:last] = row / total if total != 0 else row
        return weights
    source = np.maximum((float(scale) * (np.arange(out_size) + 0.5) - 0.5).astype(np.float32), f32(0.0))
    low = np.minimum(np.floor(source).astype(np.int64), in_size - 1)
    high = np.minimum(low + 1, in_size - 1)
    frac = np.clip(source - low.astype(np.float32), f32(0.0), f32(1.0))
    rows = np.arange(out_size)
    np.add.at(weights, (rows, low), f32(1.0) - frac)
    np.add.at(weights, (rows, high), frac)
    return weights


def resize_bilinear(x: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """Float N×H×W×C batch resized to ``size`` exactly as ``hwnas.data.transforms.resize`` does it: antialiased
    when either side shrinks, plain bilinear when enlarging, unchanged at the same size. Returns float32."""
    out_h, out_w = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    if x.ndim != 4:
        raise RunError(f"resize_bilinear expects an N×H×W×C batch, got shape {x.shape}")
    if not np.issubdtype(x.dtype, np.floating):
        raise RunError(f"resize_bilinear expects a float batch (normalise first), got dtype {x.dtype}")
    if out_h < 1 or out_w < 1:
        raise RunError(f"resize_bilinear needs a positive size, got {size!r}")
    n, h, w, c = x.shape
    x = np.asarray(x, dtype=np.float32)
    if (h, w) == (out_h, out_w):
        return x
    antialias = out_h < h or out_w < w
    if w != out_w:  # width first, then height: ATen's order
        x = np.matmul(_resize_weights(w, out_w, antialias), x)  # (out_w, w) @ (n, h, w, c) -> (n, h, out_w, c)
    if h != out_h:
        x = np.matmul(_resize_weights(h, out_h, antialias), x.reshape(n, h, out_w * c)).reshape(n, out_h, out_w, c)
    return np.ascontiguousarray(x)


def preprocess(images: np.ndarray, config: dict[str, Any]) -> np.ndarray:
    """uint8 (0..255) or float (0..1) N×H×W×3 -> float32 N×R×R×3 network input: ``(x/255 - mean)/std`` per
    channel, then :func:`resize_bilinear` to ``config["resolution"]``."""
    scale = np.float32(255.0 if images.dtype == np.uint8 else 1.0)
    mean = np.asarray(config["mean"], dtype=np.float32) * scale
    std = np.asarray(config["std"], dtype=np.float32) * scale
    if images.ndim != 4 or images.shape[-1] != mean.size:
        raise RunError(f"preprocess expects an N×H×W×{mean.size} batch, got shape {images.shape}")
    x = (images.astype(np.float32) - mean) / std
    return resize_bilinear(x, int(config["resolution"]))


# --- runtimes -------------------------------------------------------------------------------------------------
def _tflite_interpreter_class() -> Any:
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        try:
            from tflite_runtime.interpreter import Interpreter  # type: ignore[import-not-found,no-redef]
        except ImportError:
            raise RunError("running .tflite models needs ai_edge_litert (pip install ai-edge-litert) "
                           "or tflite_runtime (pip install tflite-runtime)") from None
    return Interpreter


def _quantize(x: np.ndarray, dtype: Any, scale: float, zero_point: int) -> np.ndarray:
    info = np.iinfo(dtype)
    return np.clip(np.round(x / scale + zero_point), info.min, info.max).astype(dtype)


class Model:
    """One model file behind a single call: NHWC float32 batch in, ``[N, classes]`` float32 logits out.

    ``.onnx`` runs on onnxruntime's CPU provider in NCHW, the batch split into chunks of ``batch_size``
    (models have a dynamic batch axis; a fixed one is honoured by padding the last chunk). ``.tflite`` runs
    one image per ``invoke`` in NHWC; int8/uint8 inputs are quantised and int8/uint8 outputs dequantised
    with the tensors' own (scale, zero_point).
    """

    def __init__(self, path: str | Path, threads: int | None = None, batch_size: int = DEFAULT_BATCH) -> None:
        self.path = Path(path)
        self.kind = self.path.suffix.lower()
        if self.kind not in MODEL_SUFFIXES:
            raise RunError(f"{self.path}: unknown model extension {self.path.suffix!r}; expected .onnx or .tflite")
        if not self.path.is_file():
            raise RunError(f"{self.path}: model file not found")
        self.threads = int(threads) if threads is not None else (os.cpu_count() or 1)
        self.batch_size = int(batch_size)
        if self.threads < 1 or self.batch_size < 1:
            raise RunError(f"threads ({self.threads}) and batch size ({self.batch_size}) must be >= 1")
        if self.kind == ".onnx":
            self._open_onnx()
        else:
            self._open_tflite()

    def _open_onnx(self) -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            raise RunError("running .onnx models needs onnxruntime (pip install onnxruntime)") from None
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        try:
            self._session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own exception types
            raise RunError(f"{self.path}: onnxruntime cannot load this model ({exc})") from None
        inp = self._session.get_inputs()[0]
        if inp.type != "tensor(float)":
            raise RunError(f"{self.path}: the model input is {inp.type}; run.py feeds float32 (NCHW)")
        self._input_name = inp.name
        shape = list(inp.shape)
        self._fixed_batch = shape[0] if isinstance(shape[0], int) and shape[0] > 0 else None
        self.input_hw = tuple(shape[2:4]) if all(isinstance(v, int) for v in shape[2:4]) else None

    def _open_tflite(self) -> None:
        interpreter_class = _tflite_interpreter_class()
        try:
            self._interpreter = interpreter_class(model_path=str(self.path), num_threads=self.threads)
            inp = self._interpreter.get_input_details()[0]
            if int(inp["shape"][0]) != 1:
                self._interpreter.resize_tensor_input(inp["index"], [1, *[int(v) for v in inp["shape"][1:]]])
            self._interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise RunError(f"{self.path}: the TFLite interpreter cannot load this model ({exc})") from None
        self._input = self._interpreter.get_input_details()[0]
        self._output = self._interpreter.get_output_details()[0]
        self.input_hw = (int(self._input["shape"][1]), int(self._input["shape"][2]))

    def logits(self, batch: np.ndarray) -> np.ndarray:
        """Logits ``[N, classes]`` (float32) of a preprocessed N×H×W×3 float32 batch."""
        batch = np.asarray(batch, dtype=np.float32)
        if batch.ndim != 4 or batch.shape[-1] != 3:
            raise RunError(f"Model.logits expects an N×H×W×3 batch, got shape {batch.shape}")
        if self.input_hw is not None and tuple(batch.shape[1:3]) != self.input_hw:
            raise RunError(f"{self.path}: the model takes {self.input_hw[0]}×{self.input_hw[1]} images, "
                           f"got {batch.shape[1]}×{batch.shape[2]}")
        if self.kind == ".onnx":
            return self._logits_onnx(batch)
        return np.stack([self._logits_tflite(image[None]) for image in batch]) if len(batch) else np.zeros((0, 0))

    def _logits_onnx(self, batch: np.ndarray) -> np.ndarray:
        step = self._fixed_batch or self.batch_size
        outputs = []
        for start in range(0, len(batch), step):
            chunk = np.ascontiguousarray(batch[start : start + step].transpose(0, 3, 1, 2))
            count = len(chunk)
            if self._fixed_batch and count < step:
                chunk = np.concatenate([chunk, np.zeros((step - count, *chunk.shape[1:]), np.float32)])
            (out,) = self._session.run(None, {self._input_name: chunk})[:1]
            outputs.append(np.asarray(out, dtype=np.float32).reshape(len(chunk), -1)[:count])
        return np.concatenate(outputs) if outputs else np.zeros((0, 0), np.float32)

    def _logits_tflite(self, image: np.ndarray) -> np.ndarray:
        dtype = self._input["dtype"]
        if dtype in (np.int8, np.uint8):
            scale, zero_point = self._input["quantization"]
            image = _quantize(image, dtype, scale, zero_point)
        self._interpreter.set_tensor(self._input["index"], image.astype(dtype, copy=False))
        self._interpreter.invoke()
        out = self._interpreter.get_tensor(self._output["index"])
        if self._output["dtype"] in (np.int8, np.uint8):
            scale, zero_point = self._output["quantization"]
            out = (out.astype(np.float32) - zero_point) * scale
        return np.asarray(out, dtype=np.float32).reshape(-1)


# --- command line ---------------------------------------------------------------------------------------------
def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float64 (numerically stable)."""
    z = logits.astype(np.float64) - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def _bundle_folder(model_path: Path, name: str) -> Path:
    """The folder holding ``name``: the model's own folder first, then run.py's."""
    for folder in (model_path.resolve().parent, HERE):
        if (folder / name).is_file():
            return folder
    return model_path.resolve().parent


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="run.py", description="Classify images with a deploy bundle's model.")
    parser.add_argument("model", help="model.onnx, model_int8.onnx, model.tflite or model_int8.tflite")
    parser.add_argument("input", help="an image file (PNG; others need Pillow) or a .npy, H×W×3 or N×H×W×3")
    parser.add_argument("--top", type=int, default=1, metavar="K", help="classes listed per image (default 1)")
    parser.add_argument("--json", action="store_true", help="print one JSON list instead of tab-separated lines")
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH, metavar="N",
                        help=f"images per onnxruntime call (default {DEFAULT_BATCH}); .tflite runs one at a time")
    parser.add_argument("--threads", type=int, default=None, metavar="T", help="runtime threads (default: all CPUs)")
    return parser


def _classify(args: argparse.Namespace) -> list[dict[str, Any]]:
    if args.top < 1:
        raise RunError(f"--top must be >= 1, got {args.top}")
    model_path = Path(args.model)
    model = Model(model_path, threads=args.threads, batch_size=args.batch_size)
    config = load_preprocess(_bundle_folder(model_path, "preprocess.json"))
    labels = load_labels(_bundle_folder(model_path, "labels.json"))
    if model.input_hw is not None and model.input_hw != (config["resolution"],) * 2:
        raise RunError(f"preprocess.json resolution {config['resolution']} does not match the model's "
                       f"{model.input_hw[0]}×{model.input_hw[1]} input")
    images = read_input(args.input)
    step = max(args.batch_size, 1)
    logits = np.concatenate([model.logits(preprocess(images[i : i + step], config))
                             for i in range(0, len(images), step)])
    if labels and len(labels) != logits.shape[1]:
        print(f"warning: labels.json has {len(labels)} names for {logits.shape[1]} classes", file=sys.stderr)
    probabilities = softmax(logits)
    results = []
    for index, row in enumerate(probabilities):
        order = np.argsort(-row, kind="stable")[: args.top]
        top = [{"class_id": int(k), "label": labels[k] if k < len(labels) else str(int(k)),
                "probability": float(row[k])} for k in order]
        results.append({"index": index, **top[0], "top": top})
    return results


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 ok, 2 user error)."""
    args = _parser().parse_args(argv)
    try:
        results = _classify(args)
    except RunError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(results))
    else:
        for result in results:
            fields = [str(result["index"])]
            for entry in result["top"]:
                label = " ".join(entry["label"].split())  # a tab or newline in a name would break the columns
                fields += [str(entry["class_id"]), label, f"{entry['probability']:.6f}"]
            print("\t".join(fields))
    return 0


if __name__ == "__main__":
    sys.exit(main())
