"""The one exception type users can meet, with messages written for them."""

from __future__ import annotations

from dataclasses import dataclass


class TermDepositError(Exception):
    """An error a user can meet: the message says what is wrong and what to do.

    The dashboard shows it in an error box, the CLI prints it and exits non-zero, the API
    answers 4xx with it. Never a raw traceback.
    """

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(f"{message} {hint}".strip() if hint else message)


@dataclass(frozen=True)
class Problem:
    """One validation problem: where it is and what was expected."""

    column: str
    rows: str
    problem: str

    def as_dict(self) -> dict[str, str]:
        """Return the problem as a plain dict (for tables and JSON)."""
        return {"column": self.column, "rows": self.rows, "problem": self.problem}


class CohortValidationError(TermDepositError):
    """A cohort file that cannot be scored; ``problems`` lists every problem found at once."""

    def __init__(
        self, problems: list[Problem], summary: str = "The file cannot be scored."
    ) -> None:
        self.problems = list(problems)
        self.summary = summary
        lines = [
            f"{p.column}: {p.problem} (rows {p.rows})" if p.rows else f"{p.column}: {p.problem}"
            for p in self.problems
        ]
        detail = "; ".join(lines[:8]) + (f"; and {len(lines) - 8} more" if len(lines) > 8 else "")
        super().__init__(
            f"{summary} {detail}".strip(),
            hint="Fix the file and upload it again; nothing was scored or stored.",
        )

    def as_records(self) -> list[dict[str, str]]:
        """Return the problems as records (column, rows, problem) for a table."""
        return [p.as_dict() for p in self.problems]
