import json
import math
import sys
import textwrap
import uuid

import numpy as np  # installed with matplotlib and datasets
import pytest

from rewardflow.errors import RewardLoadError, RewardResultError
from rewardflow.rewards.loader import RewardSpec, load_reward_function, load_rewards
from rewardflow.rewards.result import MetricResult, RewardResult, to_reward_result

REWARD_SOURCE = textwrap.dedent(
    """
    def exact(messages, ground_truth, **kwargs):
        return float(messages[-1]["content"].strip() == ground_truth)

    def scaled(messages, ground_truth, weight=1.0, **kwargs):
        return weight

    def no_args():
        return 1.0

    def one_arg(messages):
        return 1.0

    NOT_CALLABLE = 0.5
    """
)


@pytest.fixture
def reward_module(tmp_path, monkeypatch):
    """A uniquely named importable module in tmp_path; removed from sys.modules afterwards."""
    created = []

    def make(source=REWARD_SOURCE):
        name = f"rf_test_rewards_{uuid.uuid4().hex[:10]}"
        (tmp_path / f"{name}.py").write_text(source, encoding="utf-8")
        created.append(name)
        return name

    monkeypatch.syspath_prepend(str(tmp_path))
    yield make
    for name in created:
        sys.modules.pop(name, None)


@pytest.fixture
def reward_file(tmp_path):
    def make(source=REWARD_SOURCE, name="my_reward.py"):
        path = tmp_path / "rewards" / name
        path.parent.mkdir(exist_ok=True)
        path.write_text(source, encoding="utf-8")
        return path

    return make


CONVERSATION = [
    {"role": "user", "content": "2+2?"},
    {"role": "assistant", "content": " 4 "},
]


# --- load_reward_function ----------------------------------------------------------------


def test_loads_package_module_function(reward_module):
    module = reward_module()
    function = load_reward_function(f"{module}:exact")
    assert function.__name__ == "exact"
    assert function(CONVERSATION, "4") == 1.0
    assert function(CONVERSATION, "5") == 0.0


def test_loads_function_from_file_path(reward_file):
    path = reward_file()
    function = load_reward_function(f"{path}:exact")
    assert function(CONVERSATION, "4") == 1.0


def test_file_reward_can_import_a_helper_next_to_it(reward_file):
    reward_file("THRESHOLD = 0.25\n", name="rf_helper_constants.py")
    path = reward_file(
        "from rf_helper_constants import THRESHOLD\n"
        "def reward(messages, ground_truth, **kwargs):\n"
        "    return THRESHOLD\n"
    )
    try:
        assert load_reward_function(f"{path}:reward")(CONVERSATION, None) == 0.25
    finally:
        sys.modules.pop("rf_helper_constants", None)
    assert str(path.parent) not in sys.path


def test_missing_module_is_named(reward_module):
    with pytest.raises(RewardLoadError) as excinfo:
        load_reward_function("rf_no_such_module_xyz.rewards:fn")
    assert "'rf_no_such_module_xyz" in str(excinfo.value)
    assert "not found" in str(excinfo.value)


def test_missing_file_is_named(tmp_path):
    path = tmp_path / "absent.py"
    with pytest.raises(RewardLoadError, match="not found") as excinfo:
        load_reward_function(f"{path}:fn")
    assert str(path) in str(excinfo.value)


def test_function_not_found_in_module(reward_module):
    module = reward_module()
    with pytest.raises(RewardLoadError, match="has no attribute 'exakt'") as excinfo:
        load_reward_function(f"{module}:exakt")
    assert module in str(excinfo.value)


def test_function_not_found_in_file(reward_file):
    path = reward_file()
    with pytest.raises(RewardLoadError, match="has no attribute 'missing'"):
        load_reward_function(f"{path}:missing")


def test_attribute_that_is_not_callable(reward_module):
    module = reward_module()
    with pytest.raises(RewardLoadError, match="'NOT_CALLABLE' is not callable"):
        load_reward_function(f"{module}:NOT_CALLABLE")


@pytest.mark.parametrize("function", ["no_args", "one_arg"])
def test_wrong_signature_is_rejected(reward_module, function):
    module = reward_module()
    with pytest.raises(RewardLoadError, match=r"must accept \(messages, ground_truth"):
        load_reward_function(f"{module}:{function}")


