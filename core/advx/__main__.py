"""``python -m advx`` is the ``advx`` command, for environments where the console script is not
on PATH (a system Python, a job scheduler's wrapper)."""

from advx.cli import main

main()
