"""ddm: a deepfake-detection dataset manager and batch-job system.

This package is the catalog layer (settings, database, ingest, cache layout). It never
imports torch, celery or the command-line toolkit.
"""

__version__ = "0.1.0"
