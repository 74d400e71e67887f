"""Audio classification models (family ``classify``)."""

from . import (  # noqa: F401
    ast,
    convnext,
    melception,
    panns,
    passt,
    spectttra,
    stats_embed,
    tiny_transformer,
    vggishish,
    wav2small,
)
