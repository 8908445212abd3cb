#!/usr/bin/env python3
"""Summarise `weightflow eval-shift --json` reports of several seeds into one markdown table.

    python3 scripts/summarise-seeds.py runs/seeds/s0.json runs/seeds/s1.json ...

One row per shift, method and window size N: the mean TPR over the seeds with its range, the mean AUROC, the
fresh null windows' FPR per seed, how many seeds' FPR exceeds the protocol's bound α + 2 s.e. (`fpr_se`, the
binomial s.e. of each report), and the mean FPR over all reports with its s.e. √(Σ fpr_se²)/reports.
docs/DETECT.md ("Per-f windows") was written with it. Standard library only.
"""

import json
import sys
from collections import OrderedDict


def main(paths):
    if not paths:
        sys.exit(__doc__)
    cells = OrderedDict()
    alphas = set()
    for path in paths:
        with open(path, encoding="utf-8") as f:
            report = json.load(f)
        alphas.add(report["settings"]["alpha"])
        for row in report["results"]:
            cells.setdefault((row["shift"], row["method"], row["n"]), []).append(row)
    if len(alphas) != 1:
        sys.exit(f"the reports were run at different levels α: {sorted(alphas)}")
    alpha = alphas.pop()
    print(f"{len(paths)} reports, α = {alpha}\n")
    print(
        "| shift | method | N | TPR, mean [min, max] | AUROC, mean | FPR fresh per report | over α + 2 s.e. "
        "| FPR, mean ± s.e. |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for (shift, method, n), rows in cells.items():
        tprs = [r["tpr"] for r in rows]
        over = sum(r["fpr_fresh"] > alpha + 2 * r["fpr_se"] for r in rows)
        fprs = " / ".join(f"{r['fpr_fresh']:.3f}" for r in rows)
        auroc = sum(r["auroc"] for r in rows) / len(rows)
        fpr = sum(r["fpr_fresh"] for r in rows) / len(rows)
        fpr_se = sum(r["fpr_se"] ** 2 for r in rows) ** 0.5 / len(rows)
        print(
            f"| {shift} | {method} | {n} | {sum(tprs) / len(tprs):.3f} [{min(tprs):.3f}, {max(tprs):.3f}] "
            f"| {auroc:.3f} | {fprs} | {over} of {len(rows)} | {fpr:.3f} ± {fpr_se:.3f} |"
        )


if __name__ == "__main__":
    main(sys.argv[1:])
