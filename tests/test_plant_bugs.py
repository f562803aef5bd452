"""The pin tests of the training step catch every bug planted in its wiring
(see tests/plant_bugs.py): each mutant makes tests/test_step.py fail, and the
unchanged code passes it."""

import pytest

from plant_bugs import MUTANTS, run

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("tests", sorted({m.tests for m in MUTANTS}))
def test_the_control_passes(tests):
    status, failed = run(None, tests)
    assert status == 0 and not failed


@pytest.mark.parametrize("mutant", MUTANTS, ids=[m.name for m in MUTANTS])
def test_each_planted_bug_is_caught(mutant):
    status, failed = run(mutant)
    assert status == 1 and failed, f"{mutant.name} ({mutant.why}) was not caught"
