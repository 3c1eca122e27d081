"""Word tokenization for the quality rules, compatible with spaCy's blank English tokenizer.

The Gopher, C4 and FineWeb thresholds were tuned on word counts from a real tokenizer, and
the reference implementation we compare against (datatrove 0.10.1) uses spaCy's blank English
tokenizer (``spacy.blank("en")``), which splits punctuation off words: ``"(hello)."`` is four
tokens. Loading and calling spaCy per document costs more than all the rules together, so this
module reimplements its algorithm (``spacy/tokenizer.pyx``) in plain Python for one
whitespace-separated *chunk*, and caches chunks: text is Zipfian, so most chunks are seen
before and a whole document is tokenized by C-level loops (``map`` over a ``dict``).

For one chunk, as spaCy does:

- special cases (contractions, abbreviations such as ``e.g.`` and ``Mr.``, emoticons) win;
- *prefix* characters (``( [ " ' $ # * _ < > = ...``) are peeled from the start one at a time,
  and *suffixes* (``) ] " ' , ; : ! ?``, ``'s``, a unit after a number, a period after a
  lowercase letter, a digit or two capitals) from the end;
- the rest is one token if it is a URL, else it is split at *infixes*: a hyphen or ``/ : = < >``
  between letters, a comma between letters, ``.`` between a lowercase and an uppercase letter,
  an operator between digits, an ellipsis;
- adjacent tokens that spell an emoticon made of punctuation (``(:``, ``''``) are merged.

Known differences (rare in prose): spaCy's letter-case tables are reduced to Latin and
Cyrillic, its symbol class to the common blocks. ``benchmarks/compare_words.py`` measures the
agreement on real text (reported in ``benchmarks/RESULTS.md``).
"""

from __future__ import annotations

import re
from itertools import chain

# spaCy lang/char_classes.py: _punct, _quotes, _currency, _hyphens, _units
_PUNCT = "…,:;!?¿؟¡()[]{}<>_#*&。？！，、；：～·।،۔؛٪"
_QUOTES = "'\"”“`‘´’‚,„»«「」『』（）〔〕【】《》〈〉⟦⟧"
_CURRENCY = "$£€¥฿₽﷼₴" + "".join(map(chr, range(0x20A0, 0x20C0)))
_ICONS = "¦©®°" + "".join(
    chr(c)
    for lo, hi in ((0x2100, 0x214F), (0x2190, 0x21FF), (0x2300, 0x23FF), (0x2500, 0x27BF), (0x2B00, 0x2BFF))
    for c in range(lo, hi + 1)
)
_UNITS = sorted(
    (
        "km km² km³ m m² m³ dm dm² dm³ cm cm² cm³ mm mm² mm³ ha µm nm yd in ft kg g mg µg t lb oz m/s "
        "km/h kmh mph hPa Pa mbar mb MB kb KB gb GB tb TB T G M K %"
    ).split(),
    key=len,
    reverse=True,
)
_UNIT_SET = frozenset(_UNITS)
_UNIT_LAST = frozenset(u[-1] for u in _UNITS)
_UNIT_MAX = max(map(len, _UNITS))
_LOWER = "abcdefghijklmnopqrstuvwxyzßàáâãäåæçèéêëìíîïðñòóôõöøùúûüýþÿабвгдежзийклмнопрстуфхцчшщъыьэюяё"
_UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZÀÁÂÃÄÅÆÇÈÉÊËÌÍÎÏÐÑÒÓÔÕÖØÙÚÛÜÝÞАБВГДЕЖЗИЙКЛМНОПРСТУФХЦЧШЩЪЫЬЭЮЯЁ"

