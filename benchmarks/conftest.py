import pytest

from baselines import available


@pytest.fixture(params=[cls.name for cls in available()])
def baseline(request):
    return {cls.name: cls for cls in available()}[request.param]
