"""The scheduler: run the weekly job on a cron schedule (APScheduler), for ``termdeposit
scheduler`` and the ``scheduler`` service of compose.yaml.

The schedule is five cron fields (``TERMDEPOSIT_WEEKLY_CRON``, default ``0 6 * * 1``: Mondays
at 06:00) in ``TERMDEPOSIT_TIMEZONE`` (default UTC). One run at a time (a run still going when
the next is due makes the next wait; missed runs while the scheduler was down are run once,
within a day). A failed run is logged and the scheduler carries on; the weekly job's own lock
also keeps it apart from a run started by hand, cron or systemd.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from apscheduler.schedulers.base import BaseScheduler
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.cron import CronTrigger

from termdeposit.core.errors import TermDepositError
from termdeposit.core.logs import get_logger

log = get_logger("scheduler")

JOB_ID = "weekly"
#: A run missed while the scheduler was down is still run if it is at most this late.
MISFIRE_GRACE_SECONDS = 24 * 3600


_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


def _day(token: str) -> int:
    token = token.strip().lower()
    if token in _DAYS:
        return _DAYS.index(token)
    value = int(token)
    if not 0 <= value <= 7:
        raise ValueError(f"day of week {value} is not 0-7")
    return value % 7


def weekdays_by_name(field: str) -> str:
    """A cron weekday field with numbers as standard cron means them (0 or 7 = Sunday, 1 =
    Monday), written as day names: APScheduler's own numbers start at Monday = 0."""
    if field in ("*", "?"):
        return field
    days: list[int] = []
    for part in field.split(","):
        base, _, step_text = part.partition("/")
        step = int(step_text) if step_text else 1
        if base == "*":
            low, high = 0, 6
        elif "-" in base:
            first, last = base.split("-", 1)
            low, high = _day(first), _day(last)
            if last.strip() == "7":
                high = 7
        else:
            low = _day(base)
            high = 6 if step_text else low
        days += [d % 7 for d in range(low, high + 1, step) if d % 7 not in days]
    return ",".join(_DAYS[d] for d in sorted(days))


def cron_trigger(cron: str, timezone: str = "UTC") -> CronTrigger:
    """The trigger of five standard cron fields (minute hour day month weekday).

    Raises:
        TermDepositError: not five valid cron fields, or an unknown time zone.
    """
    try:
        fields = cron.split()
        if len(fields) != 5:
            raise ValueError(f"{len(fields)} fields instead of 5")
        fields[4] = weekdays_by_name(fields[4])
        return CronTrigger.from_crontab(" ".join(fields), timezone=timezone)
    except (ValueError, LookupError) as exc:
        raise TermDepositError(
            f"'{cron}' in time zone '{timezone}' is not a schedule ({exc}).",
            hint="Use five cron fields, e.g. TERMDEPOSIT_WEEKLY_CRON='0 6 * * 1' (Mondays 06:00), "
            "and a time zone such as UTC or Europe/Lisbon.",
        ) from exc


def next_runs(
    cron: str, timezone: str = "UTC", count: int = 3, after: dt.datetime | None = None
) -> list[dt.datetime]:
    """The next ``count`` times the schedule fires (for the operator to check it)."""
    trigger = cron_trigger(cron, timezone)
    moment = after or dt.datetime.now(dt.UTC)
    times = []
    previous = None
    for _ in range(count):
        fire = trigger.get_next_fire_time(previous, moment)
        if fire is None:
            break
        times.append(fire)
        previous, moment = fire, fire + dt.timedelta(seconds=1)
    return times


def guarded(job: Callable[[], Any]) -> Callable[[], None]:
    """The job, with its failures logged instead of stopping the scheduler."""

    def run() -> None:
        try:
            job()
        except TermDepositError as exc:
            log.error("the weekly job did not run: %s", exc.message)
        except Exception:
            log.exception("the weekly job failed")

    return run


def build_scheduler(
    job: Callable[[], Any],
    cron: str,
    timezone: str = "UTC",
    scheduler_class: type[BaseScheduler] = BlockingScheduler,
) -> BaseScheduler:
    """A scheduler that runs ``job`` on the cron schedule, one run at a time."""
    scheduler = scheduler_class(timezone=timezone)
    scheduler.add_job(
        guarded(job),
        cron_trigger(cron, timezone),
        id=JOB_ID,
        name="termdeposit weekly",
        max_instances=1,
        coalesce=True,
        misfire_grace_time=MISFIRE_GRACE_SECONDS,
        replace_existing=True,
    )
    return scheduler
