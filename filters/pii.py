"""PII detection and redaction tuned for precision on finance text (pure Python, ``re`` + ``ipaddress``).

Six kinds: email, ip (v4 and v6), phone, card, iban, ssn. Each kind is one candidate regex plus a
validator; a candidate is kept only if the validator accepts it. Finance text is dense with numbers
that look like PII (amounts, dates, CUSIPs, ISINs, fiscal periods, section and version numbers), so
every rule demands a shape plus a check that such numbers fail: separators, a "+"/"00", a trunk "0" or a
label word ("Fax:", "call me at") for phones, Luhn plus an issuer prefix and length for cards, mod-97 plus
the country's length for IBANs, excluded ranges for SSNs, octets 0-255 and not a netmask for IPv4 and
``ipaddress`` for IPv6. All rules refuse to match inside a longer number:
a candidate may not touch a word character, or a separator followed/preceded by a digit
("1.2.3.4.5", "212-555-0123-99").

Cost (pre-check): the per-kind regexes never scan a whole document. One digit-first scan finds runs of
>= 7 digits/separators (every numeric PII lies in one), ``"@" in text`` gates email, a colon-first scan
gates IPv6; the regexes then run only in small windows around those triggers. A document with no trigger
costs one regex scan (~8 ns per character) plus two substring tests. No regex here backtracks more than
linearly on long digit runs (phone groups need a separator between them): ``tests/test_pii.py`` checks it.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass

KINDS = ("email", "ip", "phone", "card", "iban", "ssn")
PLACEHOLDERS = {"email": "<EMAIL>", "ip": "<IP_ADDRESS>", "phone": "<PHONE>", "card": "<CARD>", "iban": "<IBAN>",
                "ssn": "<SSN>"}


@dataclass(frozen=True)
class Span:
    """``text[start:end]`` (character offsets) is PII of ``kind`` (one of ``KINDS``)."""
    kind: str
    start: int
    end: int


# Not inside a longer number: no word character next to the candidate, and no "1." / "-5" style
# continuation (a separator with a digit beyond it). Two lookbehinds because Python's must be fixed-width.
_NUM_START = r"(?<!\w)(?<!\d[.,:/-])"
_NUM_END = r"(?!\w)(?![.,:/-]\d)"

# --- email -------------------------------------------------------------------------------------------
# local@domain.tld, RFC 5321 practical subset: local part of [A-Za-z0-9._%+-] (64 max), dot-separated
# DNS labels, alphabetic TLD of 2-24 letters. No match inside a longer token ("a.b@" cannot start at
# "b"). An address inside a URL ("https://host/contact/jo@example.com", "...?email=jo@example.com") is
# still an address; only a URL's user-info ("ftp://anon@host") is not (``_email_ok``).
_EMAIL_RE = re.compile(
    r"(?<![\w.%+-])[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+([A-Za-z]{2,24})(?![\w-]|\.\w)"
)
# "icon@2x.png", "logo@3x.svg": retina asset names, not mailboxes (none of these is a real TLD in use
# for mail on the web we crawl).
_FILE_EXTENSIONS = frozenset("png jpg jpeg gif svg webp bmp ico tif tiff css js json pdf htm html php txt xml".split())


def _email_ok(text: str, m: re.Match) -> bool:
    if m.group(1).lower() in _FILE_EXTENSIONS:
        return False
    # user-info of a URL ("https://user:pass@host.com", "ftp://anon@ftp.example.org") is a login, not an
    # address written for people: the "@" is in the URL's authority, i.e. no "/", "?", "#", "&" or "="
    # between "://" and the candidate (RFC 3986 section 3.2). In a path or query ("https://x.com/u/jo@y.com",
    # "?email=jo@y.com") it is a mailbox; so is "mailto:jo@example.com".
    token_start = max(text.rfind(" ", 0, m.start()), text.rfind("\n", 0, m.start())) + 1
    token = text[token_start:m.start()]
    scheme = token.find("://")
    return scheme < 0 or any(c in token[scheme + 3:] for c in "/?#&=")


# --- ip ------------------------------------------------------------------------------------------------
_IPV4_RE = re.compile(_NUM_START + r"(?:\d{1,3}\.){3}\d{1,3}" + _NUM_END)
# A dotted quad right after these words is a version/section number, not an address
# ("version 1.2.3.4", "release 10.0.0.1", "Section 4.1.2.3", "'app_build': '4.2.16.14'"): the word, then at
# most 4 non-word characters, right before the quad. Case-insensitive, looked for at most 24 chars back.
_VERSION_CONTEXT_RE = re.compile(
    r"(?:(?<![a-z])(?:v|ver|version|versions|release|releases|build|firmware|patch|rev|revision|update|section|"
    r"sections|item|note|clause|rule|exhibit|article|chapter|paragraph)|§)\W{0,4}$",
    re.IGNORECASE,
)
# Candidate IPv6: 2-7 colons among hex groups, optional embedded IPv4 tail; ``ipaddress`` decides.
_IPV6_RE = re.compile(
    r"(?<![\w:.])(?:[0-9A-Fa-f]{1,4}|:)?(?::[0-9A-Fa-f]{0,4}){1,7}(?:(?<=:)\d{1,3}(?:\.\d{1,3}){3})?(?![\w:]|\.\w)"
)


# A quad glued to a name is a file or package version: "novas-3.1.1.3.tar.gz", "Linux 2.6.18.3-exp".
_NAME_BEFORE_RE = re.compile(r"[A-Za-z0-9][-_]$")
_NAME_AFTER_RE = re.compile(r"[.-][A-Za-z]")


def _is_mask(value: int) -> bool:
    """A netmask ("255.255.255.0": 8-32 leading one bits, then zeros) or a wildcard/host mask, its
    complement ("0.0.0.255"): configuration values, not a host's address. Any quad in 0.0.0.0/8 ("this
    network", RFC 1122 3.2.1.3) names no host either."""
    inverted = ~value & 0xFFFFFFFF
    return value >> 24 == 0 or (value >> 24 == 0xFF and inverted & (inverted + 1) == 0)


