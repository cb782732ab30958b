"""Transformer world models (TWM, IRIS) and the world-model agent workflow."""
