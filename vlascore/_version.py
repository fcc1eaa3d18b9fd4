"""The package version, in a module of its own so that every layer can read it without importing the package root
(which hands on the public API: load_run, evaluate); pyproject.toml reads it from here too."""

__version__ = "0.1.0"
