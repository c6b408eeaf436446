"""The package version: the same number as pyproject.toml's."""
__version__ = "0.1.0"
