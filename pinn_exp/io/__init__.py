"""Run records: atomic writes of metrics, history, collocation points and checkpoints."""
