"""hwnas.data: loaders (npz, ImageFolder, CIFAR batches via a restricted unpickler), holdout split, transforms,
the resumable BatchLoader and the shipped CIFAR-10 subset. Fast and offline."""

from __future__ import annotations

import os
import pickle
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

import hwnas.data as hd
from hwnas.data.cifar import safe_load_pickle
from hwnas.data.png import decode_png

ROOT = Path(__file__).resolve().parents[1]


def _images(n: int, h: int = 8, w: int = 8, c: int = 3, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, h, w, c), dtype=np.uint8)


def _labels(n: int, k: int = 4) -> np.ndarray:
    return np.arange(n) % k


# ---------------------------------------------------------------- npz

def test_npz_round_trip(tmp_path):
    x, y = _images(12), _labels(12)
    np.savez_compressed(tmp_path / "toy.npz", images=x, labels=y.astype(np.uint8), classes=np.array(["a", "b", "c", "d"]))
    ds = hd.load_dataset("npz", tmp_path / "toy.npz")
    assert ds.images.dtype == np.uint8 and ds.labels.dtype == np.int64
    np.testing.assert_array_equal(ds.images, x)
    np.testing.assert_array_equal(ds.labels, y)
    assert ds.classes == ("a", "b", "c", "d") and len(ds) == 12 and ds.num_classes == 4


def test_npz_greyscale_and_shared_layout(tmp_path):
    x = _images(6, c=1)[..., 0]  # N×H×W like mnist_*.npz
    np.savez(tmp_path / "mnist_train.npz", images=x, labels=_labels(6, 3).astype(np.uint8))
    ds = hd.get_dataset("mnist", tmp_path, "train")
    assert ds.images.shape == (6, 8, 8, 1) and ds.classes[:3] == ("0", "1", "2")


@pytest.mark.parametrize("arrays, match", [
    ({"labels": np.zeros(3, np.uint8)}, "missing array.*images"),
    ({"images": np.zeros((3, 4, 4, 3), np.float32), "labels": np.zeros(3, np.uint8)}, "must be uint8"),
    ({"images": np.zeros((3, 4, 4, 5), np.uint8), "labels": np.zeros(3, np.uint8)}, "C in"),
    ({"images": np.zeros((3, 4, 4, 3), np.uint8), "labels": np.zeros(2, np.uint8)}, "3 images but 2 labels"),
    ({"images": np.zeros((3, 4, 4, 3), np.uint8), "labels": np.array([0, -1, 2])}, "negative label"),
])
def test_npz_bad_inputs_name_file_and_problem(tmp_path, arrays, match):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match=match) as exc:
        hd.load_npz(path)
    assert "bad.npz" in str(exc.value)


def test_npz_missing_and_corrupt(tmp_path):
    with pytest.raises(ValueError, match="nope.npz: no such file"):
        hd.load_npz(tmp_path / "nope.npz")
    (tmp_path / "trunc.npz").write_bytes(b"PK\x03\x04garbage")
    with pytest.raises(ValueError, match="trunc.npz"):
        hd.load_npz(tmp_path / "trunc.npz")
    np.savez(tmp_path / "obj.npz", images=np.array([object()], dtype=object), labels=np.zeros(1))
    with pytest.raises(ValueError, match="obj.npz"):  # object arrays need pickle: refused
        hd.load_npz(tmp_path / "obj.npz")
    with pytest.raises(ValueError, match="unknown dataset kind"):
        hd.load_dataset("tfrecord", tmp_path)


# ---------------------------------------------------------------- ImageFolder / PNG

