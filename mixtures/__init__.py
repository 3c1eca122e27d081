"""Recipes, Chinchilla sizing, the mixer and tokenized shard IO (no Beam)."""