PREFIX_CHARS = frozenset("§%=—–" + _PUNCT + _QUOTES + _CURRENCY + _ICONS)
SUFFIX_CHARS = frozenset(_PUNCT + _QUOTES + "—–" + _ICONS)
_PERIOD_AFTER = frozenset(_LOWER + "0123456789%²-+" + _PUNCT + _QUOTES)
_BOTH = "".join(sorted(PREFIX_CHARS & SUFFIX_CHARS))  # one-character prefixes that are also suffixes
_INFIX_CHARS = frozenset(".…+-*^,–—~:<>=/")
_INFIX_RE = re.compile(
    r"\.\.+|…"
    r"|(?<=[0-9])[+\-*^](?=[0-9-])"
    rf"|(?<=[{_LOWER}'\"”“`‘´’])\.(?=[{_UPPER}'\"”“`‘´’])"
    r"|(?<=[^\W\d_]),(?=[^\W\d_])"
    r"|(?<=[^\W_])(?:---|--|——|[-–—~])(?=[^\W\d_])"
    r"|(?<=[^\W_])[:<>=/](?=[^\W\d_])"
)
# spaCy URL_MATCH without the IP-address branch
_URL_RE = re.compile(
    r"(?:[\w+\-.]{2,}://)?(?:\S+(?::\S*)?@)?"
    r"(?:(?:[A-Za-z0-9\u00a1-\uffff][A-Za-z0-9\u00a1-\uffff_-]{0,62})?[A-Za-z0-9\u00a1-\uffff]\.)+"
    rf"[{_LOWER}]{{2,63}}(?::\d{{2,5}})?(?:[/?#]\S*)?"
)

# spaCy English tokenizer exceptions: contractions written without an apostrophe, split in two
# (second piece -> first pieces; each also capitalized), e.g. "dont" -> "do", "nt"
_SPLITS = {
    "nt": "ai are ca could dare did do does had has have is may might must need ought sha should was were wo "
    "would",
    "d": "he how i it that there these they this those we what when where who why you",
    "ll": "how it that there these they this those what when where who why you",
    "re": "how there these they those what when where why you",
    "s": "he how she that there this what when where who why",
    "ve": "could how i might must not should there these they those we what when where who why would you",
    "m": "i",
    "not": "can",
    "na": "gon",
    "ta": "got",
    "all": "y",
}
# ... and with an apostrophe, split before it ("we're" -> "we", "'re"; "'s" and "n't" are suffixes)
_APOSTROPHE_SPLITS = {
    "d": "he how i it she that there these they this those we what when where who why you",
    "ll": "he how i it she that there these they this those we what when where who why you",
    "m": "i",
    "re": "how there these they those we what when where who why you",
    "ve": "could how i might must not should there these they those we what when where who why would you",
}
# spaCy tokenizer_exceptions.emoticons that occur in text (a token of their own)
_EMOTICONS = [
    ":)",
    ":(",
    ":-)",
    ":-(",
    ";)",
    ";-)",
    ":D",
    ":P",
    ":p",
    ":/",
    ":-/",
    ":|",
    ":]",
    ":[",
    ":3",
    ":*",
    ":o",
    ":O",
    ":0",
    ":1",
    ":>",
    ":}",
    ":x",
    ":X",
    "(:",
    "):",
    "(=",
    "=)",
    "=(",
    "[:",
    "]=",
    "[=",
    "=]",
    "=[",
    "=/",
    "=|",
    "=3",
    "=D",
    "8)",
    "8-)",
    "8D",
    "<3",
    "</3",
    "^_^",
    "-_-",
    "xD",
    "XD",
    "o.O",
    "O.o",
    "o_O",
    "O_o",
    "0.0",
    "o.o",
    "O.O",
    "o_o",
    "O_O",
    "._.",
    ";_;",
    "@_@",
    "<.<",
    ">.<",
    ">.>",
    ":'(",
    ":')",
    ":-D",
    ":-P",
    ":-p",
    ":-O",
    ":-o",
    ":-*",
    ":-|",
    ":-]",
    ":-3",
    ":-x",
    ":-X",
    "(-:",
    "(;",
    ")-:",
    "(-;",
    "''",
    "and/or",
]
_ABBREVIATIONS = (
    "Adm. Ak. Ala. Apr. Ariz. Ark. Aug. Bros. Calif. Co. Colo. Conn. Corp. D.C. Dec. Del. Dr. E.G. E.g. Feb. "
    "Fla. Ga. Gen. Gov. I.E. I.e. Ia. Id. Ill. Inc. Ind. Jan. Jr. Jul. Jun. Kan. Kans. Ky. La. Ltd. Mar. "
    "Mass. "
    "Md. Messrs. Mich. Minn. Miss. Mo. Mont. Mr. Mrs. Ms. Mt. N.C. N.D. N.H. N.J. N.M. N.Y. Neb. Nebr. Nev. "
    "Nov. Oct. Okla. Ore. Pa. Ph.D. Prof. Rep. Rev. S.C. Sen. Sep. Sept. St. Tenn. Va. Wash. Wis. a.m. co. "
    "e.g. i.e. p.m. v.s. vs. ä. ö. ü. " + " ".join(f"{c}." for c in "abcdefghijklmnopqrstuvwxyz")
).split()


