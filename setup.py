"""Builds the native extension ``hwnas._C`` (C++17, pybind11). Package metadata lives in pyproject.toml."""
import os
import sys

from pybind11.setup_helpers import Pybind11Extension, build_ext
from setuptools import setup

SOURCES = ["csrc/errors.cpp", "csrc/latency_table.cpp", "csrc/predictor.cpp", "csrc/variation.cpp",
           "csrc/depthwise.cpp", "csrc/bindings.cpp"]
extra_compile_args = ["-O3", "-fvisibility=hidden"]
if sys.platform != "win32" and os.environ.get("HWNAS_NATIVE_ARCH") == "1":
    extra_compile_args.append("-march=native")  # opt-in: wheels must stay portable

setup(
    ext_modules=[
        Pybind11Extension(
            "hwnas._C",
            SOURCES,
            include_dirs=["csrc"],
            cxx_std=17,
            extra_compile_args=extra_compile_args,
            extra_link_args=["-pthread"],
        )
    ],
    cmdclass={"build_ext": build_ext},
)
