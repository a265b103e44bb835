"""Celery app and tasks, and the inline executor (jobs layer).

The only layer that joins catalog rows to the networks.
"""