def _special_cases() -> dict[str, tuple[str, ...]]:
    """spaCy's special cases that matter in text: whole string -> its tokens."""
    table: dict[str, tuple[str, ...]] = {}
    for second, firsts in _SPLITS.items():
        for first in firsts.split():
            for f in (first, first.capitalize()):
                table[f + second] = (f, second)
    for second, firsts in _APOSTROPHE_SPLITS.items():
        for first in firsts.split():
            for f in (first, first.capitalize()):
                for apostrophe in "'’":
                    table[f + apostrophe + second] = (f, apostrophe + second)
    for first in _SPLITS["nt"].split():  # "don't" -> "do", "n't"
        for f in (first, first.capitalize()):
            for apostrophe in "'’":
                table[f + "n" + apostrophe + "t"] = (f, "n" + apostrophe + "t")
    for hour in range(1, 13):
        for half in ("am", "pm"):
            table[f"{hour}{half}"] = (str(hour), half)
    for whole in _ABBREVIATIONS + _EMOTICONS + ["'em", "'d", "'s"]:
        table[whole] = (whole,)
    return table


SPECIALS = _special_cases()
_MERGE = frozenset(e for e in _EMOTICONS if not any(c.isalnum() for c in e))
_EMOTICON_CHARS = frozenset(":;='_<>")  # every emoticon in _MERGE has one of these


def _prefix_len(s: str) -> int:
    c = s[0]
    if c == "." and s.startswith(".."):
        return len(s) - len(s.lstrip("."))
    if c in PREFIX_CHARS:
        return 1
    if c == "+" and not s[1:2].isdigit():
        return 1
    if s.startswith(("US$", "C$", "A$")):
        return s.index("$") + 1
    return 0


def _suffix_len(s: str) -> int:
    c = s[-1]
    if c == ".":
        if s.endswith(".."):
            return len(s) - len(s.rstrip("."))
        if len(s) > 1 and (s[-2] in _PERIOD_AFTER or (len(s) > 2 and s[-2] in _UPPER and s[-3] in _UPPER)):
            return 1
        return 0
    if c == "…":
        return 2 if s.endswith("……") else 1
    if len(s) > 2 and s[-2] in "'’" and c in "sS":
        return 2
    if c in SUFFIX_CHARS:
        return 1
    if c == "+" or c in _CURRENCY:
        return 1 if len(s) > 1 and s[-2].isdigit() else 0
    if c in _UNIT_LAST:  # a unit after a number: "5km", "10%"
        for k in range(1, min(len(s), _UNIT_MAX + 1)):
            if s[-k - 1].isdigit():
                return k if s[-k:] in _UNIT_SET else 0
    return 0


def _core_tokens(s: str) -> list[str]:
    """The middle of a chunk: one special case, one URL, or pieces split at infixes."""
    special = SPECIALS.get(s)
    if special is not None:
        return list(special)
    if _INFIX_CHARS.isdisjoint(s):
        return [s]
    if len(s) < 400 and ("." in s or "@" in s) and _URL_RE.fullmatch(s):
        return [s]
    tokens, start = [], 0
    for m in _INFIX_RE.finditer(s):
        if m.start() != start:
            tokens.append(s[start : m.start()])
        if m.end() != m.start():
            tokens.append(m.group())
        start = m.end()
    if start < len(s):
        tokens.append(s[start:])
    return tokens


