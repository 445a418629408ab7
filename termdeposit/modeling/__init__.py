"""Model training, scoring and evaluation."""
