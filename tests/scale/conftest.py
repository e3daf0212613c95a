"""The scale tests reuse the PPO tests' toy task and tiny-T5 builder (tests/ppo/ppo_toy.py)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "ppo"))
