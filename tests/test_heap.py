"""engine.heap: the worker's garbage-collector policy."""
from __future__ import annotations


def test_heap_settle_freezes_what_is_loaded_and_collects_the_young_less_often():
    import gc

    from engine import heap

    before = gc.get_threshold()
    try:
        heap.settle()
        assert gc.get_freeze_count() > 1000
        assert gc.get_threshold() == (heap.YOUNG_THRESHOLD, *before[1:])
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
