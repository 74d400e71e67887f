"""Audio classification models (family ``classify``)."""

from . import (  # noqa: F401
    ast,
    convnext,
    panns,
    passt,
    spectttra,
    stats_embed,
    tiny_transformer,
    wav2small,
)