def _png_bytes(img: np.ndarray, filters: list[int]) -> bytes:
    """Minimal PNG encoder (8-bit RGB / grey) applying the given row filter to each row."""
    h, w, c = img.shape
    bpp, rows, prev = c, [], np.zeros(w * c, np.int32)
    for y in range(h):
        cur = img[y].reshape(-1).astype(np.int32)
        left = np.concatenate([np.zeros(bpp, np.int32), cur[:-bpp]])
        upleft = np.concatenate([np.zeros(bpp, np.int32), prev[:-bpp]])
        f = filters[y % len(filters)]
        if f == 0:
            pred = np.zeros_like(cur)
        elif f == 1:
            pred = left
        elif f == 2:
            pred = prev
        elif f == 3:
            pred = (left + prev) // 2
        else:
            p = left + prev - upleft
            pa, pb, pc = abs(p - left), abs(p - prev), abs(p - upleft)
            pred = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, prev, upleft))
        rows.append(bytes([f]) + ((cur - pred) % 256).astype(np.uint8).tobytes())
        prev = cur

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2 if c == 3 else 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"".join(rows)))
            + chunk(b"IEND", b""))


@pytest.mark.parametrize("c", [1, 3])
def test_builtin_png_decoder_all_filters(tmp_path, c):
    img = _images(1, 7, 9, c, seed=c)[0]
    path = tmp_path / "x.png"
    path.write_bytes(_png_bytes(img, [0, 1, 2, 3, 4]))
    np.testing.assert_array_equal(decode_png(path), img)
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\nxx")
    with pytest.raises(ValueError, match="bad.png"):
        decode_png(tmp_path / "bad.png")


def test_image_folder(tmp_path):
    x = _images(6, seed=3)
    for i, cls in enumerate(["cat", "cat", "cat", "dog", "dog", "eel"]):
        (tmp_path / "train" / cls).mkdir(parents=True, exist_ok=True)
        if i % 2:
            np.save(tmp_path / "train" / cls / f"{i}.npy", x[i])
        else:
            (tmp_path / "train" / cls / f"{i}.png").write_bytes(_png_bytes(x[i], [4, 1, 2]))
    (tmp_path / "train" / "cat" / "notes.txt").write_text("ignored")
    ds = hd.get_dataset("toy", tmp_path, "train")  # falls through to data_dir/train/
    assert ds.classes == ("cat", "dog", "eel")
    np.testing.assert_array_equal(ds.labels, [0, 0, 0, 1, 1, 2])
    np.testing.assert_array_equal(ds.images, x)
    np.save(tmp_path / "train" / "eel" / "odd.npy", _images(1, 4, 4)[0])
    with pytest.raises(ValueError, match="odd.npy: shape"):
        hd.load_dataset("imagefolder", tmp_path / "train")


# ---------------------------------------------------------------- CIFAR python batches

def _fake_batch(path: Path, x: np.ndarray, y: np.ndarray, as_array: bool = False) -> None:
    planes = x.transpose(0, 3, 1, 2).reshape(len(x), -1)  # CIFAR rows: R plane, G plane, B plane
    data = planes if as_array else planes.tobytes()
    batch = {b"batch_label": b"fake", b"labels": [int(v) for v in y], b"data": data,
             b"filenames": [f"{i}.png".encode() for i in range(len(y))]}
    blob = pickle.dumps(batch, protocol=2)
    if as_array:  # the original batches name numpy 1's module path
        blob = blob.replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")
    path.write_bytes(blob)


