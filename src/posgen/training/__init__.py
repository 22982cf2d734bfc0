"""Training processes, kept apart from the networks."""
