"""Every registered task x tuning method that fits meets the shared contract (tests/contract.py)."""
import pytest

import contract


@pytest.mark.parametrize("task, method", contract.pairs())
def test_registered_task_and_method_meet_the_contract(task, method, tiny_base, tiny_decoder, tmp_path):
    base = tiny_decoder if contract.sample_of(task) == "generation" else tiny_base
    result = contract.quiet_run(contract.recipe(task, method, base, tmp_path / "run"))
    assert result.metrics["run"]["method"] == method and result.metrics["run"]["task"] == task
    contract.check(result, tmp_path)


def test_every_registered_task_has_sample_data_and_every_method_a_task():
    assert all(contract.sample_of(task) for task, _ in contract.TASKS.items())
    assert all(any(method in contract.methods_for(task) for task, _ in contract.TASKS.items())
               for method, _ in contract.METHODS.items())
