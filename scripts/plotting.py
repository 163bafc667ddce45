"""Plots shared by the scripts: validation-loss curves per arm (mean and band over seeds)."""
import numpy as np

ARM_COLOURS = {"bpe_tied": "tab:blue", "kron": "tab:red", "bpe_untied": "tab:green"}


def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def plot_val_curves(curves_by_arm, path, title="validation loss", ylabel="val loss (nats/token)"):
    """curves_by_arm: {arm: [(steps, values), ...]} one entry per seed; draws the mean and, with
    several seeds, a min-max band. Seeds must share evaluation steps."""
    plt = _plt()
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
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
