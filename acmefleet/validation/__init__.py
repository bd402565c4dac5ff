"""Challenge validation: one module per challenge type, behind ``ChallengeValidator``."""
