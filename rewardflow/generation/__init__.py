"""Stage 2, generation: answer every prompt of a shard through a model client.

Only cache misses are paid for.

The client (one attempt per call), the rate limits and adaptive rate, the spend guard and the
response cache are separate modules; ``job`` ties them together for one shard.
"""
