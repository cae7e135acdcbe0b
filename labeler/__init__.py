"""labeler: an active-learning labeler for LLM preference pairs.

The library API is ``labeler.Project`` (see ``labeler.api``); the command line is
``labeler --help``.
"""

from typing import Any

__version__ = "0.1.0"
__all__ = ["Project", "__version__"]


def __getattr__(name: str) -> Any:
    # imported on first use: `import labeler` (and `labeler --help`) stay fast
    if name == "Project":
        from labeler.api import Project

        return Project
    raise AttributeError(f"module 'labeler' has no attribute {name!r}")
