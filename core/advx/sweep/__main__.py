"""``python -m advx.sweep ...``: the same as ``advx sweep ...``."""

from advx.cli import sweep_app

if __name__ == "__main__":
    sweep_app()
