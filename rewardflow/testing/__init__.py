"""Helpers for testing code written against rewardflow (custom model clients, for now)."""
