"""Prometheus exporter for the Pingaway cloud switchboard."""

__version__ = "0.1.0"
