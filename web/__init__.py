"""`ddm serve`: the catalog, runs, evaluations and jobs in a browser (web layer).

A second thin face beside `cli/`: handlers call the functions the commands call and render
them with the package's own templates; nothing is loaded from the internet.
"""
