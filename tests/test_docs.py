"""The documentation the code defines stays the code's: the options, results-folder and command
pages are what `python -m resdepth.docgen` writes today, every CSV column has its meaning, the README
stays a front door (10 KB or less, the course's figure first, every page it links shipped), and no
link or "see ... below" points at nothing."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from resdepth import docblocks, docgen, results
from resdepth.runs import RUN_FIELDS

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", sorted(docgen.PAGES))
def test_generated_page_is_current(name: str) -> None:
    assert (ROOT / "docs" / name).read_text() == docgen.PAGES[name](), (
        f"docs/{name} is stale: run `python -m resdepth.docgen`"
    )


def test_every_column_has_a_meaning() -> None:
    run_fields = {f.name for f in RUN_FIELDS}
    for column in (*results.METRICS_COLUMNS, *results.RUNS_COLUMNS):
        assert column in results.COLUMN_HELP or column in run_fields, column
    assert set(results.COLUMN_HELP) <= {*results.METRICS_COLUMNS, *results.RUNS_COLUMNS}


def test_readme_is_a_front_door() -> None:
    readme = (ROOT / "README.md").read_text()
    assert len(readme.encode()) <= 10_000
    first_image = re.search(r"!\[[^\]]*\]\(([^)]+)\)", readme)
    assert first_image is not None and first_image.group(1) == "results/reference/course/figures/layers.png"
    assert (ROOT / first_image.group(1)).is_file()


@pytest.mark.parametrize(
    "page", ["README.md", *(f"docs/{p.name}" for p in sorted((ROOT / "docs").glob("*.md")))]
)
def test_every_local_link_resolves(page: str) -> None:
    path = ROOT / page
    for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", path.read_text()):
        if not target.startswith(("http://", "https://")):
            assert (path.parent / target).exists(), f"{page} links {target}, which is not shipped"


def test_every_test_the_docs_name_exists() -> None:
    # docs/guarantees.md says which test holds each promise: a renamed test must not leave it unheld.
    defined = {
        m for p in (ROOT / "tests").glob("test_*.py") for m in re.findall(r"def (test_\w+)", p.read_text())
    }
    for page in (ROOT / "docs").glob("*.md"):
        columns = {*results.METRICS_COLUMNS, *results.RUNS_COLUMNS}  # test_error and the like
        named = set(re.findall(r"`(test_\w+)`", page.read_text())) - columns
        assert named <= defined, f"docs/{page.name} names {sorted(named - defined)}, which no test defines"


PAGES = ["README.md", *(f"docs/{p.name}" for p in sorted((ROOT / "docs").glob("*.md")))]


def anchors(page: Path) -> set[str]:
    """The anchors GitHub gives a page's headings: lower case, punctuation dropped, spaces as
    hyphens, a repeated one numbered."""
    seen: dict[str, int] = {}
    out = set()
    for heading in re.findall(r"^#+ (.+)$", page.read_text(), flags=re.MULTILINE):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        out.add(slug if slug not in seen else f"{slug}-{seen[slug]}")
        seen[slug] = seen.get(slug, 0) + 1
    return out


@pytest.mark.parametrize("page", PAGES)
def test_every_anchor_a_link_names_exists(page: str) -> None:
    path = ROOT / page
    for target, anchor in re.findall(r"\]\(([^)#\s]*)#([^)\s]+)\)", path.read_text()):
        linked = path.parent / target if target else path
        if not target.startswith(("http://", "https://")):
            assert anchor in anchors(linked), f"{page} links {target}#{anchor}, which has no such heading"


@pytest.mark.parametrize("page", PAGES)
def test_a_section_named_below_or_above_is_on_that_page_there(page: str) -> None:
    """`see "On a GPU" below` must name a heading of this page that comes after the sentence (before
    it, for above): one on another page is a link, not a direction."""
    text = (ROOT / page).read_text()
    headings = [(m.start(), m.group(1).strip()) for m in re.finditer(r"^#+ (.+)$", text, flags=re.MULTILINE)]
    for m in re.finditer(r"[\"'“]([^\"'”\n]{3,60})[\"'”] (below|above)", text):
        name, where = m.group(1), m.group(2)
        at = [pos for pos, heading in headings if heading.startswith(name)]
        assert at, f"{page}: '{name}' {where} names no heading of this page"
        assert any((pos > m.start()) == (where == "below") for pos in at), f"{page}: '{name}' is not {where}"


@pytest.mark.parametrize("page", PAGES)
def test_every_number_from_the_results_is_what_the_results_give_today(page: str) -> None:
    text = (ROOT / page).read_text()
    assert docblocks.render(text, ROOT) == text, f"{page}'s results blocks are stale: run `make docs`"


def test_a_changed_result_makes_the_page_stale_until_make_docs(tmp_path: Path) -> None:
    """On a copy: one final training error changed in the course's metrics.csv, and the README's
    table of means no longer matches until it is rendered again."""
    # the folders the README's blocks and values come from
    for name in ("course", "paper", "quick", "longer"):
        shutil.copytree(
            ROOT / docblocks.REFERENCE / name,
            tmp_path / docblocks.REFERENCE / name,
            ignore=shutil.ignore_patterns("*.pt"),  # weights: no block reads them
        )
    course = tmp_path / docblocks.REFERENCE / "course"
    readme = (ROOT / "README.md").read_text()
    assert docblocks.render(readme, tmp_path) == readme
    metrics = pd.read_csv(course / results.METRICS)
    last = metrics[(metrics["arch"] == "plain") & (metrics["depth"] == 26)]["epoch"].idxmax()
    metrics.loc[last, "train_error"] += 3.0
    metrics.to_csv(course / results.METRICS, index=False)
    rendered = docblocks.render(readme, tmp_path)
    assert rendered != readme
    changed = [line for line in rendered.splitlines() if line not in readme.splitlines()]
    assert len(changed) == 1 and changed[0].startswith("| 26 | 46.22 ± ")  # the plain mean, +1.00
    assert docblocks.render(rendered, tmp_path) == rendered  # and once rendered, current again


def test_a_number_inside_a_sentence_comes_from_the_results(tmp_path: Path) -> None:
    """The quick demo's minutes per seed are the sums of its runs' epoch times: ten more minutes in
    one epoch of seed 0 move the first number, and nothing else of the sentence."""
    shutil.copytree(ROOT / docblocks.REFERENCE / "quick", tmp_path / docblocks.REFERENCE / "quick")
    sentence = "took <!-- value:quick-minutes -->a typo<!-- /value --> minutes for seeds 0, 1 and 2"
    assert docblocks.render(sentence, tmp_path) == sentence.replace("a typo", "36, 38 and 33")
    folder = tmp_path / docblocks.REFERENCE / "quick"
    metrics = pd.read_csv(folder / results.METRICS)
    metrics.loc[metrics.index[(metrics["seed"] == 0)][0], "epoch_seconds"] += 600
    metrics.to_csv(folder / results.METRICS, index=False)
    assert docblocks.render(sentence, tmp_path) == sentence.replace("a typo", "46, 38 and 33")
    with pytest.raises(ValueError, match="no results value named 'quick-hours'"):
        docblocks.render("<!-- value:quick-hours -->1<!-- /value -->", tmp_path)


def test_the_trained_nets_tables_count_completed_runs_only(tmp_path: Path) -> None:
    """The trained half of why-resnets-work.md: a run whose runs.csv row says it did not finish is
    left out of every table, even with its diagnostics rows still in the CSVs (a checkpoint measured
    as far as it got is not a trained net)."""
    longer = tmp_path / docblocks.REFERENCE / "longer"
    shutil.copytree(ROOT / docblocks.REFERENCE / "longer", longer, ignore=shutil.ignore_patterns("*.pt"))
    page = (ROOT / "docs" / "why-resnets-work.md").read_text()
    blocks = ("trained-landscape", "trained-shatter", "trained-lesion", "trained-signal", "trained-paths")
    before = {name: docblocks.BLOCKS[name](tmp_path) for name in blocks}
    assert all(f"<!-- results:{name} -->\n{table}\n" in page for name, table in before.items())
    assert all("| ResNet-20 |" in table for table in before.values())
    runs = pd.read_csv(longer / results.RUNS, dtype=str, keep_default_na=False)
    runs.loc[(runs["arch"] == "resnet") & (runs["depth"] == "20"), "status"] = results.Status.INTERRUPTED
    runs.to_csv(longer / results.RUNS, index=False)
    for name in ("trained-landscape", "trained-shatter", "trained-lesion", "trained-signal"):
        after = docblocks.BLOCKS[name](tmp_path)
        assert "| ResNet-20 |" not in after and "| plain-20 |" in after and "| ResNet-56 |" in after
    paths = docblocks.BLOCKS["trained-paths"](tmp_path)  # a plain net has no paths: ResNet-56 alone
    assert "| ResNet-20 |" not in paths and paths.count("\n") == 2 and "| ResNet-56 | 27 |" in paths


def test_the_line_from_init_climbs_above_its_start_in_plain_56_alone() -> None:
    """why-resnets-work.md's sentences on the straight line from init (BN on the statistics of the
    blended net at each point): both 20-layer nets' losses fall at every step, ResNet-20's from the
    higher start; ResNet-56's stays below its start; plain-56's climbs above it."""
    f = pd.read_csv(ROOT / docblocks.REFERENCE / "longer" / "diagnostics" / "landscape.csv")
    line = {
        net: g.sort_values("alpha")["loss"].to_numpy() for net, g in f[f["kind"] == "path"].groupby("net")
    }
    assert all((np.diff(line[net]) < 0).all() for net in ("plain-20", "ResNet-20"))
    assert line["ResNet-20"][0] > line["plain-20"][0]
    assert line["ResNet-56"].max() == line["ResNet-56"][0] and line["plain-56"].max() > line["plain-56"][0]


def test_figure_6s_gaps_point_the_right_way_and_a_reversed_order_is_an_error(tmp_path: Path) -> None:
    """The sentences of results.md that state Figure 6's order: plain-56 above plain-20 by its final
    errors (24.81 - 13.15, 23.49 - 9.73), and the epoch from which ResNet-56 stays below ResNet-20.
    Should a run change so that ResNet-56 ends above, rendering fails rather than print a wrong epoch."""
    longer = tmp_path / docblocks.REFERENCE / "longer"
    shutil.copytree(ROOT / docblocks.REFERENCE / "longer", longer, ignore=shutil.ignore_patterns("*.pt"))
    value = docblocks.VALUES
    assert (
        value["longer-plain-56-above-20"](tmp_path)
        == "11.66 points in test error and 13.76 in training error"
    )
    assert value["longer-resnet-56-below-20"](tmp_path) == "epoch 15 of 30"
    runs = results.read_runs(longer)
    resnet56 = next(i for i, r in runs.items() if (r["arch"], r["depth"], r["seed"]) == ("resnet", "56", "0"))
    metrics = pd.read_csv(longer / results.METRICS)
    last = (metrics["run_id"] == resnet56) & (metrics["epoch"] == 30)
    metrics.loc[last, "train_error"] = 7.5  # ResNet-20 ends at 7.30
    metrics.to_csv(longer / results.METRICS, index=False)
    with pytest.raises(ValueError, match="seed 0.s resnet-56 ends above resnet-20"):
        value["longer-resnet-56-below-20"](tmp_path)


def test_a_56_layer_pair_trained_to_different_epochs_shows_each_as_far_as_it_got(tmp_path: Path) -> None:
    """The paper's 56-layer pair once one net has trained on alone (ResNet-56, on another machine):
    each shows to its own last epoch, the other's cells blank; its processor names both machines,
    in order; and a comparison at an epoch fails to render until the run has got there."""
    paper = tmp_path / docblocks.REFERENCE / "paper"
    shutil.copytree(ROOT / docblocks.REFERENCE / "paper", paper, ignore=shutil.ignore_patterns("*.pt"))
    runs = pd.read_csv(paper / results.RUNS, dtype=str, keep_default_na=False)
    at56 = runs[runs["depth"] == "56"].set_index("arch")["run_id"]
    reached = {at56["plain"]: 12, at56["resnet"]: 19}
    metrics = pd.read_csv(paper / results.METRICS)
    kept = metrics["epoch"] <= metrics["run_id"].map(reached).fillna(metrics["epoch"])
    metrics[kept].to_csv(paper / results.METRICS, index=False)
    for run, epoch in reached.items():
        runs.loc[runs["run_id"] == run, "epochs_done"] = str(epoch)
    runs.loc[runs["run_id"] == at56["resnet"], "cpu_bf16"] = "no + yes"
    runs.to_csv(paper / results.RUNS, index=False)
    assert docblocks.VALUES["paper-56-reached"](tmp_path) == "ResNet-56 at epoch 19 of 164, plain-56 at 12"
    assert docblocks.BLOCKS["paper-56-progress"](tmp_path).splitlines()[-4:] == [
        "| 10 | 0.1 | 57.58 | 16.87 | 55.10 | 18.32 |",
        "| 12 | 0.1 | 54.89 | 15.17 | 54.14 | 23.84 |",
        "| 15 | 0.1 |  | 13.42 |  | 17.66 |",
        "| 19 | 0.1 |  | 11.78 |  | 16.10 |",
    ]
    (line,) = (ln for ln in docblocks.BLOCKS["paper-runs"](tmp_path).splitlines() if "| ResNet-56," in ln)
    assert "| fp32, AMD EPYC (no fast bf16 + fast bf16) |" in line
    with pytest.raises(ValueError, match="ResNet-56 or ResNet-20 has not reached epoch 40"):
        docblocks.VALUES["paper-resnet-56-epoch-40"](tmp_path)
    with pytest.raises(ValueError, match="plain-56 or plain-20 has not reached epoch 19"):
        docblocks.VALUES["paper-plain-56-epoch-19"](tmp_path)


def test_a_verdict_of_one_seed_has_no_empty_per_seed_line(tmp_path: Path) -> None:
    """A reference folder with one seed of each net (as longer/ is until seeds 1-2 end) gets the
    report's verdict, saying it rests on one seed, and no per-seed clause: there is nothing to list."""
    course = tmp_path / docblocks.REFERENCE / "course"
    shutil.copytree(ROOT / docblocks.REFERENCE / "course", course)
    runs = pd.read_csv(course / results.RUNS, dtype=str, keep_default_na=False)
    runs[runs["seed"] == "0"].to_csv(course / results.RUNS, index=False)
    metrics = pd.read_csv(course / results.METRICS)
    metrics[metrics["seed"] == 0].to_csv(course / results.METRICS, index=False)
    line = docblocks.BLOCKS["course-verdict"](tmp_path)
    assert line.startswith("`resdepth report results/reference/course`: *degradation reproduced: ")
    assert line.endswith("the verdict rests on one seed per net*.")
    assert "**" not in line and "per seed (" not in line


