"""The claim's table and plots: per initialisation and metric the mean, the seed standard deviation and
every seed; for each pretrained method whether it beats random initialisation by more than twice the
seed standard deviation (the larger of the two rows' stds)."""
from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path

Results = dict[str, dict[int, dict[str, float]]]  # init name -> seed -> metric -> value


@dataclass
class Stat:
    """One metric of one initialisation over seeds."""

    values: list[float]

    def __bool__(self) -> bool:
        return bool(self.values)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.values)

    @property
    def std(self) -> float:
        """Sample standard deviation over seeds (0 for one seed)."""
        return statistics.stdev(self.values) if len(self.values) > 1 else 0.0

    def __str__(self) -> str:
        return f"{self.mean:.1f} ± {self.std:.1f} ({', '.join(f'{v:.1f}' for v in self.values)})"


def stat(results: Results, init: str, metric: str) -> Stat:
    """``metric`` of ``init`` over the seeds that report it, in seed order."""
    runs = results.get(init, {})
    return Stat([runs[seed][metric] for seed in sorted(runs) if metric in runs[seed]])


def metrics_of(results: Results) -> list[str]:
    """The metric names of the results, in the order the runs first report them."""
    return list(dict.fromkeys(m for runs in results.values() for metrics in runs.values() for m in metrics))


def beats(pretrained: Stat, random: Stat) -> tuple[float, float, bool]:
    """(mean difference, 2 x the larger seed std, whether the difference exceeds it)."""
    diff, bar = pretrained.mean - random.mean, 2 * max(pretrained.std, random.std)
    return diff, bar, diff > bar


def markdown_table(results: Results, pairs: list[tuple[str, str]]) -> str:
    """One row per initialisation (mean ± std (every seed)) and, under each pretrained row, the
    difference to its random-init row with the 2-std verdict (none with one seed). ``pairs``:
    (pretrained, random) names."""
    metrics = metrics_of(results)
    lines = ["| init | " + " | ".join(metrics) + " |", "|---" * (len(metrics) + 1) + "|"]
    for pre, rand in pairs:
        for name in (rand, pre):
            lines.append(f"| {name} | " + " | ".join(str(stat(results, name, m) or "–") for m in metrics) + " |")
        lines.append(f"| {pre} − {rand} | " + " | ".join(_verdict(results, pre, rand, m) for m in metrics) + " |")
    return "\n".join(lines)


def _verdict(results: Results, pre: str, rand: str, metric: str) -> str:
    """'+2.1 vs 2σ 1.3: **yes**' (no verdict with fewer than 2 seeds on either side, '–' without runs)."""
    pretrained, random = stat(results, pre, metric), stat(results, rand, metric)
    if not pretrained.values or not random.values:
        return "–"
    diff, bar, ok = beats(pretrained, random)
    verdict = ("**yes**" if ok else "no") if min(len(pretrained.values), len(random.values)) > 1 else "- (1 seed)"
    return f"{diff:+.1f} vs 2σ {bar:.1f}: {verdict}"


def plot_seeds(results: Results, path: Path, unit: str = "top-1 (%)") -> Path:
    """One panel per metric: every seed's value per initialisation (points) and the mean (bar); an
    initialisation without runs of a metric has no bar."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics, inits = metrics_of(results), list(results)
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.2 * len(metrics), 3.6), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        for x, init in enumerate(inits):
            values = stat(results, init, metric).values
            if not values:
                continue
            ax.bar(x, statistics.fmean(values), color="#ccc" if init.startswith("random") else "#9cf")
            ax.plot([x] * len(values), values, "k.", markersize=6)
        ax.set_xticks(range(len(inits)), inits, rotation=60, ha="right", fontsize=8)
        ax.set_title(f"{metric} {unit}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_curves(curves: dict[str, list[tuple[int, float]]], path: Path) -> Path:
    """The kNN monitor over pretraining (the method's own features): top-1 (%) against iteration, one
    line per run ('<method> s<seed>'), one colour per method."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    colours = {}
    for label, points in sorted(curves.items()):
        method = label.split()[0]
        colour = colours.setdefault(method, f"C{len(colours)}")
        if points:
            ax.plot(*zip(*points), marker=".", color=colour, alpha=0.8, label=label)
    ax.set_xlabel("pretraining iteration")
    ax.set_ylabel("kNN monitor top-1 (%), all labels")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
