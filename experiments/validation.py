"""The validation table: the simulator against queueing theory on canonical cases.

Runs the built-in suite of ``simq validate`` (M/M/1 at four loads, M/M/c, M/D/1, M/G/1,
M/M/c/K, Erlang B, Jackson networks, overload, links, Little's law, percentiles, the
automatic warm-up) and writes its table (``validation.csv``, ``validation.md``, exactly
what ``simq validate`` writes) with a figure of every check's deviation measured against
the tolerance its confidence interval allows.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np

import simq
from simq.validate import run_suite, write_outputs

try:
    from experiments import _common as common
except ImportError:  # run as a script: experiments/ is on sys.path
    import _common as common  # type: ignore[no-redef]

NAME = "validation"
COMMAND = "python experiments/validation.py  (or: simq validate)"


def run(argv: Sequence[str] | None = None) -> int:
    opts = common.options(NAME, argv, __doc__)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", simq.UnstableWarning)  # the overload cases
        suite = run_suite(jobs=1 if opts.executor == "serial" else (opts.workers or 2),
                          only="M/M/1 rho=0.3" if opts.quick else None)
    folder = write_outputs(suite, opts.out, force=True)
    t = suite.table.copy()
    # Where each check sits inside its pass band: |deviation| <= 1 passes.
    t["deviation"] = (t["measured"] - t["theory"]) / t["tolerance"]

    cases = list(dict.fromkeys(t["case"]))
    fig, ax = plt.subplots(figsize=(8, 0.28 * len(cases) + 1.5))
    y = np.array([cases.index(c) for c in t["case"]], dtype=float)
    colors = np.where(t["pass"], "tab:blue", "tab:red")
    ax.scatter(t["deviation"].clip(-2, 2), y, c=colors, s=14, alpha=0.8)
    ax.axvspan(-1, 1, color="0.92", zorder=0, label="pass band (CI + allowance)")
    ax.axvline(0, color="0.5", lw=0.8)
    ax.set_yticks(range(len(cases)), cases, fontsize="small")
    ax.invert_yaxis()
    ax.set_xlim(-2.1, 2.1)
    ax.set_xlabel("(measured − theory) / tolerance")
    ax.set_title(f"{len(t)} checks in {len(cases)} cases: {int(t['pass'].sum())} pass")
    ax.legend(fontsize="small", loc="lower right")
    fig.tight_layout()

    rep = common.Report(
        "Validation: the simulator against queueing theory",
        "Does simq reproduce the exact (and the best approximate) results of queueing "
        "theory on the canonical models, within the uncertainty of its own estimates?")
    rep.figures["validation"] = fig
    worst = t.reindex(t["deviation"].abs().sort_values(ascending=False).index).head(8)
    rep.add(f"""
{len(t)} checks in {len(cases)} cases, {int(t['pass'].sum())} pass, {int((~t['pass']).sum())}
fail. The full table is `validation.csv` and `validation.md` (written exactly as
`simq validate` writes them). A check passes when |measured − theory| is within the
Student-t half-width over the replications at the Bonferroni-corrected level, plus an
allowance of 1% of theory for exact results (20% for the Kingman and Allen–Cunneen
approximations); see `docs/theory.md` for the rule.

The figure puts every check on the same scale: its deviation divided by its tolerance,
so the grey band [−1, 1] is the pass band. The checks closest to its edge:

{common.md_table(worst[["case", "quantity", "measured", "ci95", "theory", "model",
                        "deviation"]])}
""")
    rep.write(opts, COMMAND)
    plt.close(fig)
    assert folder == opts.out or folder.resolve() == opts.out.resolve()
    return 0


if __name__ == "__main__":
    common.main_guard(run)
