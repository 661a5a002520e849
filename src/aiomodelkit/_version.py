"""The package version, read by hatchling and recorded in every `.meta` we publish."""

__version__ = "0.1.0"
