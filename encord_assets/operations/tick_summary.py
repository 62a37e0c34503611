"""The one line a sensor tick logs: what it requested, by source, what waits, and notes."""

from collections.abc import Iterable


def tick_summary(kind: str, requested: list[tuple[str, str]], waiting: int, waiting_for: str, notes: Iterable[str] = ()) -> str:
    """requested: (source, what) per run requested, e.g. ("image_coco", "008|e-mm1_1m #2"); e.g.
    `requested 2 retry run(s) (image_coco 2: 000|e-mm1_1m #1, 008|e-mm1_1m #2); 3 waiting for backoff`."""
    by_source: dict[str, list[str]] = {}
    for source, what in requested:
        by_source.setdefault(source, []).append(what)
    line = f"requested {len(requested)} {kind} run(s)"
    if by_source:
        line += " (" + "; ".join(f"{source} {len(items)}: {', '.join(items)}" for source, items in by_source.items()) + ")"
    return "; ".join([f"{line}; {waiting} {waiting_for}", *notes])
