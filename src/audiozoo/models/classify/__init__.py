"""Audio classification models (family ``classify``)."""
