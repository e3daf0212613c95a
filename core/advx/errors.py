"""User-facing errors: the CLI prints their message and exits with code 2, no traceback."""

from __future__ import annotations

__all__ = ["AdvxError", "ConfigError", "DataError", "PluginError"]


class AdvxError(Exception):
    """An error the user can fix: the message says what, where, and how."""

    exit_code = 2


class ConfigError(AdvxError):
    """A recipe, sweep file or override is wrong (unknown key, bad type, missing file)."""


class DataError(AdvxError):
    """Input data is wrong (missing column, empty split, unknown label): name file/row/column."""


class PluginError(AdvxError):
    """A plugin failed to import or register, or two plugins claim one component name."""
