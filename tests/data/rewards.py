"""Reward functions used by the integration tests, loaded by file path like a user's own."""


def length_reward(messages, ground_truth, **kwargs):
    """1.0 for any non-empty response: a second, independent reward."""
    return {"score": float(bool(messages[-1]["content"])), "reason": "non-empty"}


def fails_on_even_ids(messages, ground_truth, **kwargs):
    """Raises for half the samples, to prove one sample's error does not stop a shard."""
    if int(ground_truth) % 2 == 1:  # arithmetic_rows: answer 3i+1 is odd exactly when i is even
        raise ValueError("refusing an even id")
    return 1.0
