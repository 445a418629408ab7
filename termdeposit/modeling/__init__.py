"""Models: features, the pipeline, training, the registry, scoring engines and evaluation."""