def _ipv4_ok(text: str, m: re.Match) -> bool:
    try:
        # octets 0-255, no leading zeros ("01.2.3.4" is not an address)
        if _is_mask(int(ipaddress.IPv4Address(m.group()))):
            return False
    except ValueError:
        return False
    if _NAME_BEFORE_RE.search(text, max(0, m.start() - 2), m.start()) or _NAME_AFTER_RE.match(text, m.end()):
        return False
    return not _VERSION_CONTEXT_RE.search(text, max(0, m.start() - 24), m.start())


def _ipv6_ok(text: str, m: re.Match) -> bool:
    s = m.group()
    # Full form (8 groups) or compressed ("::") with at least two non-empty groups and a decimal digit:
    # rejects "::", "::1"-style fragments, C++ "std::" and hex-word pairs like "Cafe::Add".
    groups = [g for g in s.split(":") if g]
    if len(groups) < 2 or not any(c.isdigit() for c in s) or ("::" not in s and s.count(":") != 7 and "." not in s):
        return False
    try:
        ipaddress.IPv6Address(s)
    except ValueError:
        return False
    return True


# --- phone ---------------------------------------------------------------------------------------------
# Four rules, each a shape that finance numbers do not take, plus an extension suffix on all of them
# ("x769", " ext. 12", "#204", and a bare trailing "x" as in "505-798-6050x"). libphonenumber
# (``phonenumbers``) was measured against these rules (``benchmarks/bench_pii.py``): it needs the
# number's country to read a national format, and every country validates some digit strings
# ("0490 39 07 81" is valid in 18 regions, "2021 2022" in 26), so it cannot judge a number in text whose
# country is unknown; with region US it found 9 of 30 phones of the third-party set, these rules 29.
_EXT_MARK = r"(?:[xX]|[Ee]xt\.?|[Ee]xtn\.?|[Ee]xtension|#)"
_EXT = r"(?:[ ]?" + _EXT_MARK + r"[ ]?\d{1,6}(?!\w)|[xX](?!\w))?"
# The candidate is a whole number: not glued to a word, not the tail or head of a longer run of digits
# split by the same separators ("12 0490 39 07 81", "212-555-0123-99").
_PHONE_END = r"(?!\w)(?![ .,:/-]\d)"

