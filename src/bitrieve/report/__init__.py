"""From stored runs to paper: sweeps, tables, figures (docs/reporting.md).

- ``sweep``: config × bit lengths × seeds × grid of switches -> one run directory each (validated first, finished
  runs skipped, interrupted ones resumed) through ``bitrieve.engine.train_run``.
- ``results``: reading results.json files (schema 1) and naming the variants of a method.
- ``tables``: methods × bit lengths, mean ± std over seeds, best marked, protocol in the caption; md/latex/csv.
- ``figures`` / ``examples``: PR and P@N curves, training curves, retrieval examples (PNG + PDF).
- ``results_md``: docs/results.md. ``cli``: `bitrieve sweep | report | figures`.
"""
