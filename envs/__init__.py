"""Environment construction, the rollout loop, evaluation and score normalization."""
