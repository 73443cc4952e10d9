import os

from hypothesis import HealthCheck, settings

# CI: deterministic (the same examples every run, so a red CI is
# reproducible) and thorough; dev: random, so everyday runs explore
settings.register_profile("ci", max_examples=200, deadline=None, derandomize=True,
                          print_blob=True, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", max_examples=100, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci" if os.environ.get("CI") else "dev")