# 1. North American Numbering Plan: optional +1 / 1 / 001 / 00 1 prefix, area code (2-9)xx, exchange
# (2-9)xx, line xxxx. Accepted: "(212) 555-0123", "(602)272-9781", "212-555-0123", "212.555.0123",
# "888/501-3145", "+1 212 555 0123", "1-800-555-0199", "001-253-366-9781". Rejected: bare "2125550123"
# (amounts, ids: a phone only with a label, rule 4), "555-0123" (no area code), mixed separators
# "212-555.0123", and space-separated "212 555 0123" (table columns) unless it carries "+1" or parentheses.
_NANP_RE = re.compile(
    _NUM_START
    + r"(?:(?P<cc>\+1|\b001|\b00 1|\b1)(?P<ccsep>[ .-]?))?"
    r"(?:\((?P<pa>[2-9]\d\d)\)[ ]?(?P<pex>[2-9]\d\d)[ .-]|(?P<a>[2-9]\d\d)(?P<s>[ .-])(?P<ex>[2-9]\d\d)(?P=s)"
    r"|(?P<sa>[2-9]\d\d)/(?P<sex>[2-9]\d\d)[ .-])"
    r"\d{4}" + _EXT + _NUM_END  # a space, then digits: the next token ("834.345.1254 155 Elm Street")
)
# 2. International: "+" or the "00" international prefix, country code (bare or in parentheses), then digit
# groups split by space, dash or dot, an optional trunk "(0)" or area code in parentheses; 8-15 digits in
# all (E.164 caps numbers at 15). Accepted: "+44 20 7946 0958", "+49 30 1234567", "+33 (0)1 23 45 67 89",
# "+14155552671", "0044 20 7946 0958", "(+30) 2439 150008", "+7 (914) 177-76-31", "+90(806)3608377".
# Rejected: "+12.5%" (too few digits), "+12345678.90" (a signed decimal: a lone "." separator), a "00"
# form without any separator (an id with leading zeros).
# Groups are split by a mandatory separator (or start with "("): with an optional one, a long digit run
# could be split into groups in exponentially many ways, and the regex backtracks through all of them.
_INTL_GROUP = r"(?:\(\d{1,4}\)[ .-]?)?\d{1,12}"
_INTL_RE = re.compile(
    r"(?<![\w+(])(?<!\d[ .,:/-])(?:(?P<p>\+|00)|\(\+|\+\()[1-9]\d{0,2}(?(p)|\))(?:[ .-]?\(0\))?"
    r"[ .-]?" + _INTL_GROUP + r"(?:(?:[ .-]|(?=\())" + _INTL_GROUP + r"){0,5}" + _EXT + _PHONE_END
)
# 3. National format with the trunk prefix "0" (most of Europe, the UK, Australia, much of Asia): "0",
# a non-zero digit, then 2-5 groups split by one consistent space, dot or dash; 9-11 digits in all
# (ITU-T E.164 national significant numbers of these plans plus the trunk digit). Accepted:
# "0490 39 07 81", "03.93.92.16.85", "020 7946 0958", "0961-7596216", "(020) 7946 0958", "(0406)-812415",
# "02124/15868344", "06/ 834 49 78" (area code, then "/"). Rejected: dates
# ("01.02.2024": 8 digits), accession numbers ("0001193125-21-123456": "00"), part of a longer run.
_NATIONAL_RE = re.compile(
    r"(?<![\w+(])(?<!\d[ .,:/-])(?:0[1-9]\d{0,3}(?P<s>[ .-])|(?:\(0[1-9]\d{0,3}\)[ -]?|0[1-9]\d{0,3}/ ?))"
    r"\d{2,8}(?:(?(s)(?P=s)|[ -])\d{2,8}){0,4}" + _EXT + _PHONE_END
)
_NATIONAL_GROUP_RE = re.compile(r"\d+")
# 4. Any number of 7-15 digits, in groups split by spaces, dots, dashes, "/" or parentheses, right after a word
# that labels it a phone number ("Mobile: 432 03 163", "Fax: 9498777106", "call me at 668 5702",
# "Tel. +41 (0)62 585 51 90"). The label is looked for at most 40 characters back; only filler words and
# punctuation may stand between it and the number.
# A group: up to two parenthesized parts, then digits, so a candidate never ends in "(1)" (a footnote mark).
# Groups are split by a mandatory separator or start with "(" (no exponential backtracking, see _INTL_GROUP).
_PHONE_GROUP = r"(?:\(\d{1,5}\)[ ./-]?){0,2}\d{1,15}"
_GENERIC_PHONE_RE = re.compile(
    r"(?<![\w+(])(?<!\d[ .,:/-])(?=[\d()+ ./-]{7})(?:\+|00|\(\+\d{1,3}\)[ ]?)?" + _PHONE_GROUP
    + r"(?:(?:[ .-]|/ ?|(?=\())" + _PHONE_GROUP + r"){0,6}" + _EXT + _PHONE_END
)
_PHONE_LABEL_RE = re.compile(
    r"(?<![a-z])(?:(?:tele?phone|phone|mobile|fax|cell(?:phone)?)s?|call(?:ed|ing)?|dial(?:l?ed|l?ing)?|desk|sms|"
    r"whatsapp|hotline|(?:tel|mob|ph)\.?)"
    # then only filler: ":", "#", "=", "-", "number", "no.", "me at", "is", ... and at most 3 blanks at a time
    # (not a "." that ends the sentence, not a newline: "11 recursive calls   3628800" is not a label)
    r"(?:[ \t]{0,3}(?:[:#=-]|(?:number|num|no|nr)\b\.?|(?:me|us|him|her|them|is|was|at|on|to)\b))*[ \t]{0,3}$",
    re.IGNORECASE,
)
_PHONE_LABEL_BACK = 40  # characters looked back for a label (rule 4)


