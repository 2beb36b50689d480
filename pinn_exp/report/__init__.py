"""Aggregation of finished runs into tables and plots (``python -m pinn_exp.report``).

Modules, each importing only those above it:

- ``png``: the one atomic PNG writer of every plot.
- ``run_plots``: the plots of one run (written by the runner).
- ``settings``: which columns are config keys and which make two runs different settings.
- ``run_files``: one run folder's record and config as a row (``read_record_and_config``).
- ``discovery``: the run folders below some folders, and a sweep's jobs that never started.
- ``duplicates``: ok runs of one setting and seed; the newest counts (``mark_duplicates``).
- ``selections``: the ok runs that count, a column as numbers, values that are not finite.
- ``runs``: all runs in one frame (``collect_runs``), and the one import of the names above.
- ``stats``: Student-t confidence intervals (of a mean, of a geometric mean), the exact
  Wilcoxon signed-rank test and what its p can reach (``is_significant``).
- ``grouping``: the group label of each run, with the settings that differ inside a group.
- ``tables``: tables of mean ± std (geometric mean ×/÷ geometric std for positive metrics),
  markdown and LaTeX.
- ``pairing``: how runs pair (arms, pairing labels) and one sampler's ratio statistics
  (``compare_pairs``).
- ``paired``: the comparison of each sampler with a baseline, seed by seed
  (``paired_comparison``).
- ``paired_text``: the comparison's section of summary.md, and summary_paired.csv.
- ``plot_lines``: the lines of the sweep plots and what their points show (geometric mean and
  interval on a log axis for positive quantities, else mean ± std).
- ``plot_points``: the final collocation set of one run per sampler.
- ``plots``: the plots over many runs (``PLOTS``, ``make_plots``).
- ``summary_text``: the text of summary.md (``summary_markdown``).
- ``summary``: ``write_summary``: summary.csv, summary.md, summary_paired.csv, summary.tex,
  the plots; the checks that refuse a report (``ReportRefused``).
- ``__main__`` (the command line); the end-of-sweep Hydra callback is ``pinn_exp.sweep``.
"""
