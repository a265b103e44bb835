"""The `ddm` command line (CLI layer): parse, call one catalog function or submit one job, render."""
