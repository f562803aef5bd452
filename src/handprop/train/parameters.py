"""The parameters of a run: one table, from which every face is built.

Each hyper-parameter is described once, by a :class:`Parameter`: its name,
its kind, its range or choices, its default, one line of help, and whether
it takes one value per hidden layer or per weight matrix. Every face reads
the table and translates it into its own idiom:

- :class:`handprop.RunSettings` validates its fields with it;
- ``handprop train`` has an option per parameter (``--batch-size`` for
  ``batch_size``), with the table's help and default (:func:`add_options`);
- ``handprop sweep``'s space files use the table's names, and their values
  are checked by it before any study is made (:mod:`handprop.sweep`);
- the playground's form, its URL keys and its checks come from the table,
  which the page fetches (:func:`to_json`);
- the estimators check their extra parameters (``l1``, ``l2``,
  ``dropout``) with it.

**One default per parameter.** Where a face needs another value (the number
of epochs on two moons, a small net in the playground), the entry says so in
``where``, and ``--help`` and the page show it.

>>> PARAMETERS["lr"].check("0.05", text=True)
0.05
>>> PARAMETERS["l2"].check("1e-4", n_weights=3)
(0.0001, 0.0001, 0.0001)
>>> PARAMETERS["hidden"].check("512,256")
(512, 256)
>>> PARAMETERS["epochs"].default_for("moons"), PARAMETERS["epochs"].default
(100, 20)
"""

from __future__ import annotations

import argparse
import math
import numbers
from dataclasses import dataclass, field

import numpy as np

from .. import validate
from ..core import activations as act
from ..core.outputs import OUTPUTS
from ..errors import InputError, InputTypeError
from .optimizers import OPTIMIZERS
from .schedules import SCHEDULES

__all__ = ["Parameter", "PARAMETERS", "NET", "RUN", "add_options", "resolve", "to_json",
           "per_matrix", "sweep_names", "dataset_context", "names_in"]

#: The kinds of value a parameter takes.
KINDS = ("int", "float", "choice", "flag", "layers", "lambdas", "rates", "pair", "kinds")


