"""posgen: spatially unbiased image generators that render on explicit coordinate grids."""
__version__ = "0.1.0"
