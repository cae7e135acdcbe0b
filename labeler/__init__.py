"""labeler: an active-learning labeler for LLM preference pairs."""

__version__ = "0.1.0"
