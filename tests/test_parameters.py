"""The parameter table, and every face held against it: the same names, the
same checks, one default per parameter (and the table's own exceptions, by
face, where it states them)."""

import argparse

import numpy as np
import pytest

from handprop import ElasticNet, MLPClassifier, RunSettings
from handprop.cli import build_parser
from handprop.train import parameters as table
from handprop.train.parameters import PARAMETERS


def _train_parser() -> argparse.ArgumentParser:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices["train"]


def _table_defaults(context=None) -> tuple[dict, dict]:
    return table.resolve({}, context=context)


def test_run_settings_defaults_are_the_tables():
    _, run = _table_defaults()
    assert RunSettings().to_dict() == RunSettings(**run).to_dict()
    assert RunSettings().momentum == 0.9 and RunSettings().epochs == 20  # stated, once
    assert RunSettings().penalty == ElasticNet()


def test_every_run_setting_is_a_table_parameter():
    from dataclasses import fields

    settings = {f.name for f in fields(RunSettings)} - {"penalty"}
    assert settings | {"l1", "l2"} == set(table.RUN)
    assert set(table.NET) == {"hidden", "activation", "output", "dtype"}


@pytest.mark.parametrize("dataset,context", [("moons", "moons"), ("moons-small", "moons"),
                                             ("mnist", None), ("data.csv", None)])
def test_handprop_train_defaults_are_the_tables(dataset, context):
    from handprop.cli.train import _given, _run_of

    args = _train_parser().parse_args(["--dataset", dataset])
    run = _run_of(args, _given(args))
    net, settings = _table_defaults(context)
    assert run.net == {**net, "hidden": list(net["hidden"])}
    assert run.settings == RunSettings(**settings)
    if context == "moons":  # the exception the table states
        assert run.settings.epochs == PARAMETERS["epochs"].where["moons"] == 100


def test_handprop_train_has_an_option_per_parameter_with_the_tables_help():
    parser = _train_parser()
    options = {a.dest: a for a in parser._actions}
    for name, p in PARAMETERS.items():
        action = options[name]
        assert action.option_strings[0] == "--" + name.replace("_", "-")
        assert action.default is None  # the table's default, resolved by context
        assert action.help == p.help_text()
        assert f"default {p.text(p.default) if p.kind != 'lambdas' else '0'}" in action.help
    assert not parser.allow_abbrev


def test_the_sweep_defaults_and_vocabulary_are_the_tables():
    from handprop.sweep import DEFAULTS, trial_values, vocabulary

    assert DEFAULTS == {n: p.default for n, p in PARAMETERS.items()}
    assert trial_values({}) == _table_defaults()
    assert trial_values({}, context="moons") == _table_defaults("moons")
    names = vocabulary()
    for name, p in PARAMETERS.items():
        assert name in names and all(part in names for part in p.parts)
    net, run = trial_values({"l2": 0.1, "l2_W2": 0.5, "beta2": 0.99, "dropout_hidden": 0.3,
                             "depth": 3, "width": 16})
    assert net["hidden"] == (16, 16, 16)
    assert run["penalty"] == ElasticNet.per_matrix([0] * 4, [0.1, 0.6, 0.1, 0.1])
    assert run["betas"] == (0.9, 0.99) and run["dropout"] == (0.0, 0.3)


def test_the_playgrounds_settings_are_the_tables_with_its_stated_defaults():
    pytest.importorskip("flask")
    from handprop.playground import create_app, parse_settings

    settings = parse_settings({})
    for name in table.names_in("playground"):
        p = PARAMETERS[name]
        expected = p.default_for("playground")
        if p.kind == "lambdas":
            expected = [0.0] * (len(settings["hidden"]) + 1)
        elif isinstance(expected, tuple):
            expected = list(expected)
        assert settings[name] == expected, name
    assert set(table.names_in("playground")) == set(PARAMETERS) - {"augment"}
    served = create_app().test_client().get("/api/parameters").get_json()["parameters"]
    assert [p["name"] for p in served] == list(table.names_in("playground"))
    for p in served:
        assert p["text"] == PARAMETERS[p["name"]].text(
            PARAMETERS[p["name"]].default_for("playground"))


def test_the_estimators_extras_are_checked_by_the_table():
    clf = MLPClassifier(hidden_layer_sizes=(3, 2))
    assert table.per_matrix("l1", clf.l1, 3) == (0.0,) * 3 == \
        table.per_matrix("l1", PARAMETERS["l1"].default, 3)
    assert tuple(clf.dropout) == PARAMETERS["dropout"].default
    X, y = np.zeros((4, 2)), np.array([0, 1, 0, 1])
    with pytest.raises(ValueError, match="l2 must be one lambda, or one per weight matrix "
                                         r"\(3 for this net\), got 2"):
        MLPClassifier(hidden_layer_sizes=(3, 2), l2=(0.1, 0.2)).fit(X, y)
    with pytest.raises(ValueError, match="dropout must be a rate"):
        MLPClassifier(dropout="x").fit(X, y)


@pytest.mark.parametrize("name,text,expected", [
    ("patience", "0", None), ("patience", "none", None), ("max_norm", "0", None),
    ("nesterov", "true", True), ("betas", "0.8,0.9", (0.8, 0.9)),
    ("hidden", "64,32", (64, 32)), ("dropout", "0.5", (0.0, 0.5)),
])
def test_text_is_read_as_the_cli_and_the_url_write_it(name, text, expected):
    p = PARAMETERS[name]
    assert p.check(text, text=True) == expected
    if expected is not None:
        assert p.check(p.text(expected), text=True) == expected  # and written back


@pytest.mark.parametrize("name,value,message", [
    ("lr", "1e999", "lr must be a number > 0, got '1e999'"),
    ("epochs", "١٢", "epochs must be an integer >= 1"),  # other scripts' digits
    ("momentum", "1", r"momentum must be a number in \[0, 1\), got 1"),
    ("activation", "nope", "activation must be one of"),
    ("l2", "0.1,-1", "l2 must be a number >= 0, got -1"),
])
def test_bad_text_is_refused_with_the_parameters_name(name, value, message):
    with pytest.raises(ValueError, match=message):
        PARAMETERS[name].check(value, text=True)


def test_python_values_are_not_read_as_text():
    with pytest.raises(TypeError, match="lr must be a number"):
        RunSettings(lr="0.1")
