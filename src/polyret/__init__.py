"""polyret: train and evaluate multilingual dense retrievers for mono-, cross- and multilingual retrieval."""

__version__ = "0.1.0"
