"""Persistence: the operations store (cohorts, predictions, call lists, outcomes, alerts)."""
