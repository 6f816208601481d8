"""polyret's version: the one place it is written (``pyproject.toml`` reads it; ``polyret.__version__``
re-exports it). A module of its own, so that modules recording it never import the package's ``__init__``."""

__version__ = "0.1.0"