@pytest.mark.parametrize("as_array", [False, True], ids=["bytes", "ndarray"])
def test_cifar_batches(tmp_path, as_array):
    xs = [_images(4, 32, 32, seed=s) for s in range(6)]
    ys = [_labels(4, 10)[::-1] for _ in range(6)]
    for i in range(5):
        _fake_batch(tmp_path / f"data_batch_{i + 1}", xs[i], ys[i], as_array)
    _fake_batch(tmp_path / "test_batch", xs[5], ys[5], as_array)
    names = [n.encode() for n in hd.CIFAR10_CLASSES]
    (tmp_path / "batches.meta").write_bytes(pickle.dumps({b"label_names": names, b"num_vis": 3072}, protocol=2))
    train = hd.load_dataset("cifar10-batches", tmp_path)
    test = hd.get_dataset("cifar10", tmp_path, "test")
    np.testing.assert_array_equal(train.images, np.concatenate(xs[:5]))
    np.testing.assert_array_equal(train.labels, np.concatenate(ys[:5]))
    np.testing.assert_array_equal(test.images, xs[5])
    assert train.classes == hd.CIFAR10_CLASSES and len(test) == 4
    os.remove(tmp_path / "data_batch_3")
    with pytest.raises(ValueError, match="missing CIFAR-10 batch file.*data_batch_3"):
        hd.load_dataset("cifar10-batches", tmp_path)


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_cifar_malicious_batch_refused_without_executing(tmp_path):
    marker = tmp_path / "pwned"
    payload = {b"data": b"\x00" * 3072, b"labels": [0], b"x": _Evil(marker)}
    (tmp_path / "test_batch").write_bytes(pickle.dumps(payload, protocol=2))
    with pytest.raises(ValueError, match=r"test_batch: refused.*(posix|os|nt)\.system"):
        hd.load_dataset("cifar10-batches", tmp_path, split="test")
    assert not marker.exists()
    (tmp_path / "evil2").write_bytes(pickle.dumps(eval, protocol=2))
    with pytest.raises(ValueError, match=r"(__builtin__|builtins)\.eval"):
        safe_load_pickle(tmp_path / "evil2")
    (tmp_path / "trunc").write_bytes(pickle.dumps({b"data": b"x" * 100}, protocol=2)[:20])
    with pytest.raises(ValueError, match="trunc"):
        safe_load_pickle(tmp_path / "trunc")


# ---------------------------------------------------------------- holdout split

def test_split_is_stratified_disjoint_deterministic():
    labels = np.repeat(np.arange(5), [40, 30, 20, 60, 50])
    ds = hd.ImageDataset(_images(len(labels), 2, 2), labels.astype(np.int64), tuple("abcde"))
    tr_idx, ho_idx = hd.split_indices(ds.labels, 0.1, seed=3)
    assert len(ho_idx) == 20 and len(tr_idx) == 180
    assert not set(tr_idx) & set(ho_idx) and sorted(set(tr_idx) | set(ho_idx)) == list(range(200))
    np.testing.assert_array_equal(np.bincount(labels[ho_idx]), [4, 3, 2, 6, 5])  # proportional per class
    again = hd.split_indices(ds.labels, 0.1, seed=3)
    np.testing.assert_array_equal(again[1], ho_idx)
    assert not np.array_equal(hd.split_indices(ds.labels, 0.1, seed=4)[1], ho_idx)
    train, hold = hd.split_holdout(ds, 23, seed=0)  # a count; rounding keeps the total exact
    assert len(hold) == 23 and len(train) == 177
    assert abs(hold.class_counts() - np.array([40, 30, 20, 60, 50]) * 23 / 200).max() < 1
    with pytest.raises(ValueError, match="holdout"):
        hd.split_holdout(ds, 1.5)


# ---------------------------------------------------------------- transforms

def test_crop_flip_shapes_and_determinism():
    x = _images(16, 10, 12, seed=5)
    for mode, np_mode in (("zero", "constant"), ("reflect", "reflect")):
        a = hd.random_crop(x, 4, torch.Generator().manual_seed(7), mode)
        b = hd.random_crop(x, 4, torch.Generator().manual_seed(7), mode)
        assert a.shape == (16, 3, 10, 12) and a.dtype == torch.uint8 and torch.equal(a, b)
        g = torch.Generator().manual_seed(7)
        oy, ox = torch.randint(0, 9, (16,), generator=g), torch.randint(0, 9, (16,), generator=g)
        padded = np.pad(x, ((0, 0), (4, 4), (4, 4), (0, 0)), mode=np_mode)
        ref = np.stack([padded[i, oy[i] : oy[i] + 10, ox[i] : ox[i] + 12] for i in range(16)])
        np.testing.assert_array_equal(a.permute(0, 2, 3, 1).numpy(), ref)
    assert hd.random_crop(x, 4, torch.Generator().manual_seed(1), size=8).shape == (16, 3, 8, 8)
    f1 = hd.random_hflip(x, 0.5, torch.Generator().manual_seed(2))
    f2 = hd.random_hflip(x, 0.5, torch.Generator().manual_seed(2))
    assert torch.equal(f1, f2)
    xt = hd.to_tensor_nchw(x)
    flipped = [torch.equal(f1[i], xt[i].flip(-1)) for i in range(16)]
    kept = [torch.equal(f1[i], xt[i]) for i in range(16)]
    assert all(f or k for f, k in zip(flipped, kept)) and 0 < sum(flipped) < 16