@dataclass(frozen=True)
class Parameter:
    """One hyper-parameter of a run.

    Attributes
    ----------
    name : its name everywhere: a RunSettings field (or MLP argument), a
        space-file key, a URL key; ``--name`` with dashes on the CLI
    kind : "int", "float", "choice", "flag", "layers" (hidden sizes),
        "lambdas" (one per weight matrix), "rates" (input and hidden dropout),
        "pair" (two numbers), "kinds" (distortions, comma-separated)
    default : the one default
    help : one line
    low, high, low_open, high_open : the range of a number (of each number)
    choices : the names a "choice" takes
    optional : None is a value too ("off")
    part : "net" (an argument of MLP) or "run" (a field of RunSettings)
    per : "layer" or "matrix" when it takes one value per hidden layer or
        per weight matrix
    parts : the names of its scalars where a sweep searches them one by one
        (``dropout_in`` and ``dropout_hidden``; ``beta1`` and ``beta2``)
    where : the defaults of the faces and data sets that need another, by
        name ("moons", "playground"), with the reason in ``why``
    metavar : how ``--help`` names its value
    off : for an optional parameter, the number that also means None where
        values are text (the CLI, a URL, a form): a patience of 0 is no early
        stopping there; in Python, None is
    not_in : the faces it does not apply to, by name, with the reason in ``why``
    live : it may change while a run trains (``Runner.retune``): the
        playground changes it without a reset
    """

    name: str
    kind: str
    default: object
    help: str
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple[str, ...] = ()
    optional: bool = False
    part: str = "run"
    per: str | None = None
    parts: tuple[str, ...] = ()
    where: dict = field(default_factory=dict)
    why: str = ""
    metavar: str | None = None
    off: float | None = None
    not_in: tuple[str, ...] = ()
    live: bool = False

    # -- values -----------------------------------------------------------------

    def default_for(self, context: str | None = None):
        """The default where ``context`` (a face or a data set) needs its own."""
        return self.where.get(context, self.default) if context else self.default

    def check(self, value, *, n_weights: int | None = None, text: bool = False):
        """``value`` checked: an InputError (ValueError) or InputTypeError
        (TypeError) that names the parameter and what it takes. With
        ``text``, a string is read as the CLI and the URL write values
        ("0.1", "none", "true"). A "lambdas" parameter needs the number of
        weight matrices to spread one value over them all."""
        if isinstance(value, str) and text and (self.optional or self.kind == "kinds") and \
                value.strip().lower() in ("", "none", "off"):
            value = None
        if value is None:
            if self.optional or self.kind == "kinds":
                return None
            raise InputTypeError(f"{self.name} must be {self.describe()}, got None")
        kind = self.kind
        if kind in ("int", "float"):
            value = _parsed(value, kind, self) if text else value
            if text and self.off is not None and not isinstance(value, bool) and \
                    value == self.off:  # forms write "off" as a number
                return None
            return self._number(self.name, value)
        if kind == "choice":
            return validate.choice(self.name, value, self.choices)
        if kind == "flag":
            return _flag(self.name, value) if text else validate.flag(self.name, value)
        if kind == "layers":
            return validate.hidden_sizes(value, self.name)
        if kind == "lambdas":
            return per_matrix(self.name, value, n_weights)
        if kind == "rates":
            return validate.dropout_rates(value)
        if kind == "pair":
            return self._pair(value)
        if kind == "kinds":
            if not isinstance(value, str) and not callable(value):
                raise InputTypeError(f"{self.name} must be None, a string of kinds, or a "
                                     f"callable, got {type(value).__name__}")
            return value
        raise AssertionError(kind)

    def _number(self, name: str, value):
        return validate.number(name, value, low=self.low, high=self.high,
                               low_open=self.low_open, high_open=self.high_open,
                               integer=self.kind == "int")

    def _pair(self, value):
        if isinstance(value, str):
            value = [_parsed(v, "float", self) for v in value.split(",")]
        if not isinstance(value, (tuple, list, np.ndarray)) or len(value) != 2:
            raise InputError(f"{self.name} must be {self.describe()}, got {value!r}"[:200])
        return tuple(validate.number(f"{self.parts[i]}", v, low=self.low, high=self.high,
                                     low_open=self.low_open, high_open=self.high_open)
                     for i, v in enumerate(value))

    def describe(self) -> str:
        """What the parameter takes, in words (for messages and help)."""
        kind = self.kind
        if kind in ("int", "float", "pair"):
            what = "an integer" if kind == "int" else "a number"
            where = validate._bounds(self.low, self.high, self.low_open, self.high_open)
            text = f"{what} {where}".strip()
            if kind == "pair":
                text = f"two numbers ({', '.join(self.parts)}), each {where}"
            off = f" ({_number_text(self.off)} is none too)" if self.off is not None else ""
            return text + (f", or none{off}" if self.optional else "")
        if kind == "choice":
            return "one of " + ", ".join(self.choices)
        if kind == "flag":
            return "true or false"
        if kind == "layers":
            return "one or more positive integers, comma-separated (one per hidden layer)"
        if kind == "lambdas":
            return "a lambda >= 0 for every weight matrix, or one per matrix (W1,W2,...)"
        if kind == "rates":
            return "a hidden dropout rate in [0, 1), or IN,HIDDEN"
        return "distortions: shift, affine, elastic, comma-separated, or none"

    def text(self, value) -> str:
        """``value`` written as the CLI and the URL write it."""
        if value is None:
            return "none"
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, (tuple, list)):
            return ",".join(_number_text(v) for v in value)
        return _number_text(value) if isinstance(value, numbers.Number) else str(value)

    # -- help ------------------------------------------------------------------------

    def help_text(self) -> str:
        """The help line with its default, and the others where they differ."""
        others = "; ".join(f"{self.text(v)} on {k}" for k, v in self.where.items())
        shown = self.text(self.default) if self.kind != "lambdas" else "0"
        return (f"{self.help} (default {shown}" + (f"; {others}" if others else "")
                + ")")


def _number_text(v) -> str:
    if isinstance(v, (bool, np.bool_)):
        return "true" if v else "false"
    if isinstance(v, numbers.Integral):
        return str(int(v))
    return f"{float(v):g}" if float(v) == float(f"{float(v):g}") else repr(float(v))


