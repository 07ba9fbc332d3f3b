"""Stage 1, prompts: read a dataset (local file or hub) and turn its rows into sharded prompts."""
