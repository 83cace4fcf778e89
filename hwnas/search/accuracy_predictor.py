"""The accuracy predictor: OFA's MLP from one-hot architecture features to top-1 accuracy.

Three hidden layers of 400 with ReLU, a bias-free output and a fixed offset set to the mean accuracy
of the training set (OFA's ``base_acc``), trained with Adam on squared error. Search calls the
predictor thousands of times on populations of ~100, where torch's per-op overhead would dominate, so
:meth:`AccuracyPredictor.predict` runs the same weights through numpy (float32; bfloat16 was tried and
moves a trained predictor's outputs by up to 0.4 points, too much for ranking close candidates).
Saved as safetensors with the space's hash and the held-out report; never pickled.
"""
from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save

from ..atomic import write_bytes_atomic
from ..space.arch import Arch
from ..space.base import SearchSpace
from ..stats import kendall_tau, spearman_rho
from .encoding import feature_count, one_hot_features

FORMAT = "hwnas-accuracy-predictor"
FORMAT_VERSION = "1"


class AccuracyPredictor(torch.nn.Module):
    """MLP over :func:`one_hot_features` of ``space``; usable untrained (e.g. to time a search)."""

    def __init__(self, space: SearchSpace, hidden: int = 400, layers: int = 3, base_accuracy: float = 0.0) -> None:
        super().__init__()
        if hidden < 1 or layers < 1:
            raise ValueError(f"hidden={hidden} and layers={layers} must be >= 1")
        self.space, self.hidden, self.layers = space, int(hidden), int(layers)
        widths = [feature_count(space)] + [self.hidden] * self.layers
        self.body = torch.nn.ModuleList(torch.nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:]))
        self.head = torch.nn.Linear(self.hidden, 1, bias=False)
        self.register_buffer("base_accuracy", torch.tensor(float(base_accuracy)))
        self.report: dict[str, Any] = {}
        self._numpy: list[tuple[np.ndarray, np.ndarray]] | None = None

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        x = features
        for layer in self.body:
            x = torch.relu(layer(x))
        return self.head(x).squeeze(-1) + self.base_accuracy

    # --- fast inference -------------------------------------------------------------------------
    def _weights(self) -> list[tuple[np.ndarray, np.ndarray]]:
        if self._numpy is None:
            with torch.no_grad():
                self._numpy = [(layer.weight.T.contiguous().numpy().astype(np.float32),
                                layer.bias.numpy().astype(np.float32)) for layer in self.body]
                self._numpy.append((self.head.weight.T.contiguous().numpy().astype(np.float32),
                                    np.array([float(self.base_accuracy)], dtype=np.float32)))
        return self._numpy

    def predict_features(self, features: np.ndarray) -> np.ndarray:
        """Predicted accuracy (float64 ``[N]``) for one-hot features ``[N, F]``."""
        *body, (head_w, base) = self._weights()
        x = np.asarray(features, dtype=np.float32)
        for weight, bias in body:
            x = x @ weight
            x += bias
            np.maximum(x, 0.0, out=x)
        return (x @ head_w)[:, 0].astype(np.float64) + float(base[0])

    def predict(self, archs: np.ndarray | Iterable[Arch | Mapping[str, Any]] | Arch | Mapping[str, Any]) -> np.ndarray:
        """Predicted accuracy (float64 ``[N]``) for archs, OFA dicts or integer codes ``[N, S]``, like
        :meth:`hwnas.latency.LatencyPredictor.predict` (a non-integer array is a ValueError naming its dtype)."""
        return self.predict_features(one_hot_features(self.space, self.space.as_codes(archs)))

    def invalidate(self) -> None:
        """Call after changing the weights in place: prediction re-reads them."""
        self._numpy = None

    # --- training -------------------------------------------------------------------------------
    def fit(self, codes: np.ndarray, accuracies: np.ndarray, epochs: int = 300, lr: float = 1e-3,
            batch_size: int = 256, val_fraction: float = 0.2, seed: int = 0, weight_decay: float = 3.0) -> dict[str, Any]:
        """Train on ``(codes, accuracies)``, holding out ``val_fraction`` (seeded) for the report.

        Returns (and keeps in ``self.report``) Spearman, Kendall, RMSE and MAE on the held-out part,
        and the same on the training part, in accuracy points (0–100 scale for RMSE/MAE).

        ``weight_decay`` (AdamW, decoupled) keeps the MLP from memorising its training subnets: unregularised it
        fits them to 0.004 points and extrapolates, so evolution finds archs it over-rates by 2-4 points. On the
        zoo's 1,250 tiny-mbv3 subnets, 3.0 took held-out MAE from 0.56 to 0.37 points (Spearman 0.93 → 0.97) and the
        largest budget's pick from 85.6% to 86.2% measured (docs/experiments/predictor-weight-decay.md).
        """
        codes = self.space.check_codes(codes)
        accuracies = np.asarray(accuracies, dtype=np.float64)
        if len(codes) != len(accuracies) or len(codes) < 10:
            raise ValueError(f"need >= 10 (arch, accuracy) pairs of equal count; got {len(codes)} codes and "
                             f"{len(accuracies)} accuracies")
        if not np.all(np.isfinite(accuracies)) or accuracies.min() < 0 or accuracies.max() > 1:
            raise ValueError("accuracies must be fractions in [0, 1]")
        if not 0.0 < val_fraction < 1.0:
            raise ValueError(f"val_fraction={val_fraction} must be in (0, 1)")
        rng = np.random.default_rng(seed)
        order = rng.permutation(len(codes))
        n_val = max(1, round(val_fraction * len(codes)))
        val, train = order[:n_val], order[n_val:]
        features = torch.from_numpy(one_hot_features(self.space, codes))
        targets = torch.from_numpy(accuracies.astype(np.float32))
        generator = torch.Generator().manual_seed(seed)
        for layer in (*self.body, self.head):
            bound = 1.0 / np.sqrt(layer.in_features)
            torch.nn.init.uniform_(layer.weight, -bound, bound, generator=generator)
            if layer.bias is not None:
                torch.nn.init.uniform_(layer.bias, -bound, bound, generator=generator)
        self.base_accuracy.fill_(float(accuracies[train].mean()))
        optimizer = torch.optim.AdamW(self.parameters(), lr=lr, weight_decay=weight_decay)
        steps_per_epoch = max(1, -(-len(train) // batch_size))
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, epochs * steps_per_epoch)
        train_index = torch.from_numpy(train)
        self.train()
        for _ in range(epochs):
            for batch in train_index[torch.randperm(len(train_index), generator=generator)].split(batch_size):
                loss = torch.nn.functional.mse_loss(self(features[batch]), targets[batch])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                scheduler.step()
        self.eval()
        self.invalidate()
        predicted = self.predict(codes)
        self.report = {
            "n_train": int(len(train)), "n_val": int(len(val)), "epochs": epochs, "lr": lr, "weight_decay": weight_decay,
            "val": _report(predicted[val], accuracies[val]), "train": _report(predicted[train], accuracies[train]),
        }
        return self.report

    # --- files ----------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Weights and report as safetensors, written atomically."""
        tensors = {k: v.detach().contiguous() for k, v in self.state_dict().items()}
        metadata = {"format": FORMAT, "format_version": FORMAT_VERSION, "space": self.space.name,
                    "space_hash": self.space.content_hash, "hidden": str(self.hidden), "layers": str(self.layers),
                    "report": json.dumps(self.report, allow_nan=False)}
        return write_bytes_atomic(path, save(tensors, metadata=metadata))

    @classmethod
    def load(cls, path: str | os.PathLike[str], space: SearchSpace) -> AccuracyPredictor:
        """Read a predictor saved for ``space``; ValueError naming the file when it is not one."""
        path = Path(path)
        try:
            with safe_open(str(path), framework="pt") as reader:
                metadata = reader.metadata() or {}
                names = reader.keys()  # a safetensors reader, not a dict
                tensors = {name: reader.get_tensor(name).clone() for name in names}
        except (SafetensorError, OSError) as error:
            raise ValueError(f"{path}: not a readable safetensors file ({error})") from None
        if metadata.get("format") != FORMAT or metadata.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"{path}: not an hwnas accuracy predictor (format {metadata.get('format')!r})")
        if metadata.get("space_hash") != space.content_hash:
            raise ValueError(f"{path}: trained for space {metadata.get('space')!r} (hash {metadata.get('space_hash')}), "
                             f"not {space.name!r} (hash {space.content_hash})")
        predictor = cls(space, int(metadata["hidden"]), int(metadata["layers"]))
        try:
            predictor.load_state_dict(tensors, strict=True)
        except RuntimeError as error:
            raise ValueError(f"{path}: weights do not fit ({error})") from None
        predictor.report = json.loads(metadata.get("report", "{}"))
        return predictor.eval()


def _report(predicted: np.ndarray, measured: np.ndarray) -> dict[str, float | None]:
    """Rank agreement and error in accuracy points; a correlation undefined for constant data is None."""
    error = predicted - measured
    spearman, kendall = spearman_rho(predicted, measured), kendall_tau(predicted, measured)
    return {"n": int(len(measured)), "spearman": None if np.isnan(spearman) else spearman,
            "kendall": None if np.isnan(kendall) else kendall, "rmse_pts": float(np.sqrt(np.mean(error**2)) * 100),
            "mae_pts": float(np.mean(np.abs(error)) * 100)}
