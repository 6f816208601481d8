"""MTEB ``TaskResult`` files from polyret's ``Results``: defined in :mod:`polyret.evaluation.mteb_export`
(the evaluation verb writes them into every results folder, and a floor never imports one above it);
re-exported here, where the other tools' formats live."""

from polyret.evaluation.mteb_export import *  # noqa: F403
from polyret.evaluation.mteb_export import __all__  # noqa: F401
