"""Exceptions raised by audiozoo.

Every error a user can cause with bad input is an :class:`AudiozooError` subclass whose message names
the problem (file, argument, expected vs. got). They also derive from the matching built-in exception
(``ValueError``, ``KeyError``...) so generic ``except ValueError`` code keeps working.
"""

from __future__ import annotations


class AudiozooError(Exception):
    """Base class of all audiozoo errors."""


class AudioError(AudiozooError, ValueError):
    """Audio that cannot be read or used: unreadable/truncated/empty file, NaN/Inf samples, bad shape."""


class ConfigError(AudiozooError, ValueError):
    """An invalid model/recipe configuration or an unknown override."""


class ModelNotFoundError(AudiozooError, KeyError):
    """A model name (or weight tag) that is not registered."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else ""


class CheckpointError(AudiozooError, ValueError):
    """A checkpoint that cannot be loaded: missing files, unexpected/missing keys, shape mismatch."""


class DataError(AudiozooError, ValueError):
    """A bad manifest line, a missing data file, or a corpus that cannot be built here."""


class MissingDependencyError(AudiozooError, ImportError):
    """An optional package or system tool is needed for this feature and is not installed."""


def require(module: str, feature: str, extra: str | None = None):
    """Import ``module`` or raise :class:`MissingDependencyError` saying how to install it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as e:  # pragma: no cover - exercised only when missing
        hint = f"pip install 'audiozoo[{extra}]'" if extra else f"pip install {module}"
        raise MissingDependencyError(f"{feature} needs the '{module}' package ({hint}): {e}") from e
