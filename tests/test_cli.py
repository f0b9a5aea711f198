"""The command line as a user meets it: help, describe, and one-line errors with exit code 2."""

from __future__ import annotations

import json
from typing import Any

import pytest
import typer

from resdepth.cli import app


def _leaves(command: Any, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every runnable command under `command`, as its words after `resdepth`."""
    subs = getattr(command, "commands", None)
    if not subs:
        return [path]
    return [leaf for name, sub in subs.items() for leaf in _leaves(sub, (*path, name))]


def test_help_lists_every_command_and_each_has_examples(cli) -> None:
    root = typer.main.get_command(app)
    registered = root.commands  # type: ignore[attr-defined]
    assert {"sweep", "report", "plot", "diagnose", "describe", "bench", "data", "export"} <= set(registered)
    r = cli("--help")
    assert r.code == 0
    for name in registered:
        assert f" {name} " in r.out, f"{name} is missing from --help"
    for words in _leaves(root):
        sub = cli(*words, "--help")
        assert sub.code == 0 and "Examples:" in sub.out, f"resdepth {' '.join(words)} --help has no examples"


def test_describe_json_gives_params_macs_and_stages(cli) -> None:
    r = cli("describe", "--arch", "plain,resnet", "--depth", "20,56", "--json")
    assert r.code == 0
    nets = json.loads(r.out)
    assert [(n["arch"], n["depth"], n["params"]) for n in nets] == [
        ("plain", 20, 269_722), ("plain", 56, 853_018), ("resnet", 20, 269_722), ("resnet", 56, 853_018),
    ]  # fmt: skip
    assert nets[3]["stages"][2] == {"blocks": 9, "channels": 64, "size": 8}
    assert all(n["family"] == "cifar" and n["macs"] > 0 for n in nets)


def test_describe_classic_net_lists_layers(cli) -> None:
    r = cli("describe", "--arch", "alexnet", "--json")
    (net,) = json.loads(r.out)
    assert net["params"] == 62_378_344
    assert net["layers"][0] == {"name": "conv1", "shape": "55x55x96", "params": 34_944,
                                "macs": 55 * 55 * 96 * 3 * 11 * 11}  # fmt: skip


def test_describe_table_shows_shapes_and_totals(cli) -> None:
    r = cli("describe", "--arch", "resnet", "--depth", "18", "--family", "imagenet")
    assert r.code == 0
    assert "4x4x512" in r.out
    assert "11,173,962" in r.out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--depth", "abc"], "--depth takes comma-separated whole numbers"),
        (["--depth", "7"], "depth 7 cannot be built"),
        (["--depth", "0"], "depth 0 cannot be built"),
        (["--depth", "-20"], "depth -20 cannot be built"),
        (["--family", "imagenet", "--depth", "20"], "not an imagenet-family depth"),
        (["--arch", "transformer"], "unknown arch 'transformer'"),
        (["--family", "mobile"], "unknown family 'mobile'"),
        (["--depth", "200002", "--arch", "plain"], "would need about"),
        (["--classes", "-3"], "--classes takes a positive number, got -3"),
        (["--input", "0"], "--input takes a positive number, got 0"),
    ],
)
def test_describe_bad_input_is_one_line_exit_2(cli, args: list[str], message: str) -> None:
    r = cli("describe", *args)
    assert r.code == 2
    assert message in r.err
    assert len(r.err.strip().splitlines()) == 1
    assert "Traceback" not in r.err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["sweep", "--epochs", "abc"], "error: Invalid value for '--epochs'"),
        (["sweep", "--bogus"], "error: No such option: --bogus"),
        (["report"], "error: Missing argument 'RESULTS'."),
        (["plot", "--nosuch", "x"], "error: No such option: --nosuch"),
    ],
)
def test_an_option_click_refuses_is_one_line_naming_the_commands_help(
    cli, args: list[str], message: str
) -> None:
    r = cli(*args)
    assert r.code == 2 and r.err.startswith(message)
    assert r.err.strip().splitlines() == [r.err.strip()] and f"(see resdepth {args[0]} --help)" in r.err


def test_a_group_without_its_command_shows_its_help(cli) -> None:
    r = cli("data")
    assert r.code == 2 and "download" in r.out + r.err and "error" not in r.err
