"""The optional @reward_function decorator."""

from __future__ import annotations

import pytest

from rewardflow import RewardResult, reward_function
from rewardflow.errors import RewardResultError
from rewardflow.rewards.loader import load_reward_function


def test_decorated_reward_returns_a_reward_result_whatever_it_returned():
    @reward_function
    def exact(messages, ground_truth, **kwargs):
        return messages[-1]["content"] == ground_truth

    result = exact([{"role": "assistant", "content": "4"}], "4")
    assert isinstance(result, RewardResult) and result.score == 1.0
    assert exact.is_reward_function and exact.__name__ == "exact"


def test_decorated_reward_still_rejects_scores_outside_the_unit_interval():
    @reward_function
    def broken(messages, ground_truth, **kwargs):
        return 2.0

    with pytest.raises(RewardResultError, match="in \\[0, 1\\]"):
        broken([], None)


def test_a_wrong_signature_fails_when_the_module_is_imported():
    with pytest.raises(TypeError, match="must accept \\(messages, ground_truth, \\*\\*kwargs\\)"):

        @reward_function
        def no_arguments():
            return 1.0


def test_the_pipeline_loads_decorated_rewards_by_file_path(tmp_path):
    path = tmp_path / "my_reward.py"
    path.write_text(
        "from rewardflow import reward_function\n\n"
        "@reward_function\n"
        "def score(messages, ground_truth, **kwargs):\n"
        "    return {'score': 0.5, 'reason': 'half'}\n"
    )
    function = load_reward_function(f"{path}:score")
    assert function([], None).reason == "half"
