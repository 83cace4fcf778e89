"""A zoo model's ``MODEL_CARD.md``, written from its ``zoo.json`` so that every figure in the card is one the
build measured (a test compares the shipped card with this function's output)."""
from __future__ import annotations

from typing import Any

CIFAR10_CITATION = ("Alex Krizhevsky. *Learning Multiple Layers of Features from Tiny Images.* Technical report, "
                    "University of Toronto, 2009. <https://www.cs.toronto.edu/~kriz/cifar.html>")


def _accuracy_rows(rows: list[dict[str, Any]]) -> str:
    return "\n".join(f"| {row['name']} | r{row['arch']['r']} | {row['macs'] / 1e6:.1f} M | {row['params'] / 1e6:.2f} M "
                     f"| {row['test_acc']:.2%} | ±{row['stderr'] * 100:.1f} |" for row in rows)


def _phase_rows(phases: list[dict[str, Any]]) -> str:
    return "; ".join(f"{p['name']} {p['epochs']:g} ep" for p in phases)


def model_card(meta: dict[str, Any]) -> str:
    """The model card text for the manifest ``meta``."""
    data, training, predictor = meta["data"], meta["training"], meta["predictor"]
    held_out = {key: ("n/a" if value is None else f"{value:.3f}" if key in ("spearman", "kendall") else f"{value:.2f}")
                for key, value in predictor["val"].items()}  # a rank correlation of <3 subnets is None
    accuracy = meta["accuracy"]
    attribution = CIFAR10_CITATION if data["dataset"].lower() == "cifar10" else data.get("attribution", "see the dataset's terms")
    files = "\n".join(f"| `{entry['path']}` | {entry['bytes'] / 1e6:.2f} MB | `{entry['sha256'][:16]}…` |"
                      for _, entry in sorted(meta["files"].items()))
    machines = "\n".join(f"  - {line}" for line in training["machines"])
    return f"""# {meta['name']}

{meta['summary']}

Load it with `hwnas.zoo.load("{meta['name']}")`, or name it wherever the command line takes a supernet:
`hwnas search --supernet {meta['name']} …`, `hwnas export --supernet {meta['name']} …`, `hwnas demo`.

## What it is
- Search space `{meta['space']}` (hash `{meta['space_hash']}`), {meta['num_classes']} classes
  ({', '.join(meta['classes'])}); every subnet of the space is served by these weights.
- Input: {meta['input']['layout']}, mean {meta['input']['mean']}, std {meta['input']['std']}; resolutions
  {meta['input']['resolutions']} (square, default {meta['input']['default_resolution']}).
- Precision: {meta['precision']}.

| file | size | SHA-256 |
|---|---:|---|
{files}

## Data
{data['description']}

- Dataset: CIFAR-10 — {attribution} The creators state no formal license and ask users to cite the report;
  hwnas's license does not apply to the data (see `hwnas/data/assets/ATTRIBUTION.md`).
- Split: {data['train_images']:,} training images, {data['validation_images']:,} held out as the validation split
  (seed {data['seed']}, never trained on), {data['test_images']:,} test images (never used for training, model
  selection or the predictor).

## Accuracy
Top-1 after BatchNorm recalibration ({accuracy['bn_recalibration']}); ± is one binomial standard error.

On the full test set ({accuracy['test_images']:,} images):

| subnet | resolution | MACs | params | test accuracy | ± pts |
|---|---:|---:|---:|---:|---:|
{_accuracy_rows(accuracy['test'])}

On the {accuracy['shipped_test_images']:,} test images shipped with hwnas ({accuracy['shipped_bn_recalibration']}):

| subnet | resolution | MACs | params | test accuracy | ± pts |
|---|---:|---:|---:|---:|---:|
{_accuracy_rows(accuracy['shipped_test'])}

## Accuracy predictor
`{meta['files']['accuracy_predictor']['path']}`: OFA's MLP (3×400, one-hot arch features; AdamW weight decay {predictor.get('weight_decay', 0)}) fitted on
{predictor['n_train']:,} subnets and checked on {predictor['n_val']:,} held out, drawn {predictor['sampling']}
({predictor['n_subnets']:,} in all, MACs {predictor['macs_range_m'][0]:.1f}–{predictor['macs_range_m'][1]:.1f} M),
each measured on {predictor['evaluation']}. Never the test set.
Held out: Spearman ρ {held_out['spearman']}, Kendall τ {held_out['kendall']}, MAE {held_out['mae_pts']} points,
RMSE {held_out['rmse_pts']} points. The measured pairs are in `{meta['files']['accuracy_dataset']['path']}`
({predictor['subnet_seconds'] / 3600:.1f} process-hours to measure, {predictor['subnet_seconds'] / predictor['n_subnets']:.1f} s
per subnet, on {predictor['machine']}).

## Training
- Command: `{training['command']}` (seed {training['seed']}, hwnas commit `{training['commit']}`, torch
  {training['torch']}, {training['world_size']} processes).
- Schedule `{training['schedule']}`, progressive shrinking with in-place distillation from the largest subnet:
  {_phase_rows(training['phases'])}; {training['steps']:,} steps of batch {training['batch_size']}.
- Wall time {training['wall_s'] / 60:.1f} min. Machines:
{machines}
- Curves and per-phase validation accuracy: `training/training.png`, `training/log.csv`,
  `training/phase_eval.json`; the run's own files are all in `training/`.

## Reproduce
```
{training['reproduce']}
```

## Limits
- 32-pixel CIFAR-10 images at 24–40 px: a benchmark of the method and a demo starting point, not an ImageNet
  model. Subnets are only as good as the table above; the middle of the space is best served.
- Every accuracy here needs BatchNorm recalibrated for the chosen subnet (`hwnas export` does it).
"""
