"""The leaderboard's page (benchmarks/leaderboard_page.py): tables that fit the page, labelled paper figures, long
reasons under the tables, and the budget paragraph written from the run's own config."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

from zoo.comparison.results import Results

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def page():
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(ROOT / "benchmarks"))
        yield importlib.import_module("leaderboard_page")


def _rows() -> list[dict]:
    long_error = "ValueError: weights do not fit 'mlp': size mismatch for fc1.weight: 256x64 in the weights, " * 2
    return [
        dict(model="lenet5", family="lenet", year=1998, params=61706, flops=833040, images=6000, status="full",
             top1=0.78, top1_spread=0.01, train_s=7.0, train_img_s=1700.0, wall_s=9.0,
             ref_top1="test error 0.95% (MNIST)"),
        dict(model="densenet_bc_100_k12", family="densenet", year=2017, params=769_000, flops=440e6, images=400,
             status="capped", top1=0.57, train_s=35.8, train_img_s=27.0, wall_s=65.0, ref_top1="top-1 74.4% (X)"),
        dict(model="vit_large_patch16", status="too slow", estimate_s=9578.0, probe_train_img_s=1.5, wall_s=21.0),
        dict(model="mlp", status="error", error=long_error, wall_s=0.0, weights="mlp.digits",
             weights_dataset="digits"),
    ]  # fmt: skip


def _tables(text: str) -> list[list[list[str]]]:
    blocks = re.findall(r"((?:^\|.*\n?)+)", text, re.M)
    return [
        [[c.strip() for c in line.strip().strip("|").split("|")] for line in b.strip().splitlines()[2:]] for b in blocks
    ]


@pytest.mark.parametrize("pretrained", [False, True])
def test_two_narrow_tables_and_the_long_reasons_under_them(page, pretrained):
    text = page.markdown_table(Results(_rows()), pretrained=pretrained)
    results, costs = _tables(text)
    assert len(results[0]) == (7 if pretrained else 6) and len(costs[0]) == 7  # was one table of 13-14 columns
    by_model = {r[1]: r for r in results}
    images = 4 if pretrained else 3  # after the "fine-tuned from" column
    assert by_model["`densenet_bc_100_k12`"][-1] == "capped" and by_model["`densenet_bc_100_k12`"][images] == "400"
    assert by_model["`vit_large_patch16`"][-1] == "too slow: ~9,578 s"
    assert by_model["`mlp`"][-1] == "failed (below)"
    assert all(len(cell) <= page.NOTE_WIDTH for row in results for cell in row[-1:])
    assert f"- `mlp`: {_rows()[3]['error'].strip()}" in text  # the whole reason, once, under the tables
    figures = {r[0]: r[-1] for r in costs}
    assert figures["`lenet5`"].startswith("test error") and figures["`densenet_bc_100_k12`"].startswith("top-1")


def test_reference_figures_say_which_metric_they_are(page):
    import leaderboard_run as lb

    from zoo import registry

    assert lb.reference_top1(registry.info("lenet5")) == "test error 0.95% (MNIST)"
    assert lb.reference_top1(registry.info("alexnet")).startswith("top-1 ")


def test_the_budget_paragraph_is_written_from_the_runs_config(page):
    budget = page.Budget(dataset="digits", limit=1234, test_limit=321, epochs=4, max_model_s=55.0, min_images=77,
                         seeds=3)  # fmt: skip
    text = page.budget_prose(budget)
    for shown in ("4 epochs", "1,234-image", "321-image", "55 s", "77 images", "27.5 s", "3 seeds", "digits"):
        assert shown in text, shown


def test_the_pages_prose_holds_no_budget_numbers_of_its_own():
    """The hand-written "Reading it" once described 3 epochs, 80 s and 1,000 test images for a run of 2 epochs,
    75 s and 500: the numbers now come from each run's config, inside the generated sections."""
    text = (ROOT / "docs" / "leaderboard.md").read_text()
    reading = text.split("## Reading it", 1)[1].split("\n## ", 1)[0]
    assert not re.search(r"\d[\d,]*\s*(?:-image|images|epochs|s per model|test images)", reading), reading
    for section in re.findall(r"<!-- leaderboard:(\S+) -->(.*?)<!-- /leaderboard:\1 -->", text, re.S):
        budget = re.search(r"\*\*Budget:\*\* \S+ at \d+ px: (\d+) epochs .*? at most (\d+) s", section[1]).groups()
        prose = re.search(r"\*\*This run's budget\.\*\* (\d+) epochs? .*? at most (\d+) s", section[1]).groups()
        assert budget == prose, section[0]
