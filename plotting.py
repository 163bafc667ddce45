"""Plotting shared by scripts and probes: headless pyplot, figure saving, validation-loss curves."""

import numpy as np

ARM_COLOURS = {"bpe_tied": "tab:blue", "kron": "tab:red", "bpe_untied": "tab:green", "kron_tied": "tab:purple"}


def pyplot():
    """matplotlib.pyplot on the headless Agg backend (imported lazily: only plotting code pays for it)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path, dpi=120):
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    pyplot().close(fig)
    return path


def plot_val_curves(curves_by_arm, path, title="validation loss", ylabel="val loss (nats/token)"):
    """curves_by_arm: {arm: [(steps, values), ...]} one entry per seed; draws the mean and, with
    several seeds, a min-max band. Seeds must share evaluation steps."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for arm, curves in curves_by_arm.items():
        steps = np.asarray(curves[0][0])
        values = np.stack([np.asarray(v)[: len(steps)] for _, v in curves])
        colour = ARM_COLOURS.get(arm)
        label = f"{arm} (n={len(curves)})" if len(curves) > 1 else arm
        ax.plot(steps, values.mean(0), color=colour, label=label, lw=1.8)
        if len(curves) > 1:
            ax.fill_between(steps, values.min(0), values.max(0), color=colour, alpha=0.2, lw=0)
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    return save_figure(fig, path)


def plot_forest(labels, series, path, xlabel="gap (nats), 95 % CI"):
    """One row per label, one marker per series: the mean with its interval as a bar. series: [(name,
    [(mean, (lo, hi) or None, filled) or None per label])]; filled markers are concluded figures, hollow
    ones open; a missing entry draws nothing."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(10, 0.55 * len(labels) + 1.8))
    offsets = np.linspace(-0.25, 0.25, len(series)) if len(series) > 1 else [0.0]
    colours = ["tab:blue", "tab:orange", "tab:green", "tab:purple"]
    for (name, points), dy, colour in zip(series, offsets, colours):
        for row, point in enumerate(points):
            if point is None:
                continue
            mean, ci, filled = point
            y = len(labels) - 1 - row + dy
            if ci:
                ax.plot(ci, [y, y], color=colour, lw=1.6)
            ax.plot(
                [mean],
                [y],
                "o",
                color=colour,
                mfc=colour if filled else "white",
                ms=6,
                label=name if row == next(i for i, p in enumerate(points) if p) else None,
            )
    ax.axvline(0, color="k", lw=0.8)
    ax.set_yticks(range(len(labels)), labels[::-1])
    ax.set_xlabel(xlabel)
    ax.grid(axis="x", alpha=0.3)
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=len(series), fontsize=8, frameon=False)
    return save_figure(fig, path)


def plot_scaling(panels, targets, path):
    """Loss against training tokens, one panel per arm: each model size's measured cells (mean over seeds)
    as markers and its fitted curve as a line, extended to the forecast targets, with the targets' own
    size as a dashed curve and each target as a star. panels: [(arm, [(size label, N, [(D, loss)])],
    predict(N, D array) -> losses)]; targets: [(label, N, D)]."""
    plt = pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 4.2), sharey=True, squeeze=False)
    d_all = [d for _, sizes, _ in panels for _, _, cells in sizes for d, _ in cells] + [t[2] for t in targets]
    ds = np.geomspace(min(d_all) / 1.3, max(d_all) * 1.3, 200)
    colours = pyplot().get_cmap("viridis")
    for ax, (arm, sizes, predict) in zip(axes[0], panels):
        for k, (label, n, cells) in enumerate(sizes):
            colour = colours(k / max(len(sizes), 2))
            ax.plot(ds, predict(n, ds), color=colour, lw=1.2)
            ax.scatter([d for d, _ in cells], [loss for _, loss in cells], color=colour, s=18, label=label, zorder=3)
        for label, n, d in targets:
            ax.plot(ds, predict(n, ds), color="black", lw=1, ls="--")
            ax.scatter([d], predict(n, np.array([d])), marker="*", s=120, color="black", zorder=4)
            ax.annotate(label, (d, float(predict(n, np.array([d]))[0])), textcoords="offset points", xytext=(-10, 8), fontsize=8)
        ax.set_xscale("log")
        ax.set_title(arm, fontsize=10)
        ax.set_xlabel("training tokens D")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("final test loss (nats/token)")
    axes[0][0].legend(fontsize=8, title="size", title_fontsize=8)
    return save_figure(fig, path)
