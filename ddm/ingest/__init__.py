"""Dataset ingest without the database: layout scanning (`registry.scan`) and per-file
probing (`probe.probe_many`). Imports only the stdlib, numpy, OpenCV and `ddm.errors`.
"""
