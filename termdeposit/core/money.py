"""Money, written once: the default economics, profit, break-even and the best number of calls.

Every money figure of the product is ``value x subscriptions - cost x calls``: a call costs
``cost`` whatever happens, a subscription earns ``value``. The profit-maximising choice is
searched in one place (:func:`best_cut`), for expected figures (probabilities) and realised
ones (outcomes) alike; calling nobody (profit 0) is always one of the choices.
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np

#: Cost of one call (agent time, telephony), in euros, unless the user says otherwise.
DEFAULT_CALL_COST = 5.0
#: Margin the bank earns from one term-deposit subscription, in euros, by default.
DEFAULT_SUBSCRIPTION_VALUE = 100.0

Amount = TypeVar("Amount", float, np.ndarray)


def profit(subscriptions: Amount, calls: Amount, cost: float, value: float) -> Amount:
    """``value x subscriptions - cost x calls`` (numbers or arrays of them)."""
    return value * subscriptions - cost * calls


def break_even(cost: float, value: float) -> float:
    """The probability above which a call pays for itself on average: ``cost / value``."""
    return cost / value


def best_cut(
    cuts: np.ndarray, subscriptions: np.ndarray, calls: np.ndarray, cost: float, value: float
) -> int:
    """The number of calls, among ``cuts``, that earns most (the fewest calls among equals).

    Args:
        cuts: the numbers of calls a threshold can give, ascending (0 = call nobody).
        subscriptions: subscriptions (expected or realised) when calling each cut.
        calls: calls made (or with a known outcome) at each cut.
    """
    gains = profit(np.asarray(subscriptions, float), np.asarray(calls, float), cost, value)
    return int(np.asarray(cuts)[int(np.argmax(gains))])
