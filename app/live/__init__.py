"""Runs in motion: the training loop, run handles, the manager, fan-out, replay and the wire."""
