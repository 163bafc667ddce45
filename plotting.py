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
        values = np.stack([np.asarray(v)[:len(steps)] for _, v in curves])
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
