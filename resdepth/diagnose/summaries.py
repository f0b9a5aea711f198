"""Each measurement's line per net and state, from its rows (seeds pooled): what `resdepth diagnose`
prints. One function per measurement; `registry` says which is whose."""

from __future__ import annotations

import numpy as np
import pandas as pd

from resdepth.errors import UserError

# The start's summary: the first report whose mean loss is below this (ln 10 = 2.30 is chance).
START_LOSS = 2.0
KEYS = ["net", "state"]  # a line per net and state (init, or the checkpoint's epoch)
# The interval given on a mean path length: these percentiles of the bootstrap's resamples.
PATH_INTERVAL = (5, 95)
MEAN_K_BOUNDS = tuple(f"mean k, {p}%" for p in PATH_INTERVAL)  # the interval's columns in `paths`
BOOTSTRAP = 2000


def grads(f: pd.DataFrame) -> pd.DataFrame:
    first = f[f["layer"] == 1].groupby(KEYS)["grad_norm"].mean()
    last = f[f["layer"] == f.groupby(["net", "state", "seed"])["layer"].transform("max")]
    last_mean = last.groupby(KEYS)["grad_norm"].mean()
    return pd.DataFrame(
        {"first layer": first, "classifier": last_mean, "first / classifier": first / last_mean}
    )


def responses(f: pd.DataFrame) -> pd.DataFrame:
    g = f.groupby(KEYS)["std"]
    return pd.DataFrame({"mean std": g.mean(), "max std": g.max()})


def lesion(f: pd.DataFrame) -> pd.DataFrame:
    """Single deletions of shape-keeping blocks (which a plain net can lose too) apart from a
    residual net's downsampling blocks (kind `downsampling`, which only a shortcut can stand in for)."""
    table = f.groupby([*KEYS, "kind"])["error"].mean().unstack("kind")
    table["worst single"] = f[f["kind"] == "single"].groupby(KEYS)["error"].max()
    top = f[f["kind"] == "random"]
    top = top[top["k"] == top.groupby(KEYS)["k"].transform("max")]
    table["k deleted"] = top.groupby(KEYS)["k"].max()
    table["error, k deleted"] = top.groupby(KEYS)["error"].mean()
    renamed = table.rename(
        columns={"intact": "intact error", "single": "mean single", "downsampling": "mean downsampling"}
    )
    return renamed.drop(columns=["random"], errors="ignore")


def scale(f: pd.DataFrame) -> pd.DataFrame:
    std = f.groupby([*KEYS, "name"], sort=False)["std"].mean().unstack("name")
    last_stage = [c for c in std.columns if str(c).startswith("stage")][-1]
    return pd.DataFrame(
        {
            "stem std": std["stem"],
            "stream std (last stage)": std[last_stage],
            "logit std": std["logits"],
            "loss": f.groupby(KEYS)["loss"].mean(),
        }
    )


def start(f: pd.DataFrame) -> pd.DataFrame:
    below = f[f["loss"] < START_LOSS].groupby([*KEYS, "seed"])["iteration"].min()
    per_seed = below.reindex(pd.MultiIndex.from_frame(f[[*KEYS, "seed"]].drop_duplicates()))
    last = f[f["iteration"] == f.groupby([*KEYS, "seed"])["iteration"].transform("max")]
    return pd.DataFrame(
        {
            f"its to loss < {START_LOSS:g}, mean": per_seed.groupby(KEYS).mean(),
            "min": per_seed.groupby(KEYS).min(),
            "max": per_seed.groupby(KEYS).max(),
            "never (seeds)": per_seed.isna().groupby(KEYS).sum(),
            "loss at the end": last.groupby(KEYS)["loss"].mean(),
        }
    )


def identity(f: pd.DataFrame) -> pd.DataFrame:
    by = f.groupby(KEYS)
    return pd.DataFrame(
        {
            "grown to": by["grown_to"].first(),
            "max |Δlogit|": by["max_abs_diff"].max(),
            "error": by["error"].mean(),
            "grown error": by["grown_error"].mean(),
        }
    )


def shatter(f: pd.DataFrame) -> pd.DataFrame:
    corr = f.groupby([*KEYS, "lag"], sort=False)["correlation"].mean().unstack("lag")
    return pd.DataFrame({f"r at lag {lag}": corr[lag] for lag in (1, 8, 64) if lag in corr.columns})


