"""The experiment folder's layout: defined in :mod:`polyret.report.layout` (the report reads the folders
the experiment writes, and a floor never imports one above it); re-exported here for the experiment."""

from polyret.report.layout import *  # noqa: F403
from polyret.report.layout import __all__  # noqa: F401
