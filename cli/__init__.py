"""The `ddm` command line (CLI layer).

Each command parses its arguments, calls one catalog function or submits one job, and
renders the result.
"""
