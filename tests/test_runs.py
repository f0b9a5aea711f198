"""A run's data model: `RunConfig`'s typed fields are the sweep's grid and recipe options, and every
shipped runs.csv row reads back as the run that wrote it (same run id; runs.csv rounds numbers to 6
decimals, which every shipped recipe fits in); a row that does not parse is one clear error."""

from __future__ import annotations

import csv
import dataclasses
import typing
from pathlib import Path

import pytest

from resdepth.config import OPTIONS, Role, SweepConfig, option_types
from resdepth.errors import UserError
from resdepth.models import NOT_APPLICABLE
from resdepth.runs import RUN_FIELDS, RunConfig, added_value, expand, net_name

REFERENCE = Path(__file__).resolve().parents[1] / "results" / "reference"
# Fields `expand` resolves into another type than the option's: a list of seeds into one seed, the
# warm-up rule into whether this run warms up, an optional width/shortcut/epochs into this run's value.
RESOLVED = {"seed": int, "warmup": bool, "width": int, "shortcut": str, "epochs": int, "milestones": tuple}


def test_run_fields_are_the_grid_and_recipe_options_in_runs_csv_order() -> None:
    names = [f.name for f in dataclasses.fields(RunConfig)]
    assert names == [f.name for f in RUN_FIELDS]
    hashed = {n for n, m in OPTIONS.items() if m.role in (Role.GRID, Role.RECIPE) and m.run is not None}
    assert {f.option for f in RUN_FIELDS} == hashed
    hints = typing.get_type_hints(RunConfig)
    for f in RUN_FIELDS:
        kind, _ = option_types()[f.option]
        want = RESOLVED.get(f.name, kind)
        hint = hints[f.name]
        assert want in (hint, typing.get_origin(hint), *typing.get_args(hint)), (
            f"{f.name}: {hint} is not {want}"
        )


def _shipped_rows() -> list[dict[str, str]]:
    rows = []
    for path in sorted(REFERENCE.glob("*/runs.csv")):
        with path.open(newline="") as f:
            rows += list(csv.DictReader(f))
    return rows


def test_every_shipped_runs_csv_row_reads_back_as_its_run() -> None:
    rows = _shipped_rows()
    assert len(rows) >= 42
    for row in rows:
        run = RunConfig.from_row(row)
        assert run.run_id == row["run_id"]
        assert net_name(row) == run.name


def test_a_row_from_before_norm_and_activation_existed_means_bn_and_relu() -> None:
    runs = expand(SweepConfig(arch=["plain", "lenet5"], depth=[8], epochs=2), {"cifar10": 50, "mnist": 60})
    for r in runs:
        row = {k: "" if v is None else str(v) for k, v in r.fields().items()}
        row["milestones"] = "0.5 0.75"
        old = {k: v for k, v in row.items() if k not in ("norm", "activation")}
        assert RunConfig.from_row(old) == r
    assert runs[1].norm == NOT_APPLICABLE


def test_a_row_that_does_not_parse_names_its_run_and_field() -> None:
    row = _shipped_rows()[0]
    with pytest.raises(UserError, match=rf"runs.csv row {row['run_id']}: warmup 'yes' is not a bool"):
        RunConfig.from_row({**row, "warmup": "yes"})
    with pytest.raises(UserError, match=r"depth 'None' is not a int"):
        RunConfig.from_row({**row, "depth": "None"})


@pytest.mark.parametrize(
    ("given", "same"), [({"lr": 1}, {"lr": 1.0}), ({"milestones": [0.5]}, {"milestones": (0.5,)})]
)
def test_a_number_given_as_int_or_list_is_the_same_run(
    given: dict[str, object], same: dict[str, object]
) -> None:
    """The run id hashes JSON, where 1 and 1.0 differ: a notebook's `lr=1` must not be a new run."""
    base = expand(SweepConfig(depth=[8], epochs=1), {"cifar10": 10})[0]
    assert base.replace(**given).run_id == base.replace(**same).run_id
    assert base.replace(**given) == base.replace(**same)


def test_an_option_added_later_reads_in_older_rows_as_it_was_meant(monkeypatch: pytest.MonkeyPatch) -> None:
    # norm and activation: the paper's values for residual nets, not applicable to a classic net.
    assert (added_value("norm", "plain"), added_value("norm", "lenet5")) == ("bn", NOT_APPLICABLE)
    # A recipe option added later (here, as if momentum had been) applies to classic nets as well:
    # an older LeNet-5 row meant the old value, and must still parse as the run that wrote it.
    added = tuple(dataclasses.replace(f, later=0.9) if f.name == "momentum" else f for f in RUN_FIELDS)
    monkeypatch.setattr("resdepth.runs.RUN_FIELDS", added)
    assert added_value("momentum", "lenet5") == "0.9"