def test_callable_object_with_right_signature_is_accepted(reward_module):
    module = reward_module(
        "class Reward:\n"
        "    def __call__(self, messages, ground_truth, **kwargs):\n"
        "        return 1\n"
        "reward = Reward()\n"
    )
    assert load_reward_function(f"{module}:reward")(CONVERSATION, "x") == 1


def test_module_import_error_includes_the_exception(reward_module):
    module = reward_module("raise RuntimeError('reward config broken')\n")
    with pytest.raises(RewardLoadError) as excinfo:
        load_reward_function(f"{module}:fn")
    message = str(excinfo.value)
    assert "RuntimeError: reward config broken" in message
    assert module in message


def test_file_import_error_includes_the_exception(reward_file):
    path = reward_file("x = 1 / 0\n")
    with pytest.raises(RewardLoadError) as excinfo:
        load_reward_function(f"{path}:fn")
    assert "ZeroDivisionError" in str(excinfo.value)
    assert str(path) in str(excinfo.value)
    assert str(path.parent) not in sys.path


ARGPARSE_AT_IMPORT = "import argparse\nargparse.ArgumentParser().parse_args(['--bad'])\n"


def test_a_module_that_exits_while_imported_is_a_load_error(reward_module, reward_file):
    # argparse at module level exits (status 2) under Snakemake's argv: a classic.
    module = reward_module(ARGPARSE_AT_IMPORT)
    with pytest.raises(RewardLoadError, match=r"importing .* failed: SystemExit: 2"):
        load_reward_function(f"{module}:fn")
    path = reward_file("import sys\nsys.exit('no GPU here')\n")
    with pytest.raises(RewardLoadError, match="SystemExit: no GPU here"):
        load_reward_function(f"{path}:fn")
    assert str(path.parent) not in sys.path


def test_file_syntax_error_is_a_load_error(reward_file):
    path = reward_file("def broken(:\n")
    with pytest.raises(RewardLoadError, match="SyntaxError"):
        load_reward_function(f"{path}:broken")


@pytest.mark.parametrize("reference", ["no_colon_here", "module:", ":function", ""])
def test_malformed_reference_is_rejected(reference):
    with pytest.raises(RewardLoadError, match="expected 'package.module:function'"):
        load_reward_function(reference)


# --- load_rewards ------------------------------------------------------------------------


def test_load_rewards_flags_first_as_primary_when_none_marked(reward_module):
    module = reward_module()
    specs = load_rewards(
        [
            {"name": "accuracy", "function": f"{module}:exact"},
            {"name": "weighted", "function": f"{module}:scaled", "params": {"weight": 0.5}},
        ]
    )
    assert [spec.name for spec in specs] == ["accuracy", "weighted"]
    assert [spec.primary for spec in specs] == [True, False]
    assert all(isinstance(spec, RewardSpec) for spec in specs)
    assert specs[1].params == {"weight": 0.5}
    assert specs[0].params == {}
    assert specs[1].reference == f"{module}:scaled"
    assert specs[1].function(CONVERSATION, None, **specs[1].params) == 0.5


def test_load_rewards_respects_marked_primary(reward_module):
    module = reward_module()
    specs = load_rewards(
        [
            {"name": "accuracy", "function": f"{module}:exact", "primary": False},
            {"name": "weighted", "function": f"{module}:scaled", "primary": True},
        ]
    )
    assert [spec.primary for spec in specs] == [False, True]


def test_load_rewards_fails_on_any_bad_reference(reward_module):
    module = reward_module()
    with pytest.raises(RewardLoadError, match="'nope'"):
        load_rewards(
            [
                {"name": "accuracy", "function": f"{module}:exact"},
                {"name": "broken", "function": f"{module}:nope"},
            ]
        )


# --- to_reward_result --------------------------------------------------------------------


class EvaluateResultLike:
    """Shaped like reward-kit's EvaluateResult/MetricResult (attributes, not a mapping)."""

    def __init__(self, score, reason="", metrics=None, is_score_valid=True):
        self.score = score
        self.reason = reason
        self.metrics = metrics or {}
        self.is_score_valid = is_score_valid


@pytest.mark.parametrize(
    ("value", "expected"),
    [(0.25, 0.25), (1, 1.0), (0, 0.0), (True, 1.0), (False, 0.0), (1.0, 1.0)],
)
def test_plain_numbers_and_bools(value, expected):
    result = to_reward_result(value)
    assert isinstance(result, RewardResult)
    assert result.score == expected
    assert isinstance(result.score, float)
    assert result.metrics == {}


