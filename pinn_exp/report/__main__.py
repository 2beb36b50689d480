"""``python -m pinn_exp.report DIR [DIR ...]``: summarize the runs below the folders.

Exit status 0 when the report is written; 2, with one line on stderr naming what and why and
nothing written, when a folder does not exist, the output folder cannot be written or is a
file, a DIR or ``--out`` is empty, ``--metric`` is recorded by no run or holds no number
(``status``), a key of ``--rows`` or ``--cols`` is a column of no run, ``--baseline`` names a
sampler without ok runs, or the output folder holds the summary
of runs this report would not cover (``--overwrite`` replaces it)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from pinn_exp.metrics import registry
from pinn_exp.report.runs import NOT_FINITE, ok_runs, status_counts
from pinn_exp.report.summary import ReportRefused, write_summary
from pinn_exp.report.summary_text import duplicate_count, empty_table_text
from pinn_exp.report.tables import CELL_TEXT, mean_std_table, to_markdown


def build_parser() -> argparse.ArgumentParser:
    """The command-line parser.

    Returns:
        The parser of ``python -m pinn_exp.report``.
    """
    parser = argparse.ArgumentParser(
        prog="python -m pinn_exp.report",
        description="Aggregate finished (or partly finished) runs into tables and plots.",
    )
    parser.add_argument(
        "dirs",
        nargs="+",
        type=str,
        metavar="DIR",
        help="folders searched recursively for run directories",
    )
    parser.add_argument(
        "--rows",
        default="sampler",
        help="column(s) for the table rows, comma-separated (default: sampler)",
    )
    parser.add_argument(
        "--cols",
        default="pde",
        help="column(s) for the table columns, comma-separated (default: pde)",
    )
    parser.add_argument(
        "--metric",
        default=registry.PRIMARY,
        help=f"metric of the main table and of the paired comparison (default: {registry.PRIMARY})",
    )
    parser.add_argument(
        "--baseline",
        default=None,
        metavar="NAME",
        help="sampler the others are compared with, run by run with the same seed "
        "(default: rad when it has runs, else no paired comparison)",
    )
    parser.add_argument("--latex", action="store_true", help="also write summary.tex")
    parser.add_argument(
        "--out", type=str, default=None, help="output folder (default: the first DIR)"
    )
    parser.add_argument(
        "--no-plots", dest="plots", action="store_false", help="do not draw the plots"
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a summary in the output folder that lists runs this report does not cover",
    )
    return parser


def _warn_unknown_columns(frame, names: list[str]) -> None:
    """Warns on stderr about grouping or metric names that are not columns of the runs."""
    unknown = [n.strip() for n in names if n.strip() and n.strip() not in frame.columns]
    if unknown and len(frame):
        print(f"warning: no column named {', '.join(unknown)}", file=sys.stderr)


def _empty_argument(args: argparse.Namespace) -> str | None:
    """``--out`` or ``DIR`` where that argument is empty, else None: an empty path would be
    the current folder, a report written where nobody asked."""
    if args.out is not None and not args.out.strip():
        return "--out"
    return "DIR" if any(not d.strip() for d in args.dirs) else None


def _runs_line(frame) -> str:
    """The line that counts the runs: by status, the duplicates and the ok runs with a value
    that is not finite (both left out of the tables)."""
    duplicates = duplicate_count(frame)
    ok = ok_runs(frame)
    not_finite = int(ok[NOT_FINITE].notna().sum()) if NOT_FINITE in ok.columns else 0
    return (
        f"{len(frame)} runs"
        + (f" ({status_counts(frame)})" if len(frame) else "")
        + (f"; {duplicates} duplicate run(s) not counted (see summary.md)" if duplicates else "")
        + (
            f"; {not_finite} ok run(s) with a value that is not finite, left out of its tables "
            "(see summary.md)"
            if not_finite
            else ""
        )
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command line.

    Args:
        argv: the arguments (``sys.argv[1:]`` when None).

    Returns:
        0 on success, 2 when the report is refused (one line on stderr says why).
    """
    args = build_parser().parse_args(argv)
    what = _empty_argument(args)
    if what is not None:
        print(
            f"error: {what} is empty: give the folder by name ('.' for the current one)",
            file=sys.stderr,
        )
        return 2
    args.dirs = [Path(d) for d in args.dirs]
    args.out = Path(args.out) if args.out is not None else None
    missing = [str(d) for d in args.dirs if not d.is_dir()]
    if missing:
        print(f"error: not a directory: {', '.join(missing)}", file=sys.stderr)
        return 2
    out = args.out if args.out is not None else args.dirs[0]
    try:
        frame = write_summary(
            args.dirs,
            out,
            rows=args.rows,
            cols=args.cols,
            metric=args.metric,
            latex=args.latex,
            plots=args.plots,
            baseline=args.baseline,
            require_baseline=True,
            require_metric=True,
            overwrite=args.overwrite,
        )
    except ReportRefused as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a write that failed after the checks (a full disk)
        print(f"error: {out}: cannot write the report: {exc}", file=sys.stderr)
        return 2
    print(_runs_line(frame))
    _warn_unknown_columns(frame, [*args.rows.split(","), *args.cols.split(","), args.metric])
    for path in frame.attrs.get("outputs", []):
        print(f"wrote {path}")
    for path in frame.attrs.get("removed", []):
        print(f"removed {path} (from an earlier report)")
    table = mean_std_table(frame, args.rows, args.cols, args.metric, ci=True)
    if table.empty:
        print(empty_table_text(frame, args.metric).replace("`", ""))
    else:
        scale = table.attrs.get("scale", "linear")
        print(f"\n{args.metric} ({scale} scale): {CELL_TEXT[scale]} over seeds, std with ddof=1\n")
        print(to_markdown(table))
    return 0


if __name__ == "__main__":
    sys.exit(main())
