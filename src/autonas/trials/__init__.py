"""Trials: the one loop that turns a proposal into a trained, scored trial (``runner``),
the Optuna study storage it runs on (``study``: SQLite for one process, PostgreSQL for
many workers), and the worker processes that share one study (``workers``)."""
