"""Deployment: extract a subnet, write ONNX/TFLite (fp32, int8), verify against PyTorch, bundle for a board.

``export(ExportOptions(...))`` is the job ``hwnas export`` runs; ``bundle_run`` is the standalone runner
copied into every bundle (numpy + a runtime only), importable here for checks.
"""
from .run import ExportOptions, export, report_table

__all__ = ["ExportOptions", "export", "report_table"]