def test_normalise_statistics_and_resize():
    rng = np.random.default_rng(0)
    x = np.clip(rng.normal([50, 128, 180], [25, 13, 30], (64, 16, 16, 3)), 0, 255).round().astype(np.uint8)
    mean, std = (x / 255.0).mean((0, 1, 2)), (x / 255.0).std((0, 1, 2))  # the batch's own statistics
    y = hd.normalize(x, mean, std)
    assert y.dtype == torch.float32 and y.shape == (64, 3, 16, 16) and y.is_contiguous()
    assert torch.allclose(y.mean((0, 2, 3)), torch.zeros(3), atol=1e-4)
    assert torch.allclose(y.std((0, 2, 3), correction=0), torch.ones(3), atol=1e-4)
    ref = torch.from_numpy(((x / 255.0 - mean) / std).transpose(0, 3, 1, 2)).float()
    assert torch.allclose(y, ref, atol=1e-5)
    assert torch.allclose(hd.normalize(hd.to_tensor_nchw(x).float() / 255, mean, std), y, atol=1e-5)  # float input
    up = hd.resize(y, 24)
    assert up.shape == (64, 3, 24, 24)
    ref = torch.nn.functional.interpolate(y, size=(24, 24), mode="bilinear", align_corners=False, antialias=False)
    assert torch.equal(up, ref) and hd.resize(y, 16) is y
    assert hd.resize(y, 8).shape == (64, 3, 8, 8)
    t = hd.TrainTransform(mean, std, resolution=20)(x, torch.Generator().manual_seed(0))
    assert t.shape == (64, 3, 20, 20) and t.dtype == torch.float32


# ---------------------------------------------------------------- loader

def _toy(n: int = 103) -> hd.ImageDataset:
    return hd.ImageDataset(_images(n, 8, 8, seed=9), _labels(n, 5).astype(np.int64), tuple("abcde"))


def test_loader_batches_cover_epoch():
    ds = _toy()
    loader = hd.BatchLoader(ds, 10, shuffle=True, seed=1, transform=hd.TrainTransform(padding=2), drop_last=False)
    batches = list(loader)
    assert len(batches) == len(loader) == 11 and batches[-1][0].shape == (3, 3, 8, 8)
    assert batches[0][0].dtype == torch.float32 and batches[0][1].dtype == torch.int64
    assert loader.epoch == 1 and loader.position == 0
    loader2 = hd.BatchLoader(ds, 10, shuffle=False, drop_last=True)
    labels = torch.cat([y for _, y in loader2])
    assert len(labels) == 100 and torch.equal(labels, torch.from_numpy(ds.labels[:100]))
    shards = [hd.BatchLoader(ds, 10, seed=1, rank=r, world_size=2).epoch_indices(0) for r in range(2)]
    assert len(shards[0]) == len(shards[1]) == 51 and not set(shards[0].tolist()) & set(shards[1].tolist())


