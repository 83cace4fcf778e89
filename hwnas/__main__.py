"""``python -m hwnas`` (also what torchrun launches) is the ``hwnas`` command."""
from .cli import main

raise SystemExit(main())