def _digits(s: str) -> int:
    return sum(map(str.isdigit, s))


_EXT_TAIL_RE = re.compile(r"[ ]?" + _EXT_MARK + r"[ ]?\d{0,6}$")


def _strip_ext(s: str) -> str:
    """The number without its extension suffix (for digit counts)."""
    m = _EXT_TAIL_RE.search(s)
    return s[:m.start()] if m else s


def _nanp_ok(text: str, m: re.Match) -> bool:
    return not (m.group("s") == " " and m.group("cc") != "+1")


def _intl_ok(text: str, m: re.Match) -> bool:
    s = _strip_ext(m.group()).replace("(0)", "")
    if not 8 <= _digits(s) - (2 if m.group("p") == "00" else 0) <= 15:
        return False
    if m.group("p") == "00":
        # "0044 20 7946 0958": a 1-3 digit country code, then a space or dash. Not an id or hex value with
        # leading zeros ("00800000 00001000"), a zero-padded quad ("001.002.003.004") or an IBAN's tail.
        if not re.match(r"00[1-9]\d{0,2}[ -]", s) or "." in s or _after_iban_head(text, m):
            return False
    return not (s.count(".") == 1 and " " not in s and "-" not in s)


def _national_ok(text: str, m: re.Match) -> bool:
    groups = [len(g) for g in _NATIONAL_GROUP_RE.findall(_strip_ext(m.group()))]
    # 3-2-4 is the US SSN's shape ("053-06-8118") and 5-4 a US ZIP+4 code ("Boston, MA 02111-1307"), not
    # a national phone plan's; after an IBAN-shaped head ("NL70 ABNA 0029 0765 64") it is that string's tail
    return (9 <= sum(groups) <= 11 and len(groups) >= 2 and groups not in ([3, 2, 4], [5, 4])
            and not _after_iban_head(text, m))


def _labelled_phone_ok(text: str, m: re.Match) -> bool:
    s = _strip_ext(m.group())
    if not 7 <= _digits(s.replace("(0)", "")) <= 15:
        return False
    return _PHONE_LABEL_RE.search(text, max(0, m.start() - _PHONE_LABEL_BACK), m.start()) is not None


