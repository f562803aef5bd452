"""Training: a run's parameters, its one step, and the loop of epochs.

- :mod:`~handprop.train.parameters`: the table of a run's parameters, from
  which every face is built;
- :mod:`~handprop.train.settings`: ``RunSettings``, a run's frozen settings;
- :mod:`~handprop.train.optimizers` and :mod:`~handprop.train.schedules`;
- :mod:`~handprop.train.step`: the one training step;
- :mod:`~handprop.train.history`: one record per epoch;
- :mod:`~handprop.train.runner`: the epoch runner (history, early stopping,
  rollback, device copies, state);
- :mod:`~handprop.train.training`: ``fit`` and ``evaluate``;
- :mod:`~handprop.train.checkpoint`: checkpoints, the log and signals.

It imports the core and the basics, never a face.
"""
