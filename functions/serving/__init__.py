"""Serving predictions: the loaded model, what requests carry, and the answers."""