# The head of an IBAN-shaped string right before a card- or phone-like run: the run is that IBAN's tail (one
# whose checksum failed, or a reference code), not a card or a phone: "ES87 5503 2850 9087 5632 9505".
_IBAN_HEAD_RE = re.compile(r"(?<![\w])[A-Za-z]{2}\d{2}(?: ?[A-Za-z0-9]{4}){0,6} ?$")


def _after_iban_head(text: str, m: re.Match) -> bool:
    return _IBAN_HEAD_RE.search(text, max(0, m.start() - 40), m.start()) is not None


# --- card ----------------------------------------------------------------------------------------------
# 12-19 digits, bare, or in 2-6 groups of 3-6 digits (the last 1-6) split by one consistent space or dash:
# 4-4-4-4, Amex 4-6-5 and 4-4-4-3, Diners 4-6-4 and 4-4-4-2, 19-digit 4-4-4-4-3... The issuer's prefix and
# length and the Luhn check decide (``_issuer_ok``). A space-grouped candidate must be the whole run of
# space-separated digits (a table row "2019 2020 2021 2022" is not cut into a card).
_CARD_RE = re.compile(
    _NUM_START + r"(?<!\d )(?<!\w-)"  # "mpath-35333333000002328", "INV-...": a name's id, not a card
    + r"(?:\d{12,19}|\d{3,6}(?P<s>[ -])(?:\d{3,6}(?P=s)){0,4}\d{1,6})"
    + r"(?!\w)(?![.,:/ -]\d)"
)


def _luhn_ok(digits: str) -> bool:
    total = 0
    for i, c in enumerate(reversed(digits)):
        d = ord(c) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


# Issuer identification number (IIN) prefixes and card lengths, from ISO/IEC 7812 as the schemes publish
# them (Wikipedia "Payment card number", IIN ranges table): (first digits low, high), allowed lengths.
# Maestro's 12-19 digits include the historical 0604 and 6390 ranges and 56-58 (Maestro-only BINs).
_ISSUERS: tuple[tuple[str, str, frozenset[int]], ...] = (
    ("4", "4", frozenset((13, 16, 19))),                                      # Visa
    ("51", "55", frozenset((16,))), ("2221", "2720", frozenset((16,))),       # Mastercard
    ("34", "34", frozenset((15,))), ("37", "37", frozenset((15,))),           # American Express
    ("6011", "6011", frozenset(range(16, 20))), ("644", "649", frozenset(range(16, 20))),  # Discover
    ("65", "65", frozenset(range(16, 20))),
    ("35", "35", frozenset(range(16, 20))),  # JCB: the 35 block (3528-3589 issued today; the rest is JCB's)
    ("1800", "1800", frozenset((15,))), ("2131", "2131", frozenset((15,))),   # JCB (legacy 15-digit)
    ("300", "305", frozenset(range(14, 20))), ("3095", "3095", frozenset(range(14, 20))),  # Diners Club
    ("36", "36", frozenset(range(14, 20))), ("38", "39", frozenset(range(14, 20))),
    ("62", "62", frozenset(range(16, 20))),                                   # UnionPay
    ("2200", "2204", frozenset(range(16, 20))),                               # Mir
    ("50", "50", frozenset(range(12, 20))), ("56", "58", frozenset(range(12, 20))),  # Maestro
    ("6304", "6304", frozenset(range(12, 20))), ("6390", "6390", frozenset(range(12, 20))),
    ("67", "67", frozenset(range(12, 20))), ("0604", "0604", frozenset(range(12, 20))),
)


def _issuer_ok(d: str) -> bool:
    """Some issuer (Visa, Mastercard, Amex, Discover, JCB, Diners, UnionPay, Mir, Maestro) uses this
    prefix with this length."""
    n = len(d)
    return any(lo <= d[:len(lo)] <= hi and n in lengths for lo, hi, lengths in _ISSUERS)




def _card_ok(text: str, m: re.Match) -> bool:
    d = m.group().replace(" ", "").replace("-", "")
    # Ungrouped 17 and 18 digits: schemes allowing them issue 16 or 19 in practice, while 17-18 digit ids
    # are common on the web ("'id': 382607619566893752").
    if not 12 <= len(d) <= 19 or (len(d) in (17, 18) and d == m.group()) or _after_iban_head(text, m):
        return False
    return _issuer_ok(d) and _luhn_ok(d)