def test_a_gap_between_runs_of_two_precisions_is_an_error(tmp_path: Path) -> None:
    """Figure 6's gaps are means over seeds of one net: should plain-20 have been run in bf16 and
    plain-56 in fp32, the difference of their means compares two recipes, so rendering fails."""
    longer = tmp_path / docblocks.REFERENCE / "longer"
    shutil.copytree(ROOT / docblocks.REFERENCE / "longer", longer, ignore=shutil.ignore_patterns("*.pt"))
    runs = pd.read_csv(longer / results.RUNS, dtype=str, keep_default_na=False)
    runs.loc[(runs["arch"] == "plain") & (runs["depth"] == "20"), "precision"] = "bf16"
    runs.to_csv(longer / results.RUNS, index=False)
    with pytest.raises(ValueError, match="longer: plain-56 and plain-20 mix precisions"):
        docblocks.VALUES["longer-plain-56-above-20"](tmp_path)
    assert docblocks.VALUES["longer-resnet-20-above-56"](tmp_path).startswith("0.05 points in test error")


def test_bench_records_render_as_measured(tmp_path: Path) -> None:
    """speed.md's recorded benches are the `bench --json` files as written, and the bf16 gain is
    taken only between the two precisions of one machine (threads aside), never across machines."""
    folder = tmp_path / docblocks.REFERENCE / "bench"
    folder.mkdir(parents=True)

    def record(name: str, hardware: str, precision: str, rate: float) -> None:
        run = {"arch": "resnet", "depth": 56, "norm": "bn", "activation": "relu", "device": "cpu",
               "precision": precision, "resdepth": rate, "textbook": 100.0, "engine": "eager",
               "ratio": rate / 100.0, "epochs_164_seconds": 36_000.0}  # fmt: skip
        text = {"hardware": hardware, "torch": "2.13.0+cpu", "measured_at": "2026-12-08T01:30:00+00:00",
                "runs": [run], "paper_sweep_seconds": {}}  # fmt: skip
        (folder / f"{name}.json").write_text(json.dumps(text))

    record("a-fp32", "CPU A (AVX512, AVX512-BF16), 2 threads", "fp32", 142.0)
    record("a-bf16", "CPU A (AVX512, AVX512-BF16), 2 threads", "bf16", 231.0)
    record("a-bf16-1", "CPU A (AVX512, AVX512-BF16), 1 threads", "bf16", 120.0)  # no fp32 on 1 thread
    record("b-bf16", "CPU B (AVX512, AMX), 2 threads", "bf16", 503.0)  # no fp32 of B: no gain
    table = docblocks.BLOCKS["bench-records"](tmp_path).splitlines()
    assert len(table) == 2 + 4 and table[2].startswith(
        "| CPU A (AVX512, AVX512-BF16), 1 threads | 2026-12-08 |"
    )
    assert table[4].endswith("| fp32 | 142 | 100 | 1.42x | 10 h 00 min |")
    gain = docblocks.VALUES["bench-bf16-gain"](tmp_path)
    assert gain == "1.63x (ResNet-56) to 1.63x (ResNet-56) on CPU A (AVX512, AVX512-BF16), 2 threads"
    record("a-fp32-again", "CPU A (AVX512, AVX512-BF16), 2 threads", "fp32", 150.0)
    with pytest.raises(ValueError, match="two records of ResNet-56 in fp32"):
        docblocks.VALUES["bench-bf16-gain"](tmp_path)