def tokenize_chunk(chunk: str) -> tuple[str, ...]:
    """spaCy's tokens for one whitespace-free string (``Tokenizer._split_affixes`` + ``_attach_tokens``)."""
    special = SPECIALS.get(chunk)
    if special is not None:
        return special
    if chunk.isalpha():
        return (chunk,)
    simple = _simple_chunk(chunk)
    if simple is not None:
        return simple
    prefixes: list[str] = []
    suffixes: list[str] = []
    s = chunk
    while s and s not in SPECIALS:
        pre = _prefix_len(s)
        if pre and s[pre:] in SPECIALS:
            prefixes.append(s[:pre])
            s = s[pre:]
            break
        suf = _suffix_len(s[pre:]) if len(s) > pre else 0
        if suf and s[:-suf] in SPECIALS:
            suffixes.append(s[-suf:])
            s = s[:-suf]
            break
        if pre and suf and pre + suf <= len(s):
            prefixes.append(s[:pre])
            suffixes.append(s[-suf:])
            s = s[pre:-suf]
        elif pre:
            prefixes.append(s[:pre])
            s = s[pre:]
        elif suf:
            suffixes.append(s[-suf:])
            s = s[:-suf]
        else:
            break
    tokens = prefixes + (_core_tokens(s) if s else []) + suffixes[::-1]
    if len(tokens) > 1 and not _EMOTICON_CHARS.isdisjoint(chunk):
        tokens = _merge_specials(tokens)
    return tuple(tokens)


def _simple_chunk(chunk: str) -> tuple[str, ...] | None:
    """Fast path for the common chunk shapes ``word,`` ``(word)`` ``word.`` ``snake_case;``
    ``well-known``: one-character punctuation around a word. None when the general algorithm
    is needed (the results are identical, checked on the corpus by tests/test_rules.py)."""
    core = chunk.strip(_BOTH)
    if not core or "…" in chunk:
        return None
    start = chunk.index(core)
    lead, trail = chunk[:start], chunk[start + len(core) :]
    for side in (lead, trail):
        if (
            len(side) > 1
            and not _EMOTICON_CHARS.isdisjoint(side)
            and any(side[i : i + k] in _MERGE for k in (2, 3) for i in range(len(side) - k + 1))
        ):
            return None
    if core.isalpha():
        middle: tuple[str, ...] = (core,)
    elif core[-1] == "." and core[:-1].isalpha() and core[-2] in _PERIOD_AFTER:
        middle = (core[:-1], ".")
    elif _WORDISH.fullmatch(core) and not (core[-1].isalpha() and any(c.isdigit() for c in core)):
        middle = (core,)  # letters, digits and underscores: no affix, infix or unit applies
    elif _HYPHENATED.fullmatch(core):
        middle = tuple(_HYPHEN_SPLIT.split(core))  # hyphen or slash between letters: an infix
    else:
        return None
    if core in SPECIALS or any(m in SPECIALS for m in middle):
        return None
    if (
        (lead or trail)
        and len(core) <= _SPANNING_CORE
        and any(lead[len(lead) - i :] + core + trail[:j] in SPECIALS for i in range(3) for j in range(3))
    ):
        return None  # a special case ("8)", "'s'") may span the affixes
    return (*lead, *middle, *trail)


_WORDISH = re.compile(r"\w+")
_HYPHENATED = re.compile(r"[^\W\d_]+(?:(?:--|[-/])[^\W\d_]+)+")
_HYPHEN_SPLIT = re.compile(r"(--|[-/])")
# longest word inside a special case with affix characters around it ("8)" -> "8", "'em" -> "em"):
# only chunks with a core this short can hide one
_SPANNING_CORE = max(
    len(core)
    for core, whole in ((w.strip(_BOTH), w) for w in SPECIALS)
    if core and core != whole and (_WORDISH.fullmatch(core) or _HYPHENATED.fullmatch(core))
)


def _merge_specials(tokens: list[str]) -> list[str]:
    """spaCy's special-case matcher: adjacent tokens spelling a punctuation emoticon become one."""
    out, i = [], 0
    while i < len(tokens):
        for n in (3, 2):
            if i + n <= len(tokens) and "".join(tokens[i : i + n]) in _MERGE:
                out.append("".join(tokens[i : i + n]))
                i += n
                break
        else:
            out.append(tokens[i])
            i += 1
    return out


class _ChunkCache(dict):
    """Tokens of each distinct chunk, computed once (bounded: cleared when full)."""

    def __missing__(self, chunk: str) -> tuple[str, ...]:
        tokens = tokenize_chunk(chunk)
        if len(self) >= CACHE_CHUNKS:
            self.clear()
        self[chunk] = tokens
        return tokens


CACHE_CHUNKS = 500_000  # distinct chunks kept per process (about 100 MB at most)
_CHUNKS = _ChunkCache()


def split_words(text: str) -> list[str]:
    """The words of ``text`` (spaCy-style tokens, punctuation split off, no whitespace)."""
    return list(chain.from_iterable(map(_CHUNKS.__getitem__, text.split())))
