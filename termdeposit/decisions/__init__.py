"""Decisions a manager makes: money at every threshold, the call list, the A/B hold-out."""