def _parsed(value, kind: str, p: Parameter):
    """A number from a CLI's or a URL's text; other values as they are."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if not text.isascii():  # int() takes other scripts' digits, which no one means
        raise InputError(f"{p.name} must be {p.describe()}, got {value!r}"[:200])
    try:
        if kind == "int":
            return int(text)
        number = float(text)
    except ValueError:
        raise InputError(f"{p.name} must be {p.describe()}, got {value!r}"[:200]) from None
    if not math.isfinite(number):
        raise InputError(f"{p.name} must be {p.describe()}, got {value!r} (too large for a "
                         f"number, or not finite)"[:200])
    return number


def _flag(name: str, value) -> bool:
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("true", "1", "yes", "on"):
            return True
        if text in ("false", "0", "no", "off"):
            return False
        raise InputError(f"{name} must be true or false, got {value!r}"[:200])
    return validate.flag(name, value)


def per_matrix(name: str, value, n_weights: int | None) -> tuple[float, ...]:
    """The one parser of "one value, or one per weight matrix": a number, a
    sequence, or the text "a" or "a,b,c", as n_weights lambdas >= 0 (the
    values as given, when n_weights is None).

    >>> per_matrix("l1", 0.5, 2), per_matrix("l2", "0,1e-3,0", 3)
    ((0.5, 0.5), (0.0, 0.001, 0.0))
    """
    given = value
    if isinstance(value, str):
        try:
            value = [float(v) for v in value.split(",")]
        except ValueError:
            raise InputError(f"{name} must be one lambda, or one per weight matrix "
                             f"(W1,W2,...), got {given!r}"[:200]) from None
    elif isinstance(value, np.ndarray):
        value = value.tolist()
    if not isinstance(value, (tuple, list)):
        value = [value]
    values = tuple(validate.number(name, v, low=0) for v in value)
    if not values:
        raise InputError(f"{name} must be one lambda, or one per weight matrix, got none")
    if n_weights is None:
        return values
    if len(values) == 1:
        return values * n_weights
    if len(values) != n_weights:
        raise InputError(f"{name} must be one lambda, or one per weight matrix ({n_weights} "
                         f"for this net), got {len(values)}")
    return values


def _outputs_help() -> str:
    return ", ".join(f"{p.name} ({p.kind}, {p.loss_name})" for p in OUTPUTS.values())


_P = Parameter
#: The table: every parameter of a run, the net's first.
PARAMETERS: dict[str, Parameter] = {p.name: p for p in (
    _P("hidden", "layers", (512,), "hidden units, or one size per hidden layer, e.g. 512,256",
       part="net", per="layer", where={"playground": (8,)},
       why="the playground draws every unit", metavar="D_H[,D_H...]"),
    _P("activation", "choice", "relu", "the hidden layers' activation",
       choices=tuple(act.names()), part="net"),
    _P("output", "choice", next(iter(OUTPUTS)), "the output/loss pair: " + _outputs_help(),
       choices=tuple(OUTPUTS), part="net"),
    _P("dtype", "choice", "float32", "the precision of the parameters and the math",
       choices=("float32", "float64"), part="net", where={"playground": "float64"},
       why="the playground shows each number of a point's math"),
    _P("epochs", "int", 20, "epochs to train", low=1,
       where={"moons": 100, "playground": 5000},
       why="two moons are small and need many epochs; the playground runs until stopped, "
           "up to its limit"),
    _P("batch_size", "int", 100, "minibatch size K", low=1, where={"playground": 20},
       why="the playground's data sets have a few hundred points", metavar="K", live=True),
    _P("lr", "float", 0.1, "the learning rate (for adam, 0.001 suits)", low=0, low_open=True,
       live=True),
    _P("optimizer", "choice", "sgd", "sgd (with momentum) or adam", choices=tuple(OPTIMIZERS)),
    _P("momentum", "float", 0.9, "sgd's momentum", low=0, high=1, high_open=True, live=True),
    _P("nesterov", "flag", False, "Nesterov's momentum (sgd)"),
    _P("betas", "pair", (0.9, 0.999), "adam's decay rates of its two moments", low=0, high=1,
       high_open=True, parts=("beta1", "beta2"), metavar="BETA1,BETA2"),
    _P("epsilon", "float", 1e-8, "adam's epsilon", low=0, low_open=True),
    _P("schedule", "choice", "constant", "the learning-rate schedule", choices=SCHEDULES),
    _P("l1", "lambdas", (0.0,), "L1 lambdas: one for every weight matrix, or one per matrix",
       per="matrix", metavar="W1,W2,...", live=True),
    _P("l2", "lambdas", (0.0,), "L2 lambdas: one for every weight matrix, or one per matrix",
       per="matrix", metavar="W1,W2,...", live=True),
    _P("patience", "int", None, "stop after this many epochs without a better validation "
       "error (loss, for regression), keeping the best epoch; none or 0: no early stopping",
       low=1, optional=True, off=0),
    _P("seed", "int", 0, "seeds the initialization, the shuffling, dropout and distortions",
       low=0),
    _P("dropout", "rates", (0.0, 0.0), "dropout rates of the input and the hidden layers; one "
       "number is the hidden rate", parts=("dropout_in", "dropout_hidden"),
       metavar="IN,HIDDEN"),
    _P("max_norm", "float", None, "keep every row of the hidden layers' weights within this "
       "L2 norm; none or 0: no constraint", low=0, low_open=True, optional=True, off=0,
       metavar="C"),
    _P("label_smoothing", "float", 0.0, "target (1 - EPS) onehot + EPS / m (classes and "
       "labels)", low=0, high=1, high_open=True, metavar="EPS"),
    _P("augment", "kinds", None, "distort each training minibatch of images: shift, affine, "
       "elastic, or several, comma-separated (needs SciPy)", metavar="KINDS",
       not_in=("playground",), why="the playground's examples are points, not images"),
)}

#: The names of the net's parameters (MLP's arguments), and of the run's.
NET = tuple(n for n, p in PARAMETERS.items() if p.part == "net")
RUN = tuple(n for n, p in PARAMETERS.items() if p.part == "run")


def dataset_context(dataset: str) -> str | None:
    """The context whose defaults a data set takes: "moons" for the two-moons
    sets (small, so they need many epochs), else none.

    >>> dataset_context("moons-small"), dataset_context("mnist")
    ('moons', None)
    """
    return "moons" if dataset.startswith("moons") else None


def resolve(values: dict, *, context: str | None = None,
            text: bool = False) -> tuple[dict, dict]:
    """Every parameter of a run from ``values`` (name -> a value, or its
    text with ``text``; a parameter not given, or given as None where None
    is not a value, takes its default for ``context``), checked:
    (net, run), the arguments of MLP (hidden, activation, output, dtype) and
    those of RunSettings (with ``penalty`` for l1 and l2). An unknown name is
    an InputError that lists the known ones."""
    unknown = sorted(set(values) - set(PARAMETERS))
    if unknown:
        raise InputError(f"unknown parameter{'s' if len(unknown) > 1 else ''} "
                         f"{', '.join(unknown)}; the parameters are {', '.join(PARAMETERS)}")
    given = {name: values.get(name, p.default_for(context)) for name, p in PARAMETERS.items()}
    net = {n: PARAMETERS[n].check(given[n], text=text) for n in NET}
    n_weights = len(net["hidden"]) + 1
    run = {n: PARAMETERS[n].check(given[n], n_weights=n_weights, text=text) for n in RUN}
    from ..core.penalty import ElasticNet

    run["penalty"] = ElasticNet.per_matrix(run.pop("l1"), run.pop("l2"))
    return net, run


def sweep_names() -> dict[str, Parameter]:
    """The names a sweep's space takes, each with its parameter: the
    parameters themselves, their parts (``beta1``, ``dropout_hidden``), and
    for lambdas the per-matrix names (``l2_W1``, ``l2_W2``, ...: any k)."""
    out = {}
    for name, p in PARAMETERS.items():
        out[name] = p
        for part in p.parts:
            out[part] = p
    return out


def names_in(face: str) -> tuple[str, ...]:
    """The parameters a face takes: all but those that do not apply there."""
    return tuple(n for n, p in PARAMETERS.items() if face not in p.not_in)


def to_json(context: str | None = None) -> list[dict]:
    """The table as JSON, with the defaults of ``context``, and without the
    parameters that do not apply there: what the playground's page builds
    its form from."""
    out = []
    for p in PARAMETERS.values():
        if context in p.not_in:
            continue
        default = p.default_for(context)
        out.append({
            "name": p.name, "kind": p.kind, "help": p.help, "choices": list(p.choices),
            "default": list(default) if isinstance(default, tuple) else default,
            "text": p.text(default), "low": p.low, "high": p.high, "low_open": p.low_open,
            "high_open": p.high_open, "optional": p.optional, "per": p.per,
            "part": p.part, "parts": list(p.parts), "off": p.off, "live": p.live,
            "describe": p.describe()})
    return out


# --------------------------------------------------------------------------
# The command line
# --------------------------------------------------------------------------


def _option_type(p: Parameter):
    """An argparse type from a parameter's check: its error becomes
    argparse's one-line message. Lambdas are checked again once the depth
    is known."""
    def parse(text: str):
        try:
            if p.kind == "lambdas":
                return per_matrix(p.name, text, None)
            return p.check(text, text=True)
        except (TypeError, ValueError) as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    parse.__name__ = p.name
    return parse


def add_options(parser: argparse.ArgumentParser, names=None, *,
                context_help: str = "") -> None:
    """Add ``--name`` options for the parameters ``names`` (all by default)
    to ``parser``, typed, helped and defaulted by the table. Their default is
    None: :func:`resolve` gives the default where the face's context needs
    its own (say, two moons), so ``--help`` shows the table's."""
    for name in names or PARAMETERS:
        p = PARAMETERS[name]
        option = "--" + name.replace("_", "-")
        if p.kind == "flag":
            parser.add_argument(option, action=argparse.BooleanOptionalAction, default=None,
                                help=p.help_text())
            continue
        kwargs = {"choices": p.choices} if p.kind == "choice" else {"type": _option_type(p)}
        parser.add_argument(option, default=None, metavar=p.metavar or (
            None if p.kind == "choice" else name.upper()), help=p.help_text(), **kwargs)
