"""A shared window kept per writer, so that merging two writers' copies is a true union.

Each guard (one sync run) has a short random tag and keeps its own requests in its own ``Share``,
with ``seq``, the number of changes it made to it. Only the owner adds to a share or re-stamps an
entry in it; anyone may prune it (time) or move it to another form (log / buckets), which never moves
an entry earlier. So of two copies of one writer's share the one with the higher ``seq`` holds every
request of the other, and copies with equal ``seq`` differ only by pruning and form: their per-entry
maximum (multiset union) is the share. ``merge`` takes that per writer, and no request of one
writer can ever cancel out a request of another, whatever their times or buckets.

Entries of an unknown writer (a state stored before shares, a window built without one) form the
share of ``ANONYMOUS``; no guard ever adds to it, it is only pruned.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from airflow_sync_provider.policy import buckets as bk
from airflow_sync_provider.policy import rate_limit
from airflow_sync_provider.policy.log import DECIMALS, Log
from airflow_sync_provider.policy.rate_limit import Window, Windowish, as_window
from airflow_sync_provider.policy.window import LESS, MOST, SUM

ANONYMOUS = ""


@dataclass(frozen=True)
class Share:
    writer: str
    seq: int
    window: Window
    """Given as plain times, a log."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "window", as_window(self.window))


Shares = tuple[Share, ...]
"""At most one share per writer, ordered by writer."""


def of(shares: Iterable[Share]) -> Shares:
    """Shares ordered by writer (the stored order). An empty one is kept: its ``seq`` must not restart
    (a writer whose share emptied by time and who then takes a slot must still beat older copies);
    the store leaves empty shares out."""
    return tuple(sorted(shares, key=lambda s: s.writer))


def total(shares: Shares) -> Window:
    """Every request of every writer in one window (buckets if any share is bucketed)."""
    window: Window = Log()
    for share in shares:
        window = window.merge(share.window, SUM)
    return window


def rest(whole: Windowish, named: Iterable[Share]) -> Window:
    """What of ``whole`` (every request, as stored) no share in ``named`` accounts for: the anonymous
    share. Never negative; when the forms cannot be compared (a log against bucketed shares:
    hand-edited), all of ``whole``: more than the truth, never less."""
    whole, theirs = as_window(whole), total(tuple(named))
    if whole.grid is None and theirs.grid is not None:
        return whole
    return whole.merge(theirs, LESS)


def own(shares: Shares, writer: str) -> Share:
    return next((s for s in shares if s.writer == writer), Share(writer, 0, Log()))


def put(shares: Shares, share: Share) -> Shares:
    """``share`` in place of its writer's."""
    return of((*(s for s in shares if s.writer != share.writer), share))


def take(shares: Shares, writer: str, now: float, *, like: Windowish, count: int = 1) -> Shares:
    """``writer`` made ``count`` requests at ``now`` (entered in the form of ``like``, the total window)."""
    mine, now = own(shares, writer), round(now, DECIMALS)
    grown = mine.window.like(as_window(like), now).admit(now, count)
    return put(shares, Share(writer, mine.seq + 1, grown))


def give_back(shares: Shares, writer: str, stamp: float, count: int) -> Shares:
    """``count`` of ``writer``'s requests stamped ``stamp`` were never sent (a lease's unused slots):
    gone from its share (from ``stamp``'s bucket when bucketed; never more than it holds there)."""
    mine = own(shares, writer)
    if count <= 0 or not len(mine.window):
        return shares
    grid = mine.window.grid
    key = round(stamp, DECIMALS) if grid is None else bk.index_of(stamp, grid)
    kept = mine.window.from_tally(mine.window.tally() - Counter({key: count}))
    if len(kept) == len(mine.window):
        return shares
    return put(shares, Share(writer, mine.seq + 1, kept))


def restamp(shares: Shares, writer: str, old: float, new: float) -> Shares:
    """``writer``'s request stamped ``old`` is held from ``new`` (its response time)."""
    mine = own(shares, writer)
    moved = mine.window.restamp(round(old, DECIMALS), round(new, DECIMALS))
    if moved == mine.window:
        return shares
    return put(shares, Share(writer, mine.seq + 1, moved))


def each(shares: Shares, change: Callable[[Window], Window]) -> Shares:
    """Every share's window changed by ``change`` (prune, form, clamp: never a new request)."""
    return of(Share(s.writer, s.seq, change(s.window)) for s in shares)


def fit(shares: Shares, now: float, *, max_requests: int, window: float) -> Shares:
    """Every share pruned and in the form ``rate_limit.fit`` gives the total (one grid for all)."""
    form = rate_limit.fit(total(shares), now, max_requests=max_requests, window=window)
    return each(shares, lambda w: w.prune(now, window).like(form, now))


def same_form(window: Windowish, like: Windowish, now: float) -> Window:
    """``window`` as buckets on ``like``'s grid when ``like`` is bucketed, else as a log."""
    return as_window(window).like(as_window(like), now)


def merge(ours: Shares, theirs: Shares) -> Shares:
    """Per writer, the copy with the higher ``seq``; equal ``seq``: the per-entry maximum of both (a
    time, or a bucket on the first's grid: two copies of the same requests, none counted twice)."""
    mine = {s.writer: s for s in ours}
    merged = dict(mine)
    for share in theirs:
        kept = mine.get(share.writer)
        if kept is None or share.seq > kept.seq:
            merged[share.writer] = share
        elif share.seq == kept.seq:
            merged[share.writer] = Share(share.writer, share.seq, kept.window.merge(share.window, MOST))
    return of(merged.values())
