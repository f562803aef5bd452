"""The playground: the assignment's experiments, live, in a browser.

``handprop playground`` starts a local web server (Flask, the
``[playground]`` extra) and opens its page. handprop's own code trains on
the server: each run is a net, a data set of points in the plane, and the
epoch runner that ``fit`` uses (:mod:`handprop.train.runner`); the page asks
for a few minibatch steps at a time and draws what comes back.

- :mod:`~handprop.playground.runs`: the data sets, the settings (the
  parameter table's, with the playground's defaults) and a run;
- :mod:`~handprop.playground.server`: the Flask application and ``serve``;
- ``static/``: the page, plain HTML, CSS and JavaScript (no build step, no CDN).
"""

from .data import DATA, DATASETS, FEATURES, LIMITS, Uploads, make_data
from .runs import PRESETS, Run, parse_settings
from .server import MAX_RUNS, NoSuchRun, Runs, create_app, serve

__all__ = ["create_app", "serve", "Run", "Runs", "NoSuchRun", "parse_settings", "make_data",
           "DATASETS", "DATA", "FEATURES", "PRESETS", "LIMITS", "MAX_RUNS", "Uploads"]