def test_dict_with_reason_and_metrics():
    result = to_reward_result(
        {
            "score": 0.5,
            "reason": "half right",
            "metrics": {
                "format": {"score": 1, "reason": "has ####"},
                "answer_found": True,
                "partial": 0.5,
            },
        }
    )
    assert result.score == 0.5
    assert result.reason == "half right"
    assert result.metrics == {
        "format": MetricResult(score=1.0, reason="has ####"),
        "answer_found": MetricResult(score=1.0),
        "partial": MetricResult(score=0.5),
    }
    assert result.to_dict()["metrics"]["format"] == {
        "score": 1.0,
        "reason": "has ####",
        "is_score_valid": True,
    }


def test_object_with_score_reason_metrics():
    value = EvaluateResultLike(
        score=1.0,
        reason="correct",
        metrics={"exact": EvaluateResultLike(0.0, reason="spacing", is_score_valid=False)},
    )
    result = to_reward_result(value)
    assert result.score == 1.0
    assert result.reason == "correct"
    assert result.metrics["exact"] == MetricResult(
        score=0.0, reason="spacing", is_score_valid=False
    )


def test_reward_result_passes_through():
    original = RewardResult(score=0.75, reason="r", metrics={"m": MetricResult(0.5)})
    assert to_reward_result(original) is original


@pytest.mark.parametrize(
    "value",
    [
        1.5,
        -0.1,
        math.nan,
        math.inf,
        2,
        {"score": 1.5},
        RewardResult(score=-0.1),
        EvaluateResultLike(score=math.nan),
    ],
    ids=["1.5", "-0.1", "nan", "inf", "int 2", "dict 1.5", "RewardResult -0.1", "object nan"],
)
def test_out_of_range_scores_are_rejected(value):
    with pytest.raises(RewardResultError, match=r"\[0, 1\]"):
        to_reward_result(value)


def test_none_is_rejected():
    with pytest.raises(RewardResultError, match="None"):
        to_reward_result(None)


@pytest.mark.parametrize("value", ["0.5", "correct", b"1", [1.0]])
def test_non_numeric_values_are_rejected(value):
    with pytest.raises(RewardResultError):
        to_reward_result(value)


def test_dict_without_score_or_with_string_score_is_rejected():
    with pytest.raises(RewardResultError, match=r"mapping with 'score'.*got dict \{'reason'"):
        to_reward_result({"reason": "forgot the score"})
    with pytest.raises(RewardResultError, match="got str '1'"):
        to_reward_result({"score": "1"})


@pytest.mark.parametrize(
    "value, expected",
    [
        (np.float32(0.5), 0.5),
        (np.float64(0.25), 0.25),
        (np.int64(1), 1.0),
        (np.bool_(True), 1.0),
        (np.array(0.75), 0.75),  # zero-dimensional array
        ({"score": np.float32(0.5), "metrics": {"m": np.bool_(False)}}, 0.5),
        (RewardResult(score=np.float32(0.5)), 0.5),
    ],
    ids=["float32", "float64", "int64", "bool_", "0-d array", "dict of numpy", "RewardResult"],
)
def test_numpy_scalars_are_numbers(value, expected):
    result = to_reward_result(value)
    assert result.score == expected and type(result.score) is float
    json.dumps(result.to_dict())  # what the score file needs


@pytest.mark.parametrize(
    "value, message",
    [
        ("0.5", "score must be a number in [0, 1], got str '0.5' (convert it with float()"),
        (b"1", "got bytes b'1'"),
        ([1.0], "got list [1.0]"),
        (np.array([0.5, 0.5]), "got ndarray"),
        ({"score": 1.0, "metrics": {"m": "1"}}, "metric 'm' must be a number in [0, 1], got str"),
    ],
)
def test_unusable_values_are_named_in_the_error(value, message):
    with pytest.raises(RewardResultError) as raised:
        to_reward_result(value)
    assert message in str(raised.value)
    assert "NoneType" not in str(raised.value)


def test_bad_metrics_are_rejected():
    with pytest.raises(RewardResultError, match="metrics must be a mapping"):
        to_reward_result({"score": 1.0, "metrics": [0.5]})
    with pytest.raises(RewardResultError, match="metric 'format'"):
        to_reward_result({"score": 1.0, "metrics": {"format": 3}})
