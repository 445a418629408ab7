"""The API's routes, by concern: the service itself, scoring, and the outcomes of calls."""
