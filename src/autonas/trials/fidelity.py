"""How much of the training split each trial trains on, when ``data_fraction`` is "auto".

A search that fits only a handful of trials is random sampling, however clever its
strategy: regularized evolution needs a random population first and then generations of
mutations. On a large training set at a short budget, full-data trials leave room for a
few trials only, so "auto" trains every trial on the same stratified share of the
training split, sized from a timed probe so that the search holds about ``TARGET_TRIALS``
trials. Small training sets are never cut below ``MIN_TRIAL_IMAGES``: there, the images
are the scarce thing, and each one a trial drops makes its score noisier.

The fraction is decided once per study and stored in it, so a resumed search and the
workers that join it train on the same images as the trials before them.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

import optuna
import torch

from ..spaces.base import build_network
from ..training.device import to_channels_last
from ..training.loop import BACKWARD_FACTOR, probe_forward_seconds

if TYPE_CHECKING:
    from ..strategies.base import SearchContext
    from ..strategies.multitrial import MultiTrialStrategy

AUTO = "auto"
TARGET_TRIALS = 25
"""Trials an "auto" search aims to hold: a population of 6 (see ``scaled_population``)
and three times as many mutations. BreastMNIST's 10-minute search holds about this many
full-data trials, and there evolution beat random sampling."""
MIN_TRIAL_IMAGES = 1000
"""An "auto" fraction never trains a trial on fewer training images than this."""
PROBE_IMAGES = 64
FRACTION_ATTR = "trial_data_fraction"


def trial_seconds_per_image(strategy: MultiTrialStrategy, ctx: SearchContext) -> float:
    """Seconds a trial spends per training image and epoch, from one timed forward pass
    of a network drawn from the space at the trial size (its weights and every random
    generator the trials use are left alone)."""
    arch = ctx.space.sample(random.Random(ctx.seed))
    with torch.random.fork_rng(devices=[]):
        model = build_network(ctx.space, arch, strategy.build_spec(ctx.data))
    model = to_channels_last(model.to(ctx.device))
    x = ctx.data.train_x[:PROBE_IMAGES].float()
    return BACKWARD_FACTOR * probe_forward_seconds(model, x, normalizer=None,
                                                   device=ctx.device)


def auto_fraction(n_train: int, n_val: int, seconds_per_image: float, epochs: int,
                  seconds: float, trials: float) -> float:
    """The training-split share at which ``trials`` trials of ``epochs`` epochs (training
    at ``seconds_per_image``, validating each epoch at a third of it) fit in ``seconds``;
    at least ``MIN_TRIAL_IMAGES`` images, at most all of them; rounded to 0.01."""
    if n_train <= MIN_TRIAL_IMAGES:
        return 1.0
    per_trial = seconds / trials
    validation = epochs * n_val * seconds_per_image / BACKWARD_FACTOR
    fraction = (per_trial - validation) / (epochs * n_train * seconds_per_image)
    floor = MIN_TRIAL_IMAGES / n_train
    return round(min(1.0, max(floor, fraction)), 2)


def resolve_data_fraction(strategy: MultiTrialStrategy, ctx: SearchContext,
                          study: optuna.Study) -> float:
    """The share of the training split every trial of this study trains on (a given one,
    the one the study chose before, or an "auto" one sized now), stored in the study."""
    stored = study.user_attrs.get(FRACTION_ATTR)
    if strategy.data_fraction != AUTO:
        fraction = float(strategy.data_fraction)
        if stored != fraction:
            study.set_user_attr(FRACTION_ATTR, fraction)
        return fraction
    if stored is not None:
        return float(stored)
    fraction = 1.0
    n_train = len(ctx.data.train_y)
    if n_train > MIN_TRIAL_IMAGES and ctx.deadline.at is not None:
        trials = TARGET_TRIALS if strategy.max_trials is None else min(TARGET_TRIALS,
                                                                      strategy.max_trials)
        fraction = auto_fraction(
            n_train, len(ctx.data.val_y), trial_seconds_per_image(strategy, ctx),
            strategy.trial_epochs, ctx.deadline.remaining(),
            trials / max(1, strategy.workers))
    study.set_user_attr(FRACTION_ATTR, fraction)
    return fraction
