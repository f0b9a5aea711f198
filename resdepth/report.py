"""The table of final errors by architecture and depth, and a verdict computed from it."""

from __future__ import annotations

import pandas as pd

from resdepth.analysis import Loaded, final_rows, per_net

# He et al. call it degradation when the deeper plain net trains worse; we ask for a rise of more
# than one point and a ResNet whose rise (if any) stays under a third of the plain net's.
MIN_RISE = 1.0


def table(loaded: Loaded) -> pd.DataFrame:
    """One row per (arch, depth): seeds, errors as mean and std, parameters and wall time."""
    nets = per_net(final_rows(loaded.metrics))
    params = (
        loaded.runs.assign(depth=pd.to_numeric(loaded.runs["depth"], errors="coerce"))
        .groupby(["arch", "depth"])["params"]
        .first()
    )
    nets["params"] = [params.get((a, d), "") for a, d in zip(nets["arch"], nets["depth"], strict=True)]
    order = {"plain": 0, "resnet": 1}
    nets["_order"] = nets["arch"].map(order).fillna(2)
    return nets.sort_values(["_order", "arch", "depth"]).drop(columns="_order").reset_index(drop=True)


def verdict(nets: pd.DataFrame) -> str:
    """A sentence that says whether the data shows degradation, with the numbers, or why not."""
    series = {
        arch: nets[nets["arch"] == arch].set_index("depth")["final_train_error_mean"].sort_index()
        for arch in ("plain", "resnet")
    }
    if any(s.empty for s in series.values()):
        return "not reproduced: the sweep needs both plain and resnet runs"
    depths = sorted(set(series["plain"].index) & set(series["resnet"].index))
    if len(depths) < 2:
        return "not reproduced: plain and resnet share fewer than two depths"
    shallow, deep = depths[0], depths[-1]
    p, r = series["plain"], series["resnet"]
    plain_rise, res_rise = p[deep] - p[shallow], r[deep] - r[shallow]
    plain_txt = f"plain training error {_trend(plain_rise)} with depth ({shallow}: {p[shallow]:.1f}% -> {deep}: {p[deep]:.1f}%)"
    res_txt = f"ResNet's {_trend(res_rise)} ({shallow}: {r[shallow]:.1f}% -> {deep}: {r[deep]:.1f}%)"
    epochs = int(nets["epochs"].max())
    if plain_rise > MIN_RISE and res_rise < plain_rise / 3 and r[deep] < p[deep]:
        if res_rise > MIN_RISE:  # a short run: deeper ResNets lag a little before they overtake
            res_txt = res_txt.replace("rises", f"rises far less, {res_rise:.1f} points")
        return f"degradation reproduced: {plain_txt}, {res_txt}"
    why = []
    if plain_rise <= MIN_RISE:
        why.append("the deeper plain net does not train worse")
    elif res_rise >= plain_rise / 3:
        why.append("the deeper ResNet also trains much worse")
    if r[deep] >= p[deep]:
        why.append(f"ResNet-{deep} is not below plain-{deep}")
    hint = f" ({epochs} epochs may be too short: the paper trains 164)" if epochs < 164 else ""
    return f"not reproduced: {'; '.join(why)}: {plain_txt}, {res_txt}{hint}"


def _trend(rise: float) -> str:
    if rise > MIN_RISE:
        return "rises"
    return "falls" if rise < -MIN_RISE else "stays level"


def _pm(mean: float, std: float, seeds: int) -> str:
    return f"{mean:.2f}" if seeds < 2 else f"{mean:.2f} ± {std:.2f}"


def rows(nets: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    header = [
        "net",
        "seeds",
        "epochs",
        "final test err %",
        "best test err %",
        "final train err %",
        "params",
        "wall time",
    ]
    body = []
    for n in nets.to_dict("records"):
        seeds = int(n["seeds"])
        body.append(
            [
                str(n["label"]),
                str(seeds),
                str(int(n["epochs"])),
                *(
                    _pm(n[f"{c}_mean"], n[f"{c}_std"], seeds)
                    for c in ("final_test_error", "best_test_error", "final_train_error")
                ),
                f"{int(n['params']):,}" if str(n["params"]).strip() not in ("", "nan") else "",
                f"{n['wall_seconds_mean']:.0f} s",
            ]
        )
    return header, body


def markdown(nets: pd.DataFrame) -> str:
    header, body = rows(nets)
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in body]
    return "\n".join(lines) + f"\n\n{verdict(nets)}\n"
