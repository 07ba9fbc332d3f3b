"""Reward functions used by the integration tests, loaded by file path like a user's own."""


def length_reward(messages, ground_truth, **kwargs):
    """1.0 for any non-empty response: a second, independent reward."""
    return {"score": float(bool(messages[-1]["content"])), "reason": "non-empty"}


def fails_on_even_ids(messages, ground_truth, **kwargs):
    """Raises for half the samples, to prove one sample's error does not stop a shard."""
    if int(ground_truth) % 2 == 1:  # arithmetic_rows: answer 3i+1 is odd exactly when i is even
        raise ValueError("refusing an even id")
    return 1.0


def misbehaves(messages, ground_truth, **kwargs):
    """Each row of arithmetic_rows gets one way a reward can misbehave (row index mod 4)."""
    import os
    import sys

    import numpy

    row = (int(ground_truth) - 1) // 3  # arithmetic_rows: answer 3i+1
    if row % 4 == 0:
        sys.exit(0)
    if row % 4 == 1:
        return len(bytes(10 * 2**30)) > 0  # 10 GiB
    if row % 4 == 2:
        raise KeyboardInterrupt
    leaked = [name for name in ("OPENAI_API_KEY", "RF_TEST_MODEL_CRED") if name in os.environ]
    if leaked:
        raise RuntimeError(f"the worker can read {leaked}")
    return numpy.float32(1.0)
