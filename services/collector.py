"""How the service process asks Python's cyclic garbage collector to work.

The service makes few reference cycles (asyncio tasks and exceptions make some; the models are
frozen dataclasses without back references), but it makes many objects in bursts: a night's
planning reads every brukare's basis (about 100,000 long-lived objects for 10,000 brukare) and
then builds a check, a transition and their values for each agreed time. CPython's default
thresholds ``(700, 10, 10)`` start a young collection every 700 allocations and a full one
whenever the survivors have grown by a quarter, so each full pass rescans the bases read so far:
in ``bench/planning.py`` the collector took about 0.3 s of a 2.3 s plan for 10,000 brukare.

:func:`collect_less` is called once by :func:`services.app.serve` when the process has started
(and by the planning benchmark, which runs ``plan()`` as the service does):

- ``gc.freeze()`` moves everything start-up made (modules, settings, the application and its
  routes) to the permanent generation, which no collection scans again;
- :data:`THRESHOLDS` make a young collection every 50,000 net allocations and a full one after
  20 middle ones: cycles are still found and freed, later and in fewer passes (objects without
  cycles are freed by reference counting at once, as before).
"""

from __future__ import annotations

import gc

THRESHOLDS = (50_000, 20, 20)
"""Young-generation allocations before a collection, and collections of each generation before
the next older one is collected (CPython's default: 700, 10, 10)."""


def collect_less() -> tuple[int, int, int]:
    """Freeze what the process holds now and set :data:`THRESHOLDS`; returns the thresholds."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)
    return THRESHOLDS
