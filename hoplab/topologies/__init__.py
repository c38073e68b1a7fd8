"""Labs shipped with hoplab: the default lab (the repository's compose.yaml)."""
