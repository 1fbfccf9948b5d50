import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def pytest_configure(config):
    config.addinivalue_line("markers", "smoke: Blender tests also run on bpy 4.2 LTS, the minimum version claimed")


@pytest.fixture(scope="session")
def root():
    return ROOT
