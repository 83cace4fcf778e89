"""Profiling devices hwnas cannot run on directly: a self-contained bundle for boards, adb for phones."""
