"""Aggregation of finished runs into tables and plots (``python -m pinn_exp.report``).

Modules, each importing only those above it:

- ``png``: the one atomic PNG writer of every plot.
- ``run_plots``: the plots of one run (written by the runner).
- ``runs``: finding run folders and reading them into one frame (``collect_runs``).
- ``stats``: Student-t confidence intervals (of a mean, of a geometric mean), the exact
  Wilcoxon signed-rank test.
- ``tables``: grouping, tables of mean ± std (geometric mean ×/÷ geometric std for positive
  metrics), markdown and LaTeX.
- ``paired``: the comparison of each sampler with a baseline, seed by seed.
- ``plots``: the plots over many runs (``PLOTS``, ``make_plots``).
- ``summary``: ``write_summary``: summary.csv, summary.md, summary_paired.csv, summary.tex,
  the plots.
- ``__main__`` (the command line); the end-of-sweep Hydra callback is ``pinn_exp.sweep``.
"""
