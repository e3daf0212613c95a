"""User-facing errors: the CLI prints their message and exits with code 2, no traceback."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = [
    "AdvxError", "ConfigError", "DataError", "NonFiniteError", "PluginError", "UnknownKeyError",
    "did_you_mean", "print_error",
]


def did_you_mean(word: object, choices: Iterable[object]) -> str:
    """`` Did you mean 'x'?`` for the choice closest to ``word``, or ``''`` when none is close.

    The one place error messages suggest a spelling (keys, component names, metrics): the
    leading space lets callers append it straight after a sentence.
    """
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1)
    return f" Did you mean {close[0]!r}?" if close else ""


class AdvxError(Exception):
    """An error the user can fix: the message says what, where, and how."""

    exit_code = 2


class ConfigError(AdvxError):
    """A recipe, sweep file or override is wrong (unknown key, bad type, missing file)."""


class UnknownKeyError(ConfigError):
    """A recipe or config key that no config class declares (the message suggests one)."""


class DataError(AdvxError):
    """Input data is wrong (missing column, empty split, unknown label): name file/row/column."""


class PluginError(AdvxError):
    """A plugin failed to import or register, or two plugins claim one component name."""


class NonFiniteError(AdvxError):
    """A reward term, loss or gradient norm became NaN or infinite.

    Raised *before* the offending update touches the weights (see
    :func:`advx.numerics.guarded_step`). The loop adds the round and step and either stops
    the run (status ``failed``) or skips that update, as ``loop.on_nonfinite`` says. It is a
    user-fixable error (usually a learning rate or reward weight far too large), hence exit 2.
    """

    def __init__(self, what: str, value: float, *, round: int | None = None,
                 step: int | None = None, hint: str = "") -> None:
        self.what, self.value, self.round, self.step, self.hint = what, value, round, step, hint
        super().__init__(self._message())

    def at(self, round: int, step: int | None) -> NonFiniteError:
        """The same error, located at ``round``/``step`` (the loop knows where; plugins not)."""
        return NonFiniteError(self.what, self.value, round=round, step=step, hint=self.hint)

    def _message(self) -> str:
        where = ""
        if self.round is not None:
            where = f" at round {self.round}" + (f", step {self.step}" if self.step else "")
        hint = self.hint or ("lower the learning rate or the reward weights, or set "
                             "loop.on_nonfinite=skip to drop such updates")
        return f"{self.what} is {self.value}{where}; the update was not applied. Fix: {hint}"


def print_error(exc: AdvxError | str) -> None:
    """``error: <message>`` on stderr, the message as plain text (a ``[/x]`` in a path or
    value is printed as is, never interpreted as rich markup). The CLI and the sweep and
    compare worker processes report a user error through this one function."""
    from rich.console import Console
    from rich.text import Text

    Console(stderr=True, soft_wrap=True, highlight=False).print(
        Text.assemble(("error:", "bold red"), " ", str(exc))
    )
