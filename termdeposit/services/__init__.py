"""Use cases: every front door (CLI, API, dashboard) calls these, and adds presentation only."""
