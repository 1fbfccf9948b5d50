import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def pytest_addoption(parser):
    parser.addoption("--soak", action="store_true", help="also run the slow end-to-end checks (marked soak)")


def pytest_configure(config):
    config.addinivalue_line("markers", "smoke: Blender tests also run on bpy 4.2 LTS, the minimum version claimed")
    config.addinivalue_line("markers", "soak: slow end-to-end checks (minutes), run only with --soak")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--soak"):
        return
    skip = pytest.mark.skip(reason="a soak check: run with --soak")
    for item in items:
        if "soak" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def root():
    return ROOT
