"""no-fragmenting-routers passes on the default lab (dual-stack) and is ENV, never FAIL, on the
same lab without IPv6; its break-it test (r2 filters Packet Too Big) runs on examples/dualstack
in tests/test_ipv6.py."""

from hoplab.exercises.no_fragmenting_routers import EXERCISE
from tests.exercises.conftest import ipv6_exercise_tests

test_passes_on_default_lab, test_env_on_a_lab_without_ipv6 = ipv6_exercise_tests(EXERCISE)
