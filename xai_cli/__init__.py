"""xai: explain tabular machine-learning models from the shell.

This module holds the version only, so that ``xai --help`` imports nothing heavy.
"""

__version__ = "0.1.0"
