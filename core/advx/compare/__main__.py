"""``python -m advx.compare ...`` is ``advx compare ...`` (what the worker tests start)."""

import sys

from advx.cli import app

if __name__ == "__main__":
    app(args=["compare", *sys.argv[1:]], prog_name="advx")