def path_gradients(f: pd.DataFrame) -> pd.DataFrame:
    """Per net, state and path length k: the gradient norm one path carries (mean of the samples),
    the number of such paths, and the share of the whole gradient all of them carry."""
    by = f.groupby([*KEYS, "k"], sort=False).agg(
        blocks=("blocks", "first"), paths=("paths", "first"), grad=("grad_norm", "mean")
    )
    total = by["grad"] * by["paths"].astype(float)
    return by.assign(share=total / total.groupby(level=KEYS, sort=False).transform("sum"))


def paths(f: pd.DataFrame) -> pd.DataFrame:
    g = path_gradients(f).reset_index()
    out = {}
    for key, rows in g.groupby(KEYS, sort=False):
        k, share = rows["k"].to_numpy(), rows["share"].to_numpy()
        low, high = mean_k_interval(f[(f["net"] == key[0]) & (f["state"] == key[1])])
        out[key] = {
            "blocks": int(rows["blocks"].iloc[0]),
            "k carrying most": int(k[share.argmax()]),
            "mean k of the gradient": float(
                _mean_k(rows["grad"].to_numpy(), rows["paths"].to_numpy(float), k)
            ),
            **dict(zip(MEAN_K_BOUNDS, (low, high), strict=True)),
            "k holding 90%": int(k[(share.cumsum() >= 0.9).argmax()]),
        }
    return pd.DataFrame.from_dict(out, orient="index").rename_axis(KEYS)


def _mean_k(grad: np.ndarray, paths: np.ndarray, k: np.ndarray) -> np.ndarray:
    """The mean length of the paths the whole gradient takes (over the last axis): each length k
    weighted by what all paths of that length carry, one path's mean gradient times their number."""
    total = grad * paths
    return np.asarray((total * k).sum(axis=-1) / total.sum(axis=-1))


def mean_k_interval(rows: pd.DataFrame) -> tuple[float, float]:
    """How far the mean path length of the whole gradient moves with the draws: `PATH_INTERVAL`'s
    percentiles over bootstrap resamples of one net's draws, each draw (a batch of images, measured
    at every k) resampled whole, within its own seed where seeds are pooled. One path's gradient is
    heavy-tailed over the choice of blocks, so the mean k of a few draws can be far from that of
    many. It is the draws' noise only, not the spread between seeds; a fixed seed fixes it."""
    draws = rows.assign(run_id=rows["run_id"].fillna("")).pivot(
        index=["run_id", "seed", "sample"], columns="k", values="grad_norm"
    )
    if draws.isna().to_numpy().any():
        raise UserError(f"paths.csv: a draw of {rows['net'].iloc[0]} lacks some path lengths k")
    k = draws.columns.to_numpy(float)
    paths = rows.groupby("k")["paths"].first().reindex(draws.columns).to_numpy(float)
    rng = np.random.default_rng(0)
    sums = np.zeros((BOOTSTRAP, len(k)))
    for _, seed_draws in draws.groupby(level=["run_id", "seed"]):
        grad = seed_draws.to_numpy()
        sums += grad[rng.integers(0, len(grad), size=(BOOTSTRAP, len(grad)))].sum(axis=1)
    low, high = np.percentile(_mean_k(sums / len(draws), paths, k), PATH_INTERVAL)
    return float(low), float(high)


def landscape(f: pd.DataFrame) -> pd.DataFrame:
    """The loss at the weights, about half a filter's norm away along the 1-D direction (the points
    nearest |α| = 0.5, both sides) and at the plane's corners: how fast the loss rises around it."""
    one, two = f[f["kind"] == "1d"], f[f["kind"] == "2d"]
    off = (one["alpha"].abs() - 0.5).abs()
    corner = (two["alpha"].abs() == 1) & (two["beta"].abs() == 1)
    return pd.DataFrame(
        {
            "loss": one[one["alpha"] == 0].groupby(KEYS, sort=False)["loss"].mean(),
            "loss near |α| = 0.5": one[off == off.min()].groupby(KEYS, sort=False)["loss"].mean(),
            "loss at the plane's corners": two[corner].groupby(KEYS, sort=False)["loss"].mean(),
        }
    )
