"""Test-suite wide settings: offline Hugging Face, one CPU thread (the machine is shared)."""

from __future__ import annotations

import os
import tempfile

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# item codes are memoised on disk (advx_recsys.rqvae.cached_rqvae_codes): one fresh cache per
# test session, never the user's ~/.cache/advx
os.environ.setdefault("ADVX_CACHE_DIR", tempfile.mkdtemp(prefix="advx-test-cache-"))

import torch

torch.set_num_threads(1)

import advx.plugins  # noqa: E402  (after the environment above is set)
import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _fresh_plugin_manager_afterwards():
    """The plugin manager is process-wide: a test that restricted ADVX_LOAD_PLUGINS or
    registered a toy plugin leaves none of that to the next test."""
    yield
    advx.plugins.reset_plugin_manager()


@pytest.fixture
def postgres_url() -> str:
    """The PostgreSQL server CI starts with ``.ci/postgres.sh`` (``ADVX_TEST_POSTGRES_URL``,
    a throwaway cluster on 127.0.0.1); the test skips, saying why, when it is not there."""
    url = os.environ.get("ADVX_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("ADVX_TEST_POSTGRES_URL is not set: run `source .ci/postgres.sh` first "
                    "(CI does) to start a throwaway PostgreSQL on loopback")
    try:
        import psycopg2
    except ImportError:
        pytest.skip("psycopg2 is not installed (pip install 'advx[postgres]')")
    try:
        psycopg2.connect(url.replace("postgresql+psycopg2://", "postgresql://"),
                         connect_timeout=5).close()
    except psycopg2.Error as exc:
        pytest.skip(f"PostgreSQL at {url} is unreachable: {str(exc).strip()}")
    return url
