"""``python -m advx.compare ...`` is ``advx compare ...`` (what the worker tests start)."""

from advx.compare.cli import compare_app

compare_app()