def test_loader_resume_is_exact(tmp_path):
    ds = _toy()

    def make() -> hd.BatchLoader:
        return hd.BatchLoader(ds, 8, shuffle=True, seed=5, transform=hd.TrainTransform(padding=3, pad_mode="reflect"))

    full = make()
    reference = [b for _ in range(3) for b in full]  # 3 uninterrupted epochs
    first = make()
    seen = []
    for _ in range(2):  # one full epoch, then stop part-way into the second
        for b in first:
            seen.append(b)
            if len(seen) == 17:
                break
    torch.save(first.state_dict(), tmp_path / "loader.pt")
    resumed = make()
    resumed.load_state_dict(torch.load(tmp_path / "loader.pt", weights_only=True))
    rest = [b for _ in range(2) for b in resumed]
    assert len(seen) + len(rest) == len(reference)
    for (x, y), (rx, ry) in zip(seen + rest, reference):
        assert torch.equal(x, rx) and torch.equal(y, ry)
    other = hd.BatchLoader(ds, 4, seed=5)
    with pytest.raises(ValueError, match="batch_size"):
        other.load_state_dict(first.state_dict())


# ---------------------------------------------------------------- shipped subset

def test_shipped_subset_balanced_small_and_self_contained():
    assert hd.SUBSET_FILE.stat().st_size <= 17 * 1024 * 1024
    assert (hd.SUBSET_FILE.parent / "ATTRIBUTION.md").read_text().count("Krizhevsky") >= 2
    code = (
        "import sys\n"
        "opened = []\n"
        "sys.addaudithook(lambda ev, args: opened.append(str(args[0])) if ev == 'open' and args else None)\n"
        "import hwnas.data as hd\n"
        "tr, te = hd.get_dataset(), hd.get_dataset(split='test')\n"
        "assert not [p for p in opened if 'shared' in p.split('/')], [p for p in opened if 'shared' in p]\n"
        "print(len(tr), len(te), tr.class_counts().tolist(), te.class_counts().tolist(), tr.images.shape, tr.classes[0])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "5000 2000 " + str([500] * 10) + " " + str([200] * 10) + " (5000, 32, 32, 3) airplane"


def test_eval_split_of_a_class_sorted_dataset_calibrates_on_every_class_in_mixed_batches():
    """The shipped subset is sorted by class: the BN part must still be stratified and shuffled, or BN is
    estimated on half the classes and validation sees only the other half."""
    from hwnas.data.datasets import get_dataset
    from hwnas.eval import load_eval_data

    source = {"name": "cifar10", "data_dir": None, "holdout": 0.5, "seed": 0, "bn_images": 2000}
    data, _ = load_eval_data(source)
    calibration, validation = data.calibration, data.validation
    assert np.all(np.diff(get_dataset("cifar10", None, "train").labels) >= 0)  # the premise: sorted by class
    assert set(np.bincount(calibration.labels, minlength=10)) == {len(calibration) // 10}
    assert set(np.bincount(validation.labels, minlength=10)) == {len(validation) // 10}
    first_batch = calibration.labels[:250]
    assert np.bincount(first_batch, minlength=10).max() < 50  # a batch is a mix, not one class
    seen = {name for name in calibration.filenames} & {name for name in validation.filenames}
    assert not seen


def test_shipped_test_images_are_a_uniform_draw_over_cifar10_sub_categories():
    """CIFAR-10 file names are WordNet sub-categories; a subset picked by name covers few of them and is harder
    than the test split. The shipped draw must cover most sub-categories, in proportions close to the split's."""
    full_dir = ROOT.parent / "shared" / "data" / "cifar10"
    if not (full_dir / "cifar10_test.npz").exists():
        pytest.skip("the full CIFAR-10 test split is not beside this checkout")
    full, shipped = hd.get_dataset("cifar10", full_dir, "test"), hd.get_dataset(split="test")
    category = np.vectorize(lambda name: name.rsplit("_s_", 1)[0])
    full_cats, shipped_cats = category(np.array(full.filenames)), category(np.array(shipped.filenames))
    assert len(set(shipped_cats)) >= 0.7 * len(set(full_cats))
    names, counts = np.unique(full_cats, return_counts=True)
    expected = counts / counts.sum()
    observed = np.array([(shipped_cats == n).mean() for n in names])
    assert 0.5 * np.abs(observed - expected).sum() < 0.15  # total variation distance: 0.12 for this draw, 0.77 by file name
