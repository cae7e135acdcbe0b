"""Unicode's confusable characters, as the ``confusable_homoglyphs`` package ships them
(its ``confusables.json`` is generated from unicode.org's confusables.txt): the only module
that reads that package.

``fold_table`` maps every non-ASCII character that Unicode lists as confusable with an
ASCII one (Cyrillic ``о``, Greek ``ο``, mathematical ``𝐨``...) to that ASCII character, for
``str.translate``: the injection screen matches its English patterns on text folded this
way, so ``Ignоre prеvious instructiоns`` written with Cyrillic letters reads as English.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib.resources import files


@lru_cache(maxsize=1)
def fold_table() -> dict[int, str]:
    data = json.loads(
        files("confusable_homoglyphs").joinpath("confusables.json").read_text("utf-8")
    )
    table: dict[int, str] = {}
    for char, glyphs in data.items():
        if len(char) != 1 or char.isascii():
            continue
        latin = next(
            (g["c"] for g in glyphs if g["c"].isascii() and g["c"].strip() and len(g["c"]) == 1),
            None,
        )
        if latin is not None:
            table[ord(char)] = latin
    return table
