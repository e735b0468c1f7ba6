import pytest

from tfmask.data.sources import core


@pytest.fixture(params=[512, 2], ids=["batch512", "batch2"])
def batch_size(request, monkeypatch):
    """Runs a test with the real internal batch and with a tiny one, so that
    paragraphs, counts and record numbers cross batch boundaries."""
    monkeypatch.setattr(core, "BATCH_SIZE", request.param)
    return request.param
