"""Flax networks: they map (x_in, known, t) to logits and know nothing of the objective."""
