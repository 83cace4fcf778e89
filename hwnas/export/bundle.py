"""The deploy bundle: everything a board or a phone app needs next to the model files, and nothing of hwnas.

``run.py`` is ``bundle_run.py`` copied verbatim and ``png.py`` is hwnas's stdlib PNG decoder: with numpy and
one runtime (onnxruntime, ai_edge_litert or tflite_runtime) the folder classifies images on its own.
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..atomic import write_json_atomic, write_text_atomic
from .subnet import PreparedSubnet

HERE = Path(__file__).resolve().parent


def write_bundle(out: Path, subnet: PreparedSubnet, files: Mapping[str, str], arch_info: Mapping[str, Any]) -> None:
    """``run.py``, ``png.py``, ``labels.json``, ``preprocess.json``, ``arch.json`` and ``README.md`` into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    for source, name in ((HERE / "bundle_run.py", "run.py"), (HERE.parent / "data" / "png.py", "png.py")):
        write_text_atomic(out / name, source.read_text(encoding="utf-8"))
    write_json_atomic(out / "labels.json", list(subnet.classes))
    write_json_atomic(out / "preprocess.json", {
        "resolution": subnet.resolution, **subnet.preprocessing.to_dict(),
        "formula": "(x/255 - mean)/std per channel (x uint8; (x - mean)/std for floats in 0..1), then a bilinear "
                   "resize to resolution x resolution (antialiased when shrinking, align_corners=False)",
    })
    write_json_atomic(out / "arch.json", dict(arch_info))
    write_text_atomic(out / "README.md", _readme(subnet, files))


def _readme(subnet: PreparedSubnet, files: Mapping[str, str]) -> str:
    listing = "\n".join(f"- `{name}`: {what}" for name, what in files.items())
    preferred = [n for n in ("model_int8.tflite", "model.tflite", "model.onnx") if n in files]
    example = preferred[0] if preferred else next(iter(files), "model.onnx")
    r = subnet.resolution
    return f"""# hwnas deploy bundle: `{subnet.space.name}` subnet at {r}×{r}

Classes: {", ".join(subnet.classes[:20])}{" …" if len(subnet.classes) > 20 else ""}. Arch, MACs, predicted and
measured latencies: `arch.json`; verification against PyTorch: `report.json`.

{listing}
- `run.py`: classify images with any model file here; `png.py`: the PNG reader it uses
- `labels.json`, `preprocess.json`: class names; the input normalisation and resolution

## Run it (numpy + one runtime; no torch, no hwnas)

```bash
pip install numpy ai-edge-litert        # or: numpy onnxruntime   (or numpy tflite-runtime on older boards)
python run.py {example} photo.png       # one PNG (other formats need Pillow)
python run.py model.onnx batch.npy      # N×H×W×3 uint8 (0–255) or float (0–1) images
python run.py {example} photo.png --top 3 --json
```

Each line printed: image index, class id, label, probability. Inputs of any size are resized to {r}×{r}.

## Raspberry Pi / edge board

Copy the folder (`scp -r bundle pi@raspberrypi.local:`), then on the board:
`python3 -m venv env && env/bin/pip install numpy ai-edge-litert` and run `env/bin/python run.py {example} image.png`.
`--threads N` sets the runtime's threads (the latencies in `arch.json` were measured with the LUT's thread count).

## Android / iOS app

Put `model.tflite` (or `model_int8.tflite`) in the app's assets and run it with the LiteRT Interpreter:
input `[1, {r}, {r}, 3]` NHWC, float32 values `(pixel/255 - mean)/std` with `mean`/`std` from `preprocess.json`
(the int8 file takes int8: quantise with the input tensor's scale and zero point, as `run.py` does);
the output is `[1, {len(subnet.classes)}]` logits in the order of `labels.json`. The same facts are stored in
the files' own metadata (`hwnas.*` entries).
"""

