"""Stage 3, scoring: run every configured reward (``rewardflow.rewards``) on a shard's responses."""
