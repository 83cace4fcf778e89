"""Pure writers: a static op or subnet → ONNX / TFLite bytes. No runtime, no timing.

``lower`` turns the static modules of ``hwnas.nn`` into a small inference graph (BatchNorm folded) that
every writer consumes, so ONNX and TFLite files describe exactly the same computation.
"""
from .ir import Add, Conv, GlobalAvgPool, Graph, Linear, Mul, Node, lower

__all__ = ["Conv", "Graph", "GlobalAvgPool", "Linear", "Node", "Add", "Mul", "lower"]
