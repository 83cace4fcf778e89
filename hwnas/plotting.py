"""What every hwnas figure needs: a headless matplotlib and an atomic PNG write."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend (no display needed; imported only when plotting)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_png(figure: Any, path: str | os.PathLike[str], dpi: int = 110) -> Path:
    """Write ``figure`` to ``path`` as PNG through a temporary file and a rename, then close it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    try:
        figure.savefig(tmp, dpi=dpi)
        os.replace(tmp, path)
    finally:
        pyplot().close(figure)
        if tmp.exists():
            tmp.unlink()
    return path
