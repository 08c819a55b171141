"""Every test that needs a GPU (the CUDA skip mark of helpers.py, on the test or on one of its
params) also carries the marker ``cuda``: the GPU check selects them all with ``-m cuda``, names
or not."""

import pytest


def pytest_collection_modifyitems(items):
    from helpers import CUDA  # imported by the test modules already, once collected

    for item in items:
        if any(mark == CUDA.mark for mark in item.iter_markers("skipif")):
            item.add_marker(pytest.mark.cuda)
