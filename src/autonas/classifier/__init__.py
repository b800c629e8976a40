"""The parts of :class:`autonas.api.ImageClassifier` that are not the estimator itself:
label sets (multi-label targets), epoch callbacks and console verbosity, the mapping of
the constructor's arguments onto a run configuration, and the model-size cap."""
