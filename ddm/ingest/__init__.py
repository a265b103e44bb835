"""The ingest layer: dataset layouts (`registry.scan`), per-file probing (`probe.probe_many`)
and the plain records both return. No database: imports only the stdlib, OpenCV,
`ddm.errors` and `ddm.vocab` (an import-linter contract keeps it so).
"""
