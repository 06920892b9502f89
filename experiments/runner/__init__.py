"""One run: config checks, fit and test, checkpoints, records (metrics.json), fingerprints."""