# --- iban ----------------------------------------------------------------------------------------------
# Lengths (characters, country code included) from the SWIFT IBAN Registry. Only these countries match:
# an unknown 2-letter prefix with digits is far more often a product code or identifier than an IBAN.
IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BR": 29,
    "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "DO": 28, "EE": 20, "EG": 29,
    "ES": 24, "FI": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28,
    "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20,
    "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "MC": 27, "MD": 24, "ME": 22, "MK": 19,
    "MR": 27, "MT": 31, "MU": 30, "NL": 18, "NO": 15, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29,
    "RO": 24, "RS": 22, "SA": 24, "SC": 31, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "ST": 25, "SV": 28,
    "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
}
# Country + 2 check digits + BBAN, compact or in groups of 4 split by single spaces, all upper case or
# all lower case ("gb29nwbk60161331926819": typed into a form; mod-97 is case-blind, ISO 13616 prints
# upper case). An ISIN ("US0378331005", 12 chars) is too short for any IBAN country and "US" is not one.
_IBAN_RE = re.compile(r"(?<!\w)(?:[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?"
                      r"|[a-z]{2}\d{2}(?: ?[a-z0-9]{4}){2,7}(?: ?[a-z0-9]{1,3})?)(?!\w)")


def _iban_mod97(compact: str) -> bool:
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1


def _iban_span(m: re.Match) -> tuple[int, int] | None:
    """The IBAN's (start, end) within the candidate, or None. The greedy regex may swallow a following
    4-character group ("BE68 5390 0754 7034 2024"); the candidate is cut back to the country's length
    when that falls on a group boundary."""
    s = m.group().upper()
    length = IBAN_LENGTHS.get(s[:2])
    if length is None:
        return None
    seen = 0
    for i, c in enumerate(s):
        if c != " ":
            seen += 1
            if seen == length:
                end = i + 1
                if end < len(s) and s[end] != " ":
                    return None
                break
    else:
        return None
    if not _iban_mod97(s[:end].replace(" ", "")):
        return None
    return m.start(), m.start() + end


# --- ssn -----------------------------------------------------------------------------------------------
# US SSN area-group-serial with a consistent dash or space: area not 000, 666 or 900-999; group not 00;
# serial not 0000 (SSA). Bare 9-digit numbers are rejected: they are CUSIPs, amounts and ids.
_SSN_RE = re.compile(_NUM_START + r"(?!000|666|9\d\d)\d{3}(?P<s>[- ])(?!00)\d\d(?P=s)(?!0000)\d{4}" + _NUM_END)


# --- detection -----------------------------------------------------------------------------------------
# Pre-check. Each regex above costs ~25 ns per character when scanned over a whole document, so they
# run only inside small windows around cheap triggers:
# - numeric kinds (ip v4, phone, card, ssn, iban): a run of >= 7 chars of digits and " ().+-" that starts
#   and ends with a digit (every such PII contains one; an IBAN's account number does). One scan with a
#   digit-first regex, ~8 ns per character on finance text, and most runs are short and few.
# - email: the positions of "@"; ip v6: "::" or ":hhhh:" (a colon-first regex, a fast literal scan).
_NUMERIC_RUN_RE = re.compile(r"\d[\d().+ -]{5,}\d")
_NUMERIC_RULES = (("ip", _IPV4_RE, _ipv4_ok), ("phone", _INTL_RE, _intl_ok), ("phone", _NANP_RE, _nanp_ok),
                  ("phone", _NATIONAL_RE, _national_ok), ("phone", _GENERIC_PHONE_RE, _labelled_phone_ok),
                  ("card", _CARD_RE, _card_ok), ("ssn", _SSN_RE, None))
_IPV6_TRIGGER_RE = re.compile(r"::|:[0-9A-Fa-f]{1,4}:")  # every IPv6 address has one ("::" or ":hhhh:")
# Window around a run: a phone's "(" / "+" / "888/" / "001-" prefix before it, an extension
# (" extension 123456") and the end guards after it.
_RUN_BEFORE, _RUN_AFTER = 8, 20
_IPV6_MAX = 46  # chars: the longest IPv6 text form (45) + 1 for the end guard
_IBAN_MAX = 40  # chars an IBAN (34 compact, 42 grouped) may reach past either end of its digit run
_EMAIL_MAX_LOCAL, _EMAIL_MAX_DOMAIN = 64, 253  # RFC 5321 limits, characters


