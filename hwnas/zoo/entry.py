"""Finding and checking a zoo model: ``zoo/<name>/zoo.json`` and the files it lists, each with its SHA-256.

A zoo model is a trained supernet shipped with what search and deployment need beside it: its accuracy
predictor, the measured accuracies, the LUT-independent metadata (space, classes, normalisation, input
sizes) and its training record. :func:`load` refuses, naming the file and the value, a folder whose
files are missing, damaged or edited (hash), or whose supernet belongs to another space or class count
than its ``zoo.json`` says — a user must never search one model with another's predictor.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from safetensors import SafetensorError, safe_open

FORMAT = "hwnas-zoo"
FORMAT_VERSION = "1"
MANIFEST = "zoo.json"
REPO_ZOO = Path(__file__).resolve().parents[2] / "zoo"
FILES = ("supernet", "accuracy_predictor")  # what every entry ships; others (the dataset, the record) are listed too


def zoo_root() -> Path:
    """The folder holding the zoo: ``$HWNAS_ZOO`` when set, else the repository's ``zoo/``."""
    return Path(os.environ.get("HWNAS_ZOO") or REPO_ZOO)


def list_models(root: Path | None = None) -> list[str]:
    """Names of the zoo models under ``root`` (default :func:`zoo_root`): the folders holding a ``zoo.json``."""
    root = zoo_root() if root is None else root
    return sorted(p.parent.name for p in root.glob(f"*/{MANIFEST}")) if root.is_dir() else []


def sha256_of(path: Path) -> str:
    sha = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            sha.update(block)
    return sha.hexdigest()


@dataclass(frozen=True)
class ZooModel:
    """A checked zoo entry: where it is and what its ``zoo.json`` says. Weights load on demand."""

    name: str
    folder: Path
    metadata: dict[str, Any]

    def path(self, key: str) -> Path:
        """The file ``key`` of ``metadata["files"]`` (e.g. ``"supernet"``)."""
        return self.folder / self.metadata["files"][key]["path"]

    @property
    def supernet_path(self) -> Path:
        return self.path("supernet")

    @property
    def predictor_path(self) -> Path:
        return self.path("accuracy_predictor")

    def supernet(self, device: str = "cpu") -> Any:
        """The trained supernet (``hwnas.nn.OFAMobileNetV3``), on ``device``."""
        from ..nn.checkpoint import load_supernet

        return load_supernet(self.supernet_path, device)

    def predictor(self) -> Any:
        """The accuracy predictor (``hwnas.search.AccuracyPredictor``) fitted on this supernet's subnets."""
        from ..search.accuracy_predictor import AccuracyPredictor
        from ..space import get_space

        return AccuracyPredictor.load(self.predictor_path, get_space(self.metadata["space"]))


def find(name: str, root: Path | None = None) -> Path:
    """The folder of zoo model ``name``: a name under the zoo root, or a path to a folder with a ``zoo.json``."""
    given = Path(name)
    if (given / MANIFEST).is_file():
        return given
    root = zoo_root() if root is None else root
    folder = root / name
    if os.sep in name or "/" in name or not (folder / MANIFEST).is_file():
        known = list_models(root)
        raise ValueError(f"{name!r}: no zoo model of that name in {root} (it holds: {', '.join(known) or 'none'})")
    return folder


def load(name: str, root: Path | None = None, check_hashes: bool = True) -> ZooModel:
    """Find zoo model ``name`` and check it: manifest format, every listed file present with its SHA-256,
    and the supernet file's space, space hash and class count equal to the manifest's."""
    folder = find(name, root)
    manifest = folder / MANIFEST
    try:
        metadata = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{manifest}: not a readable zoo manifest ({error})") from None
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
        raise ValueError(f"{manifest}: not an hwnas zoo manifest (format={metadata.get('format')!r})"
                         if isinstance(metadata, dict) else f"{manifest}: not a JSON object")
    if metadata.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{manifest}: format_version={metadata.get('format_version')!r} is not supported; "
                         f"this hwnas reads {FORMAT_VERSION!r}")
    files = metadata.get("files")
    if not isinstance(files, dict) or any(key not in files for key in FILES):
        raise ValueError(f"{manifest}: 'files' must list {list(FILES)}")
    for key, entry in files.items():
        path = folder / entry["path"]
        if not path.is_file():
            raise ValueError(f"{manifest}: {key} file {path} is missing")
        digest = sha256_of(path) if check_hashes else entry["sha256"]
        if digest != entry["sha256"]:
            raise ValueError(f"{path}: SHA-256 {digest} differs from {entry['sha256']} in {manifest} "
                             f"(file damaged, edited or replaced)")
    model = ZooModel(folder.name, folder, metadata)
    _check_supernet_header(model)
    return model


def _check_supernet_header(model: ZooModel) -> None:
    """The supernet file's own metadata (read without its tensors) agrees with the manifest."""
    path = model.supernet_path
    try:
        with safe_open(str(path), framework="pt") as reader:
            header = reader.metadata() or {}
    except SafetensorError as error:
        raise ValueError(f"{path}: not a readable safetensors file ({error})") from None
    meta = model.metadata
    expected = {"space": meta.get("space"), "space_hash": meta.get("space_hash"),
                "num_classes": str(meta.get("num_classes"))}
    for key, value in expected.items():
        if header.get(key) != value:
            raise ValueError(f"{path}: {key}={header.get(key)!r}, but {model.folder / MANIFEST} says {value!r}")
    classes = meta.get("classes")
    if not isinstance(classes, list) or len(classes) != int(meta["num_classes"]):
        raise ValueError(f"{model.folder / MANIFEST}: {len(classes or [])} class names for "
                         f"num_classes={meta['num_classes']}")


def resolve_zoo(text: str, root: Path | None = None) -> ZooModel | None:
    """What a ``--supernet`` argument names: None for an existing file, else the checked zoo model of that name."""
    if Path(text).is_file():
        return None
    try:
        find(text, root)
    except ValueError as error:
        raise ValueError(f"--supernet {text!r}: no such file, and {error}") from None
    return load(text, root)


def resolve_supernet(text: str, root: Path | None = None) -> str:
    """The supernet file a ``--supernet`` argument names: an existing file as given, else a zoo model's."""
    model = resolve_zoo(text, root)
    return text if model is None else str(model.supernet_path)
