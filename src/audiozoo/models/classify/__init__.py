"""Audio classification models (family ``classify``)."""

from . import (
    ast,  # noqa: F401
    panns,  # noqa: F401
)