def _merge(windows: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for a, b in windows:
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], b))
        else:
            merged.append((a, b))
    return merged


def _candidates(text: str, kinds: frozenset[str]) -> list[Span]:
    """All validated spans of ``kinds``, possibly overlapping, each regex run only in its trigger windows.
    A window ends 2 characters past its trigger so the end guards (``_NUM_END``) still see what follows."""
    spans: list[Span] = []
    n = len(text)
    numeric = [r for r in _NUMERIC_RULES if r[0] in kinds]
    if numeric or "iban" in kinds:
        runs = [(m.start(), m.end()) for m in _NUMERIC_RUN_RE.finditer(text)]
        if runs:
            for a, b in _merge([(max(0, a - _RUN_BEFORE), min(n, b + _RUN_AFTER)) for a, b in runs]):
                for kind, regex, ok in numeric:
                    for m in regex.finditer(text, a, b):
                        if ok is None or ok(text, m):
                            spans.append(Span(kind, m.start(), m.end()))
            if "iban" in kinds:
                for a, b in _merge([(max(0, a - _IBAN_MAX), min(n, b + _IBAN_MAX)) for a, b in runs]):
                    for m in _IBAN_RE.finditer(text, a, b):
                        se = _iban_span(m)
                        if se:
                            spans.append(Span("iban", *se))
    if "ip" in kinds and ":" in text:
        hits = [(max(0, m.start() - _IPV6_MAX), min(n, m.end() + _IPV6_MAX)) for m in _IPV6_TRIGGER_RE.finditer(text)]
        for a, b in _merge(hits):
            for m in _IPV6_RE.finditer(text, a, b):
                if _ipv6_ok(text, m):
                    spans.append(Span("ip", m.start(), m.end()))
    if "email" in kinds and "@" in text:
        ats = [m.start() for m in re.finditer("@", text)]
        windows = [(max(0, i - _EMAIL_MAX_LOCAL - 1), min(n, i + _EMAIL_MAX_DOMAIN + 2)) for i in ats]
        for a, b in _merge(windows):
            for m in _EMAIL_RE.finditer(text, a, b):
                if _email_ok(text, m):
                    spans.append(Span("email", m.start(), m.end()))
    return list(set(spans)) if len(spans) > 1 else spans


def find_pii(text: str, kinds: Iterable[str] = KINDS) -> list[Span]:
    """Non-overlapping PII spans of ``kinds`` in ``text``, sorted by start. Where candidates of two kinds
    overlap, the earlier-starting one wins, then the longer one, then the one first in ``KINDS``."""
    kinds = frozenset(kinds)
    unknown = kinds - set(KINDS)
    if unknown:
        raise ValueError(f"unknown PII kinds {sorted(unknown)}; known: {', '.join(KINDS)}")
    spans = _candidates(text, kinds)
    if len(spans) < 2:
        return spans
    spans.sort(key=lambda s: (s.start, s.start - s.end, KINDS.index(s.kind)))
    kept: list[Span] = []
    for s in spans:
        if not kept or s.start >= kept[-1].end:
            kept.append(s)
    return kept


def redact(text: str, kinds: Iterable[str] = KINDS) -> tuple[str, dict[str, int]]:
    """``text`` with every PII span replaced by ``PLACEHOLDERS[kind]``, and the number of spans replaced
    per kind (kinds with none are absent). Text without PII comes back unchanged (the same object)."""
    spans = find_pii(text, kinds)
    if not spans:
        return text, {}
    parts: list[str] = []
    counts: dict[str, int] = {}
    pos = 0
    for s in spans:
        parts.append(text[pos:s.start])
        parts.append(PLACEHOLDERS[s.kind])
        counts[s.kind] = counts.get(s.kind, 0) + 1
        pos = s.end
    parts.append(text[pos:])
    return "".join(parts), counts
