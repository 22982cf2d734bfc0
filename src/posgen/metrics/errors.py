"""The one error type of the metrics package (bad option, missing weights, wrong checksum)."""


class MetricError(Exception):
    """A metric cannot run as asked; the message is one line for the user."""
