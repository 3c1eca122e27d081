"""PII detection quality on labelled real text: filters/pii.py vs datatrove 0.10.1's PIIFormatter, and on a
third-party PII set vs the rules before issue 20 and Google's libphonenumber port (``phonenumbers``).

    python benchmarks/bench_pii.py [--corpora ../shared/corpora] [--realworld ../shared/realworld] [--docs 3000]
        [--seed 0] [--dt-venv work/peers/dtvenv] [--results benchmarks/RESULTS.md]

Part A (``--realworld``, issue 20), when that directory exists:
A1. ``pii_presidio_synth_v2.jsonl.gz``: third-party sentences with gold spans. Its entity types map to our
    kinds (CREDIT_CARD card, PHONE_NUMBER phone, EMAIL_ADDRESS email, IBAN_CODE iban, US_SSN ssn, IP_ADDRESS
    ip); the others (PERSON, STREET_ADDRESS, ZIP_CODE, US_DRIVER_LICENSE, ...) are not redacted. Span matching:
    a gold span is *found* when one detection of its kind covers all of it (a detection that overlaps it only
    in part is counted as *partial*, and as a miss: part of the value stays in the text); a detection is
    *correct* when it overlaps a gold span of its kind, and a false positive otherwise (listed with the gold
    entity it hit, if any). Run for filters/pii.py now, the same file at ``BASELINE_REV`` (read with
    ``git show``; skipped without git), and for phones ``phonenumbers.PhoneNumberMatcher`` (region US, leniency
    POSSIBLE and VALID), each with documents/s.
A2. ``fin_*.jsonl.gz`` (real finance text): every placeholder ``redact`` writes, by kind, each one listed
    with its context; only <PHONE> and <EMAIL> are expected there. Documents/s now, before, and for
    ``phonenumbers`` (VALID, region US) on the same text.
Part B: the injected benchmark below (look-alikes included).

1. Base documents: real finance and general text (``CORPORA/{finance,general}/*.jsonl.gz``; the repo's
   ``data/`` sample when ../shared/corpora is absent), every finance document plus general documents
   round-robin over sources, cut to at most ``--max-chars`` at a sentence boundary. Seeded.
2. Injection at random sentence boundaries, one short sentence per value, with the value's exact
   character span recorded: PII of every kind (synthetic but valid: Luhn + issuer prefix cards,
   mod-97 IBANs, SSA-valid SSNs, ``ipaddress`` IPv4/IPv6, US and +44/+49/+33 phones; since issue 20
   also JCB/Diners/Maestro/UnionPay cards, national/extension/00/slash phones, lower-case IBANs, e-mails
   in URLs) and hard negatives that must not be flagged (amounts, percentages, dates, CUSIPs, ISINs, Luhn-failing
   16-digit numbers, IBANs with a wrong checksum, invalid SSNs, "version 1.2.3.4", 256.1.1.1, bare
   10-digit numbers, numeric ranges, subnet masks, ZIP+4 codes).
3. PII already in the real text (emails in the Linux docs, ...) is not labelled: each detector is run
   on the original document first and its detections there are ignored in the injected one (counted).
4. Scoring per kind. Primary: a detection is a true positive when its (start, end) equals a label of
   its kind exactly; secondary: when it overlaps one. Every other detection is a false positive; one
   that overlaps a hard negative is also listed under the negative's type.
5. datatrove's PIIFormatter (email + ip only) on the same documents, in the peer venv's python. Its
   detections are the spans its ``format()`` replaces: the script takes the matches of the formatter's
   own regexes and validators (email pass, then ip pass on its output, as ``format`` does) and checks
   that replacing exactly those spans reproduces ``format()``'s output for every document.
6. Speed: documents/s of ``filters.pii.redact`` over the benchmark set, one core, best of 3 passes in CPU
   time; the same for filters/pii.py at ``BASELINE_REV`` (its scores are shown too).

Targets: precision >= 0.99 and recall >= 0.95 per kind (exact spans in B; as defined above in A1); no
placeholder other than phone/e-mail on the finance files.
"""

from __future__ import annotations

import argparse
import gzip
import ipaddress
import json
import os
import random
import re
import string
import subprocess
import sys
import tempfile
import time
import types
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import provenance  # noqa: E402
from core.sections import replace_section  # noqa: E402

KINDS = ("email", "ip", "phone", "card", "iban", "ssn")
DT_KINDS = ("email", "ip")  # what datatrove's PIIFormatter redacts
TARGET_P, TARGET_R = 0.99, 0.95
# this script's section of benchmarks/RESULTS.md; every section whose heading starts with SECTION is replaced by it
SECTION = "## PII detection"
TITLE = f"{SECTION}: filters/pii.py vs the rules before, phonenumbers and datatrove 0.10.1 (`make bench-pii`)"
# filters/pii.py before issue 20 (national phone formats, extensions, every card issuer, ...): the baseline.
BASELINE_REV = "45eee1cb3f2abab31427d99a1ebda333687c0eba"
PRESIDIO_KINDS = {"CREDIT_CARD": "card", "PHONE_NUMBER": "phone", "EMAIL_ADDRESS": "email", "IBAN_CODE": "iban",
                  "US_SSN": "ssn", "IP_ADDRESS": "ip"}
FIN_ALLOWED = ("phone", "email")  # placeholders expected in finance text (contact lines, switchboards)

# ------------------------------------------------------------------------------- base documents

_BOUNDARY_RE = re.compile(r"(?<=[.!?])[ \n]+(?=[A-Z\"'(])|\n\n+")


def load_base(corpora: Path, n_docs: int, max_chars: int, rng: random.Random) -> tuple[list[dict], str]:
    """Every finance document, then general ones round-robin over sources up to ``n_docs`` in all;
    each cut to at most ``max_chars`` characters at a sentence boundary."""
    note = os.path.relpath(corpora, ROOT)  # as the repo sees it: no machine path in RESULTS.md
    if not list(corpora.glob("finance/*.jsonl.gz")) and not list(corpora.glob("general/*.jsonl.gz")):
        fallback = ROOT / "data"
        print(f"NOTE: corpora not found at {corpora} (expected finance/*.jsonl.gz and general/*.jsonl.gz); "
              f"falling back to the repo's embedded sample {fallback}", flush=True)
        corpora, note = fallback, "data/ (fallback: ../shared/corpora absent)"
    by_source: dict[tuple[str, str], list[str]] = {}
    for domain in ("finance", "general"):
        for path in sorted(corpora.glob(f"{domain}/*.jsonl.gz")):
            with gzip.open(path, "rt", encoding="utf-8") as f:
                texts = [t for t in (json.loads(line)["text"] for line in f if line.strip()) if len(t) >= 200]
            rng.shuffle(texts)
            by_source[(domain, path.name.removesuffix(".jsonl.gz"))] = texts
    if not by_source:
        raise SystemExit(f"no *.jsonl.gz under {corpora}/finance or {corpora}/general: nothing to benchmark")
    docs = [{"domain": d, "source": s, "text": t} for (d, s), ts in by_source.items() if d == "finance" for t in ts]
    docs = docs[:n_docs]
    general = {k: v for k, v in by_source.items() if k[0] == "general"}
    i = 0
    while len(docs) < n_docs and any(i < len(v) for v in general.values()):
        for (d, s), ts in general.items():
            if i < len(ts) and len(docs) < n_docs:
                docs.append({"domain": d, "source": s, "text": ts[i]})
        i += 1
    for d in docs:
        t = d["text"]
        if len(t) > max_chars:
            cuts = [m.start() for m in _BOUNDARY_RE.finditer(t, 0, max_chars)]
            d["text"] = t[: cuts[-1]] if cuts and cuts[-1] > max_chars // 4 else t[:max_chars]
    return docs, note


# ----------------------------------------------------------------------------- synthetic values

FIRST = "james mary robert patricia john jennifer michael linda david elizabeth wei li yuki sofia lukas emma " \
        "noah olivia mateo chloe aarav priya hans ingrid pierre amelie".split()
LAST = "smith johnson williams brown jones garcia miller davis muller schmidt dubois martin rossi chen wang " \
       "tanaka kowalski novak oconnor van-dijk fischer bernard patel nguyen".split()
DOMAINS = "gmail.com yahoo.com outlook.com hotmail.co.uk web.de orange.fr proton.me icloud.com " \
          "barclays.co.uk jpmorgan.com db.com bnpparibas.fr ing.nl mail.acme-capital.com " \
          "investor.relations.northwind.io ubs.ch fidelity.com university.edu ministry.gov.uk".split()


def gen_email(rng: random.Random) -> tuple[str, str]:
    f, last = rng.choice(FIRST), rng.choice(LAST)
    local = rng.choice([
        f"{f}.{last}", f"{f[0]}.{last}", f"{f}{last}{rng.randint(1, 99)}", f"{f}_{last}",
        f"{f}+{rng.choice(['news', 'bank', 'tax'])}", f"{f[0]}{last}", f"{last}.{f}{rng.randint(1950, 2005)}",
        f"{f}-{last}", f"{f[0].upper()}{last.capitalize()}",
    ])
    return f"{local}@{rng.choice(DOMAINS)}", "email"


def gen_ip(rng: random.Random) -> tuple[str, str]:
    r = rng.random()
    if r < 0.55:
        while True:
            a = ipaddress.IPv4Address(rng.getrandbits(32))
            if a.is_global:
                return str(a), "ipv4-public"
    if r < 0.7:
        return str(rng.choice([ipaddress.IPv4Network("10.0.0.0/8"), ipaddress.IPv4Network("192.168.0.0/16"),
                               ipaddress.IPv4Network("172.16.0.0/12")])[rng.randrange(1, 65535)]), "ipv4-private"
    groups = [rng.getrandbits(16) for _ in range(8)]
    groups[0] = rng.randint(0x2001, 0x2c00)
    if rng.random() < 0.6:  # a run of zeros so the compressed form uses "::"
        k = rng.randint(2, 5)
        s = rng.randint(1, 8 - k)
        groups[s:s + k] = [0] * k
    a = ipaddress.IPv6Address(b"".join(g.to_bytes(2, "big") for g in groups))
    return (a.compressed if rng.random() < 0.7 else a.exploded), "ipv6"


def _d(rng: random.Random, n: int) -> str:
    return "".join(rng.choice(string.digits) for _ in range(n))


def gen_phone(rng: random.Random) -> tuple[str, str]:
    area, ex, line = f"{rng.randint(2, 9)}{_d(rng, 2)}", f"{rng.randint(2, 9)}{_d(rng, 2)}", _d(rng, 4)
    fmt = rng.randrange(12)
    if fmt == 0:
        return f"({area}) {ex}-{line}", "us-paren"
    if fmt == 1:
        return f"{area}-{ex}-{line}", "us-dash"
    if fmt == 2:
        return f"{area}.{ex}.{line}", "us-dot"
    if fmt == 3:
        return rng.choice([f"+1 {area} {ex} {line}", f"+1-{area}-{ex}-{line}", f"1-{area}-{ex}-{line}"]), "us-cc"
    if fmt == 4:
        return rng.choice([f"+44 20 {rng.randint(7000, 8999)} {_d(rng, 4)}", f"+44 7{_d(rng, 3)} {_d(rng, 6)}",
                           f"+44 (0)161 {_d(rng, 3)} {_d(rng, 4)}"]), "uk"
    if fmt == 5:
        return rng.choice([f"+49 30 {_d(rng, 8)}", f"+49 89 {_d(rng, 4)} {_d(rng, 4)}",
                           f"+49-69-{_d(rng, 7)}", f"+49 (0)40 {_d(rng, 6)}"]), "de"
    if fmt == 7:  # issue 20: national formats with the trunk 0
        return rng.choice([f"0{rng.randint(1, 9)}{_d(rng, 2)} {_d(rng, 2)} {_d(rng, 2)} {_d(rng, 2)}",
                           f"0{rng.randint(1, 9)}.{_d(rng, 2)}.{_d(rng, 2)}.{_d(rng, 2)}.{_d(rng, 2)}",
                           f"0{rng.randint(1, 9)}{_d(rng, 2)}-{_d(rng, 7)}",
                           f"020 {rng.randint(7000, 8999)} {_d(rng, 4)}",
                           f"(0{rng.randint(1, 9)}{_d(rng, 2)}) {_d(rng, 3)} {_d(rng, 4)}"]), "national"
    if fmt == 8:  # extensions
        return rng.choice([f"{area}-{ex}-{line}x{_d(rng, rng.randint(1, 4))}", f"({area}){ex}-{line}x{_d(rng, 4)}",
                           f"+1-{area}-{ex}-{line}x{_d(rng, 3)}", f"{area}.{ex}.{line}x{_d(rng, 3)}",
                           f"{area}-{ex}-{line} ext. {_d(rng, 2)}"]), "extension"
    if fmt == 9:  # the 00 international prefix
        return rng.choice([f"001-{area}-{ex}-{line}", f"0044 20 {rng.randint(7000, 8999)} {_d(rng, 4)}",
                           f"0049 30 {_d(rng, 8)}"]), "intl-00"
    if fmt == 10:
        return f"{area}/{ex}-{line}", "us-slash"
    return rng.choice([f"+33 1 {_d(rng, 2)} {_d(rng, 2)} {_d(rng, 2)} {_d(rng, 2)}",
                       f"+33 6 {_d(rng, 2)} {_d(rng, 2)} {_d(rng, 2)} {_d(rng, 2)}",
                       f"+33 (0)4 {_d(rng, 2)} {_d(rng, 2)} {_d(rng, 2)} {_d(rng, 2)}"]), "fr"


def luhn_check_digit(body: str) -> str:
    total = 0
    for i, c in enumerate(reversed(body)):
        d = int(c)
        if i % 2 == 0:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return str((10 - total % 10) % 10)


# issuer: (prefix, length) choices; IIN ranges as filters/pii.py cites them (JCB, Diners, Maestro, UnionPay
# added for issue 20).
CARD_ISSUERS = {
    "visa": lambda r: ("4", r.choice([16, 16, 13, 19])),
    "mastercard": lambda r: (str(r.choice([r.randint(51, 55), r.randint(2221, 2720)])), 16),
    "amex": lambda r: (r.choice(["34", "37"]), 15),
    "discover": lambda r: (r.choice(["6011", "65", str(r.randint(644, 649))]), 16),
    "jcb": lambda r: (str(r.randint(3528, 3589)), 16),
    "diners": lambda r: (r.choice([str(r.randint(300, 305)), "36", "38"]), 14),
    "maestro": lambda r: (r.choice(["5018", "5020", "5038", "6304", "6759", "6761"]), r.choice([12, 16, 19])),
    "unionpay": lambda r: ("62", r.choice([16, 19])),
}


def _card_digits(rng: random.Random) -> tuple[str, str]:
    issuer = rng.choice(sorted(CARD_ISSUERS))
    prefix, n = CARD_ISSUERS[issuer](rng)
    body = prefix + _d(rng, n - 1 - len(prefix))
    return body + luhn_check_digit(body), issuer


def _group_card(d: str, sep: str, rng: random.Random | None = None) -> str:
    if len(d) in (14, 15) and (rng is None or rng.random() < 0.5):  # Amex 4-6-5, Diners 4-6-4
        return sep.join([d[:4], d[4:10], d[10:]])
    return sep.join(d[i:i + 4] for i in range(0, len(d), 4))  # 4-4-4-4, Amex 4-4-4-3, 4-4-4-4-3


def gen_card(rng: random.Random) -> tuple[str, str]:
    d, issuer = _card_digits(rng)
    sep = rng.choice(["", " ", "-"])
    return (_group_card(d, sep, rng) if sep else d), f"{issuer}-{'grouped' if sep else 'bare'}"


# (country, BBAN builder): formats from the SWIFT IBAN Registry.
IBAN_BBAN = {
    "DE": lambda r: _d(r, 18),
    "GB": lambda r: "".join(r.choice(string.ascii_uppercase) for _ in range(4)) + _d(r, 14),
    "FR": lambda r: _d(r, 10) + "".join(r.choice(string.digits + string.ascii_uppercase) for _ in range(11)) + _d(r, 2),
    "NL": lambda r: r.choice(["ABNA", "INGB", "RABO", "TRIO"]) + _d(r, 10),
    "ES": lambda r: _d(r, 20),
    "IT": lambda r: r.choice(string.ascii_uppercase) + _d(r, 10) + _d(r, 12),
    "BE": lambda r: _d(r, 12),
    "CH": lambda r: _d(r, 17),
}


def iban_check_digits(country: str, bban: str) -> str:
    num = int("".join(str(int(c, 36)) for c in bban + country + "00"))
    return f"{98 - num % 97:02d}"


def _iban(rng: random.Random, wrong: bool = False) -> tuple[str, str]:
    country = rng.choice(sorted(IBAN_BBAN))
    bban = IBAN_BBAN[country](rng)
    check = iban_check_digits(country, bban)
    if wrong:
        right = check
        while check == right:
            check = f"{rng.randint(2, 98):02d}"
    compact = country + check + bban
    if rng.random() < 0.15:  # typed into a form in lower case (issue 20)
        compact = compact.lower()
    if rng.random() < 0.5:
        return " ".join(compact[i:i + 4] for i in range(0, len(compact), 4)), f"{country}-grouped"
    return compact, f"{country}-compact"


def gen_iban(rng: random.Random) -> tuple[str, str]:
    return _iban(rng)


def gen_ssn(rng: random.Random) -> tuple[str, str]:
    area = rng.choice([rng.randint(1, 665), rng.randint(667, 899)])
    return f"{area:03d}-{rng.randint(1, 99):02d}-{rng.randint(1, 9999):04d}", "dashes"


GENERATORS = {"email": gen_email, "ip": gen_ip, "phone": gen_phone, "card": gen_card, "iban": gen_iban,
              "ssn": gen_ssn}
TEMPLATES = {
    "email": ["Please contact {v} for further details.", "Questions may be sent to {v}.",
              "The analyst ({v}) declined to comment.", "Email: {v}", "Send the signed form to <{v}> by Friday.",
              "Her page https://staff.example.org/people/{v} is archived.",
              "Unsubscribe at https://news.example.com/optout?email={v}&list=2 any time."],
    "ip": ["The request came from {v} according to the logs.", "Server address: {v}.",
           "Access was blocked for host {v}, the report said.", "Traffic from {v} was flagged."],
    "phone": ["Call {v} to reach the desk.", "Tel: {v}", "For enquiries phone {v}.",
              "He can be reached on {v} after 5 pm."],
    "card": ["The card number {v} was charged twice.", "Payment by card {v} was declined.", "Card: {v}.",
             "She disputed the charge on {v} last week."],
    "iban": ["Please wire the funds to IBAN {v}.", "Account: {v}", "Beneficiary IBAN {v}, reference INV-2041.",
             "Transfer to {v} before the deadline."],
    "ssn": ["His Social Security number is {v}.", "SSN: {v}", "The form listed {v} as the applicant's SSN."],
}


# ------------------------------------------------------------------------------- hard negatives

def cusip(rng: random.Random) -> str:
    body = "".join(rng.choice(string.digits + string.ascii_uppercase) for _ in range(8))
    if rng.random() < 0.6:
        body = _d(rng, 6) + body[6:]
    total = 0
    for i, c in enumerate(body):
        v = int(c, 36)
        if i % 2:
            v *= 2
        total += v // 10 + v % 10
    return body + str((10 - total % 10) % 10)


def isin(rng: random.Random) -> str:
    body = rng.choice(["US", "DE", "GB", "FR", "NL", "CH"]) + (cusip(rng) if rng.random() < 0.5 else _d(rng, 9))
    digits = "".join(str(int(c, 36)) for c in body)
    return body + luhn_check_digit(digits)


def _luhn_failing(rng: random.Random) -> str:
    d, _ = _card_digits(rng)
    while len(d) != 16:
        d, _ = _card_digits(rng)
    d = d[:-1] + str((int(d[-1]) + rng.randint(1, 9)) % 10)
    return rng.choice([d, _group_card(d, " "), _group_card(d, "-")])


def _bad_ssn(rng: random.Random) -> str:
    """Excluded by the SSA: area 000, 666 or 900-999, group 00, serial 0000."""
    valid_area = f"{rng.randint(1, 665):03d}"
    area = rng.choice(["000", "666", str(rng.randint(900, 999)), valid_area, valid_area])
    group = f"{rng.randint(1, 99):02d}"
    serial = f"{rng.randint(1, 9999):04d}"
    if area == valid_area:  # a valid area: break the group or the serial instead
        group, serial = ("00", serial) if rng.random() < 0.5 else (group, "0000")
    return f"{area}-{group}-{serial}"


def _bad_ipv4(rng: random.Random) -> str:
    """A dotted quad with the first or last octet above 255 ("256.1.1.1")."""
    bad = rng.choice([0, 3])
    return ".".join(str(rng.randint(256, 999) if i == bad else rng.randint(1, 255)) for i in range(4))


NEGATIVES = {
    "amount": (lambda r: r.choice([f"${r.randint(1, 999)},{_d(r, 3)},{_d(r, 3)}.{_d(r, 2)}",
                                   f"€{r.randint(1, 99)}.{r.randint(1, 9)} million",
                                   f"{r.randint(1, 999)},{_d(r, 3)},{_d(r, 3)}",
                                   f"${r.randint(1, 999)},{_d(r, 3)},{_d(r, 3)},{_d(r, 3)}"]),
               ["Revenue was {v} for the quarter.", "The deal is valued at {v}."]),
    "percentage": (lambda r: r.choice([f"{r.randint(0, 99)}.{r.randint(0, 99)}%", f"-{r.randint(0, 9)}.{_d(r, 2)}%",
                                       f"+{r.randint(0, 40)}.{r.randint(0, 9)}%"]),
                   ["Shares moved {v} in early trading.", "Margins were {v} year on year."]),
    "date": (lambda r: r.choice([f"{r.randint(1990, 2030)}-{r.randint(1, 12):02d}-{r.randint(1, 28):02d}",
                                 f"{r.randint(1, 12):02d}/{r.randint(1, 28):02d}/{r.randint(1990, 2030)}",
                                 f"{r.randint(1, 28):02d}.{r.randint(1, 12):02d}.{r.randint(1990, 2030)}"]),
             ["The filing is dated {v}.", "Settlement occurred on {v}."]),
    "cusip": (cusip, ["The notes (CUSIP {v}) mature in 2031.", "CUSIP: {v}"]),
    "isin": (isin, ["The bond's ISIN is {v}.", "ISIN {v} was suspended."]),
    "luhn-failing-16": (_luhn_failing, ["Reference {v} appears on the statement.", "Order id {v}."]),
    "iban-bad-checksum": (lambda r: _iban(r, wrong=True)[0], ["Reference code {v} was rejected.", "Ref: {v}"]),
    "invalid-ssn": (_bad_ssn, ["Form number {v} is void.", "The sample id {v} is a placeholder."]),
    "subnet-mask": (lambda r: r.choice(["255.255.255.0", "255.255.0.0", "255.255.255.128", "255.255.252.0",
                                        "255.0.0.0", "0.0.0.255"]),
                    ["Set the netmask to {v} on both hosts.", "The subnet mask {v} was applied."]),
    "zip+4": (lambda r: f"0{r.randint(1000, 8999)}-{_d(r, 4)}",
              ["The office is in Boston, MA {v}, USA.", "Mail it to Newark, NJ {v} by Monday."]),
    "version": (lambda r: f"{r.randint(1, 12)}.{r.randint(0, 20)}.{r.randint(0, 30)}.{r.randint(0, 300)}",
                ["Install version {v} before upgrading.", "The fix ships in release {v}."]),
    "invalid-ipv4": (_bad_ipv4,
                     ["The value {v} is not an address.", "Entry {v} was malformed."]),
    "bare-10-digit": (lambda r: f"{r.randint(2, 9)}{_d(r, 9)}",
                      ["Account number {v} was closed.", "The invoice total was {v} yen."]),
    "range": (lambda r: r.choice([f"{r.randint(1, 500)}-{r.randint(501, 999)}",
                                  f"{r.randint(1990, 2015)}-{r.randint(2016, 2030)}",
                                  f"{r.randint(1, 9)},{_d(r, 3)}-{r.randint(10, 99)},{_d(r, 3)}",
                                  f"pp. {r.randint(10, 99)}-{r.randint(100, 300)}"]),
              ["See pages {v} of the report.", "Estimates range {v} units."]),
}


# ----------------------------------------------------------------------------------- injection

def inject(text: str, rng: random.Random, n_pii: int, n_neg: int) -> tuple[str, list[dict], list[dict], list[tuple]]:
    """Insert ``n_pii`` PII sentences and ``n_neg`` hard-negative sentences at random sentence boundaries.
    Returns (new text, labels, negatives, segments) where each label/negative is {kind|type, sub, start, end,
    value} in new-text characters and segments maps original text: (new_start, orig_start, length)."""
    bounds = sorted({0, len(text), *(m.end() for m in _BOUNDARY_RE.finditer(text))})
    items = [("pii", k) for k in rng.choices(KINDS, k=n_pii)]
    items += [("neg", t) for t in rng.choices(sorted(NEGATIVES), k=n_neg)]
    positions = sorted((rng.choice(bounds), i) for i in range(len(items)))
    parts, labels, negatives, segments = [], [], [], []
    pos_new = pos_orig = 0
    for at, i in positions:
        if at > pos_orig:
            segments.append((pos_new, pos_orig, at - pos_orig))
            parts.append(text[pos_orig:at])
            pos_new += at - pos_orig
            pos_orig = at
        what, kind = items[i]
        if what == "pii":
            value, sub = GENERATORS[kind](rng)
            template = rng.choice(TEMPLATES[kind])
        else:
            gen, templates = NEGATIVES[kind]
            value, sub, template = gen(rng), kind, rng.choice(templates)
        pre, post = template.split("{v}")
        # a sentence of its own: a space before it unless it follows whitespace, one after unless at the end
        lead = " " if at and text[at - 1] not in " \n" else ""
        sentence = f"{lead}{pre}{value}{post}{' ' if at < len(text) else ''}"
        start = pos_new + len(lead) + len(pre)
        rec = {"sub": sub, "start": start, "end": start + len(value), "value": value}
        (labels if what == "pii" else negatives).append({("kind" if what == "pii" else "type"): kind, **rec})
        parts.append(sentence)
        pos_new += len(sentence)
    if pos_orig < len(text):
        segments.append((pos_new, pos_orig, len(text) - pos_orig))
        parts.append(text[pos_orig:])
    new = "".join(parts)
    for r in labels + negatives:
        assert new[r["start"]:r["end"]] == r["value"], r
    return new, labels, negatives, segments


def map_to_new(spans: list[tuple[str, int, int]], segments: list[tuple]) -> list[tuple[str, int, int]]:
    """Original-text spans -> injected-text spans (a span cut by an insertion keeps both ends' mapping)."""
    def m(p: int, is_end: bool) -> int:
        for ns, os_, n in segments:
            if os_ <= p < os_ + n or (is_end and p == os_ + n):
                return ns + p - os_
        return p
    return [(k, m(s, False), m(e, True)) for k, s, e in spans]


def build(docs: list[dict], rng: random.Random) -> list[dict]:
    bench = []
    for i, d in enumerate(docs):
        text, labels, negatives, segments = inject(d["text"], rng, rng.randint(1, 4), rng.randint(0, 3))
        bench.append({"id": i, "domain": d["domain"], "source": d["source"], "original": d["text"], "text": text,
                      "labels": labels, "negatives": negatives, "segments": segments})
    return bench


# ------------------------------------------------------------------------------------- scoring

def score(bench: list[dict], detections: list[list[tuple]], originals: list[list[tuple]], kinds: tuple) -> dict:
    """Per-kind exact and overlap P/R/F1; detections/originals: per document, (kind, start, end)."""
    tp = Counter()
    tp_ov_det, tp_ov_lab = Counter(), Counter()
    n_det, n_lab = Counter(), Counter()
    fp_by_neg: dict[str, Counter] = defaultdict(Counter)
    fp_examples: dict[str, list] = defaultdict(list)
    fn_by_sub: dict[str, Counter] = defaultdict(Counter)
    fn_examples: dict[str, list] = defaultdict(list)
    neg_total, neg_flagged = Counter(), Counter()
    ignored = Counter()
    for doc, dets, orig in zip(bench, detections, originals):
        pre = map_to_new(orig, doc["segments"])
        kept = []
        for k, s, e in dets:
            if any(ps < e and s < pe for _, ps, pe in pre):
                ignored[k] += 1
            else:
                kept.append((k, s, e))
        labels = [lab for lab in doc["labels"] if lab["kind"] in kinds]
        exact = {(lab["kind"], lab["start"], lab["end"]) for lab in labels}
        for k, s, e in kept:
            n_det[k] += 1
            is_exact = (k, s, e) in exact
            overlaps = any(lab["kind"] == k and lab["start"] < e and s < lab["end"] for lab in labels)
            tp[k] += is_exact
            tp_ov_det[k] += overlaps
            if is_exact:
                continue
            if overlaps:
                where = "boundary (overlaps a label of its kind)"
            else:
                negs = [n["type"] for n in doc["negatives"] if n["start"] < e and s < n["end"]]
                other = [lab["kind"] for lab in doc["labels"] if lab["start"] < e and s < lab["end"]]
                where = negs[0] if negs else (f"{other[0]} label" if other else "base text")
            fp_by_neg[k][where] += 1
            if len(fp_examples[k]) < 8:
                fp_examples[k].append((where, doc["text"][max(0, s - 30):e + 30].replace("\n", " "), doc["text"][s:e]))
        for lab in labels:
            k = lab["kind"]
            n_lab[k] += 1
            if any(dk == k and ds < lab["end"] and lab["start"] < de for dk, ds, de in kept):
                tp_ov_lab[k] += 1
            if (k, lab["start"], lab["end"]) not in {(dk, ds, de) for dk, ds, de in kept}:
                fn_by_sub[k][lab["sub"]] += 1
                if len(fn_examples[k]) < 8:
                    fn_examples[k].append((lab["sub"], lab["value"]))
        for n in doc["negatives"]:
            neg_total[n["type"]] += 1
            if any(ds < n["end"] and n["start"] < de for _, ds, de in kept):
                neg_flagged[n["type"]] += 1

    def prf(t_p: int, t_r: int, nd: int, nl: int) -> dict:
        p = t_p / nd if nd else 1.0
        r = t_r / nl if nl else 0.0
        return {"p": p, "r": r, "f1": 2 * p * r / (p + r) if p + r else 0.0}

    per_kind = {}
    for k in kinds:
        per_kind[k] = {"labels": n_lab[k], "detections": n_det[k], "tp": tp[k], "fp": n_det[k] - tp[k],
                       "fn": n_lab[k] - tp[k], "exact": prf(tp[k], tp[k], n_det[k], n_lab[k]),
                       "overlap": prf(tp_ov_det[k], tp_ov_lab[k], n_det[k], n_lab[k]),
                       "fp_by_type": dict(fp_by_neg[k]), "fp_examples": fp_examples[k],
                       "fn_by_sub": dict(fn_by_sub[k]), "fn_examples": fn_examples[k]}
    return {"per_kind": per_kind, "ignored_preexisting": dict(ignored),
            "negatives": {t: {"n": neg_total[t], "flagged": neg_flagged[t]} for t in sorted(neg_total)}}


# ----------------------------------------------------------------------------------- detectors

def run_ours(bench: list[dict], module: types.ModuleType | None = None) -> tuple[list, list, dict]:
    """``module`` (default filters.pii): its detections and ``redact`` speed (best of 3 passes, CPU time)."""
    if module is None:
        from filters import pii as module
    find_pii, redact = module.find_pii, module.redact

    dets = [[(s.kind, s.start, s.end) for s in find_pii(d["text"])] for d in bench]
    orig = [[(s.kind, s.start, s.end) for s in find_pii(d["original"])] for d in bench]
    texts = [d["text"] for d in bench]
    redact(texts[0])  # warm-up (regex compilation happened at import)
    wall = cpu = float("inf")
    for _ in range(3):
        t0, c0 = time.perf_counter(), time.process_time()
        for t in texts:
            redact(t)
        wall, cpu = min(wall, time.perf_counter() - t0), min(cpu, time.process_time() - c0)
    chars = sum(map(len, texts))
    return dets, orig, {"wall_s": wall, "cpu_s": cpu, "docs_per_s": len(texts) / cpu, "mb_per_s": chars / 1e6 / cpu}


# Runs in the datatrove venv. Detections = the spans format() replaces, recovered from the formatter's own
# regexes + validators (email pass, then ip pass on its output, exactly as format() and re.sub iterate),
# then checked: replacing exactly those spans must give format()'s output (sentinel replacements).
DT_SCRIPT = r'''
import json, sys, time
from datatrove.pipeline.formatters import PIIFormatter
E, I = "\ue000", "\ue001"
f = PIIFormatter(email_replacement=E, ip_replacement=I)
default = PIIFormatter()

def spans(text):
    out, ours, pos = [], [], 0
    er, ir = f.emails_replacer, f.ip_replacer
    mid, segs = [], []  # text after the email pass; segs map its offsets back to the input
    for m in er.regex.finditer(text):
        if er.validator and not er.validator(m.group(0)):
            continue
        mid.append(text[pos:m.start()]); segs.append((sum(map(len, mid)) - (m.start() - pos), pos, m.start() - pos))
        mid.append(E); ours.append(("email", m.start(), m.end())); pos = m.end()
    mid.append(text[pos:]); segs.append((sum(map(len, mid)) - (len(text) - pos), pos, len(text) - pos))
    mid = "".join(mid)
    def back(p, end):
        for ns, os_, n in segs:
            if ns <= p < ns + n or (end and p == ns + n):
                return os_ + p - ns
        raise AssertionError("ip match across an email placeholder")
    res, pos = [], 0
    for m in ir.regex.finditer(mid):
        if ir.validator and not ir.validator(m.group(0)):
            continue
        res.append(mid[pos:m.start()]); res.append(I); pos = m.end()
        ours.append(("ip", back(m.start(), False), back(m.end(), True)))
    res.append(mid[pos:])
    return sorted(ours, key=lambda s: s[1]), "".join(res)

docs = [json.loads(l) for l in open(sys.argv[1], encoding="utf-8")]
result = {"text": [], "original": [], "mismatch": 0}
for d in docs:
    for field in ("text", "original"):
        s, expect = spans(d[field])
        if expect != f.format(d[field]):
            result["mismatch"] += 1
        result[field].append(s)
t0 = time.perf_counter()
for d in docs:
    default.format(d["text"])
result["wall_s"] = time.perf_counter() - t0
print(json.dumps(result))
'''


def run_datatrove(bench: list[dict], dt_python: str) -> tuple[list, list, dict]:
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "docs.jsonl")
        with open(path, "w", encoding="utf-8") as f:
            for d in bench:
                f.write(json.dumps({"text": d["text"], "original": d["original"]}) + "\n")
        proc = subprocess.run([dt_python, "-c", DT_SCRIPT, path], capture_output=True, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-3000:])
        raise SystemExit(f"datatrove run failed ({proc.returncode}) with {dt_python}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    if out["mismatch"]:
        raise SystemExit(f"datatrove: derived spans do not reproduce format() on {out['mismatch']} texts")
    dets = [[tuple(s) for s in ds] for ds in out["text"]]
    orig = [[tuple(s) for s in ds] for ds in out["original"]]
    return dets, orig, {"wall_s": out["wall_s"], "docs_per_s": len(bench) / out["wall_s"]}


# ------------------------------------------------------------------- part A: third-party PII, finance text

Detector = Callable[[str], list[tuple[str, int, int]]]


def read_jsonl_gz(path: Path) -> list[dict]:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def baseline_module(rev: str) -> types.ModuleType | None:
    """filters/pii.py as it was at ``rev`` (``git show``), or None without git or that commit."""
    try:
        src = subprocess.run(["git", "show", f"{rev}:filters/pii.py"], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    mod = types.ModuleType("pii_baseline")
    sys.modules["pii_baseline"] = mod  # dataclasses look their module up while the class is created
    exec(compile(src, f"{rev[:7]}:filters/pii.py", "exec"), mod.__dict__)
    return mod


def ours_detector(mod: types.ModuleType) -> Detector:
    return lambda text: [(s.kind, s.start, s.end) for s in mod.find_pii(text)]


def phonenumbers_detector(leniency_name: str, region: str = "US") -> Detector | None:
    try:
        import phonenumbers
    except ImportError:
        return None
    leniency = getattr(phonenumbers.Leniency, leniency_name)
    return lambda text: [("phone", m.start, m.end)
                         for m in phonenumbers.PhoneNumberMatcher(text, region, leniency=leniency)]


def timed(detector: Detector, texts: list[str], repeats: int = 3) -> tuple[list[list[tuple[str, int, int]]], float]:
    """Detections per text and documents/s: the best of ``repeats`` passes in CPU time, one core (the best
    pass is the least disturbed by other processes on a shared machine)."""
    best = float("inf")
    for _ in range(repeats):
        t0 = time.process_time()
        out = [detector(t) for t in texts]
        best = min(best, time.process_time() - t0)
    return out, len(texts) / max(best, 1e-9)


def score_gold(docs: list[dict], dets: list[list[tuple[str, int, int]]], kinds: tuple[str, ...]) -> dict:
    """Per kind: gold spans, found (one detection of the kind covers all of it), partial (overlapped only in
    part: a miss), detections, correct (overlap a gold span of their kind); misses and false positives."""
    res = {k: {"gold": 0, "found": 0, "partial": 0, "det": 0, "correct": 0, "missed": [], "fp": []} for k in kinds}
    for d, ds in zip(docs, dets):
        text = d["text"]
        gold = [(PRESIDIO_KINDS.get(g["entity_type"]), g["entity_type"], g["start_position"], g["end_position"])
                for g in d["spans"]]
        for k, _, a, b in gold:
            if k not in res:
                continue
            r = res[k]
            r["gold"] += 1
            if any(dk == k and s <= a and b <= e for dk, s, e in ds):
                r["found"] += 1
            else:
                r["partial"] += any(dk == k and s < b and a < e for dk, s, e in ds)
                r["missed"].append(text[a:b])
        for dk, s, e in ds:
            if dk not in res:
                continue
            r = res[dk]
            r["det"] += 1
            if any(k == dk and s < b and a < e for k, _, a, b in gold):
                r["correct"] += 1
            else:
                hit = [t for _, t, a, b in gold if s < b and a < e]
                r["fp"].append((text[s:e], hit[0] if hit else "no gold span"))
    return res


def part_a(realworld: Path) -> list[str]:
    """Third-party PII set and finance files: the report lines (markdown)."""
    from filters import pii

    pii_path = realworld / "pii_presidio_synth_v2.jsonl.gz"
    fin_paths = sorted(realworld.glob("fin_*.jsonl.gz"))
    rel = os.path.relpath(realworld, ROOT)
    if not pii_path.exists() and not fin_paths:
        return [f"Part A skipped: no {rel}/pii_presidio_synth_v2.jsonl.gz or fin_*.jsonl.gz.", ""]
    base = baseline_module(BASELINE_REV)
    detectors: list[tuple[str, Detector, tuple[str, ...]]] = [("filters/pii.py (now)", ours_detector(pii), KINDS)]
    if base is not None:
        detectors.append((f"filters/pii.py at {BASELINE_REV[:7]} (before)", ours_detector(base), KINDS))
    for name in ("POSSIBLE", "VALID"):
        det = phonenumbers_detector(name)
        if det is not None:
            detectors.append((f"phonenumbers {_pn_version()} PhoneNumberMatcher(region US, {name})", det,
                              ("phone",)))
    lines: list[str] = []
    if pii_path.exists():
        docs = read_jsonl_gz(pii_path)
        present = [k for k in KINDS if any(PRESIDIO_KINDS.get(g["entity_type"]) == k for d in docs for g in d["spans"])]
        n_gold = Counter(PRESIDIO_KINDS[g["entity_type"]] for d in docs for g in d["spans"]
                         if g["entity_type"] in PRESIDIO_KINDS)
        lines += [f"### A1. Third-party PII set: `{rel}/pii_presidio_synth_v2.jsonl.gz`", "",
                  f"{len(docs)} sentences (Faker values in several locales), gold spans of our kinds: "
                  f"{dict(n_gold)}. Found = one detection of the kind covers the whole gold span (partial overlap "
                  "is a miss, counted in the partial column); correct = a detection overlapping a gold span of its "
                  f"kind. Targets: recall >= {TARGET_R} for each kind present, precision >= {TARGET_P}.", "",
                  "| detector | kind | gold | found | partial | recall | detections | correct | precision | "
                  "docs/s | target |", "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
        notes = []
        for name, det, kinds in detectors:
            dets, dps = timed(det, [d["text"] for d in docs])
            res = score_gold(docs, dets, kinds)
            for k in [k for k in present if k in kinds]:
                r = res[k]
                rec = r["found"] / r["gold"] if r["gold"] else 0.0
                prec = r["correct"] / r["det"] if r["det"] else 1.0
                ok = rec >= TARGET_R and prec >= TARGET_P
                lines.append(f"| {name} | {k} | {r['gold']} | {r['found']} | {r['partial']} | {rec:.3f} | {r['det']} "
                             f"| {r['correct']} | {prec:.3f} | {dps:,.0f} | {'met' if ok else '**missed**'} |")
                if r["missed"]:
                    notes.append(f"- {name}, {k}: missed {len(r['missed'])}: "
                                 + ", ".join(f"`{v}`" for v in r["missed"][:12]))
                if r["fp"]:
                    notes.append(f"- {name}, {k}: false positives {len(r['fp'])}: "
                                 + ", ".join(f"`{v}` ({hit})" for v, hit in r["fp"][:12]))
        lines += ["", *notes, ""]
    if fin_paths:
        lines += [f"### A2. Finance text: `{rel}/" + "{" + ",".join(p.name for p in fin_paths) + "}`", ""]
        texts = [d["text"] for p in fin_paths for d in read_jsonl_gz(p)]
        mb = sum(map(len, texts)) / 1e6
        counts: Counter = Counter()
        listed: list[str] = []
        for t in texts:
            for s in pii.find_pii(t):
                counts[s.kind] += 1
                ctx = t[max(0, s.start - 40):s.end + 20].replace("\n", " ").replace("|", "\\|")
                listed.append(f"    - {pii.PLACEHOLDERS[s.kind]} `{t[s.start:s.end]}` in \"…{ctx}…\"")
        other = {k: n for k, n in counts.items() if k not in FIN_ALLOWED}
        lines += [f"{len(texts)} documents, {mb:.2f} M characters. Placeholders `redact` writes (all kinds): "
                  f"{dict(counts) or 'none'}; other than phone/e-mail: {other or 'none'} "
                  f"({'met' if not other else '**missed**'}). Each one:", *listed, "",
                  "Speed on this text (documents/s, best of 3 passes in CPU time, one core; all kinds for ours, the "
                  "clean stage's default):", ""]
        for name, det, _ in detectors:
            if "POSSIBLE" in name:
                continue
            dets, dps = timed(det, texts)
            found = Counter(k for ds in dets for k, _, _ in ds)
            lines.append(f"- {name}: {dps:,.0f} documents/s ({dps * mb / len(texts):.1f} MB/s); "
                         f"detections {dict(found) or 'none'}")
        lines.append("")
    return lines


def _pn_version() -> str:
    import phonenumbers
    return phonenumbers.__version__


# ------------------------------------------------------------------------------------- report

def table(name: str, sc: dict, kinds: tuple) -> list[str]:
    lines = [f"| {name} | kind | labels | detected | TP | FP | FN | P | R | F1 | P (overlap) | R (overlap) | target |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for k in kinds:
        r = sc["per_kind"][k]
        ok = r["exact"]["p"] >= TARGET_P and r["exact"]["r"] >= TARGET_R
        lines.append(f"| | {k} | {r['labels']} | {r['detections']} | {r['tp']} | {r['fp']} | {r['fn']} | "
                     f"{r['exact']['p']:.3f} | {r['exact']['r']:.3f} | {r['exact']['f1']:.3f} | "
                     f"{r['overlap']['p']:.3f} | {r['overlap']['r']:.3f} | {'met' if ok else '**missed**'} |")
    return lines


def details(name: str, sc: dict, kinds: tuple) -> list[str]:
    lines = []
    for k in kinds:
        r = sc["per_kind"][k]
        if r["fp_by_type"]:
            lines.append(f"- {name} {k} false positives by type: {r['fp_by_type']}")
            for where, ctx, val in r["fp_examples"][:4]:
                lines.append(f"    - [{where}] `{val}` in \"…{ctx}…\"")
        if r["fn_by_sub"]:
            lines.append(f"- {name} {k} missed (exact) by subtype: {r['fn_by_sub']}; e.g. "
                         + ", ".join(f"`{v}` ({s})" for s, v in r["fn_examples"][:5]))
    flagged = {t: f"{v['flagged']}/{v['n']}" for t, v in sc["negatives"].items() if v["flagged"]}
    lines.append(f"- {name} hard negatives flagged (any kind): {flagged or 'none'}")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpora", default=str(ROOT.parent / "shared" / "corpora"))
    ap.add_argument("--realworld", default=str(ROOT.parent / "shared" / "realworld"),
                    help="third-party PII set and finance files (part A; skipped when absent)")
    ap.add_argument("--docs", type=int, default=3000, help="documents in the benchmark set")
    ap.add_argument("--max-chars", type=int, default=8000, help="cut base documents to this many characters")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dt-venv", default=str(ROOT / "work" / "peers" / "dtvenv"),
                    help="datatrove venv (make peer-venv)")
    ap.add_argument("--results", help=f"replace the '{TITLE}' section of this file (e.g. benchmarks/RESULTS.md); "
                    "without it the tables are only printed")
    args = ap.parse_args()
    provenance.check_results(args.results)

    t_start = time.perf_counter()
    part_a_lines = part_a(Path(args.realworld))
    print("\n".join(part_a_lines), flush=True)
    rng = random.Random(args.seed)
    docs, corpus_note = load_base(Path(args.corpora), args.docs, args.max_chars, rng)
    bench = build(docs, rng)
    n_lab = Counter(lab["kind"] for d in bench for lab in d["labels"])
    n_sub = Counter(f"{lab['kind']}:{lab['sub']}" for d in bench for lab in d["labels"])
    n_neg = Counter(n["type"] for d in bench for n in d["negatives"])
    by_src = Counter(f"{d['domain']}/{d['source']}" for d in bench)
    chars = sum(len(d["text"]) for d in bench)
    out = [TITLE,
           "", "### B. Injected PII and look-alikes in real text", "",
           f"Set: {len(bench)} documents of real text from {corpus_note} ({chars / 1e6:.2f} M characters after "
           f"injection; base cut to <= {args.max_chars} chars at a sentence boundary), seed {args.seed}.",
           f"Sources: {dict(sorted(by_src.items()))}.",
           f"Injected PII labels ({sum(n_lab.values())}): {dict(n_lab)}.",
           f"Subtypes: {dict(sorted(n_sub.items()))}.",
           f"Hard negatives ({sum(n_neg.values())}): {dict(sorted(n_neg.items()))}.", ""]
    print("\n".join(out), flush=True)

    ours_dets, ours_orig, speed = run_ours(bench)
    ours = score(bench, ours_dets, ours_orig, KINDS)
    base = baseline_module(BASELINE_REV)
    base_sc = base_speed = None
    if base is not None:
        base_dets, base_orig, base_speed = run_ours(bench, base)
        base_sc = score(bench, base_dets, base_orig, KINDS)
    pre_ours = Counter(k for ds in ours_orig for k, _, _ in ds)
    report = [f"Pre-existing PII found by us in the un-injected base text (ignored): {dict(pre_ours) or 'none'} "
              f"in {sum(1 for ds in ours_orig if ds)} documents; datatrove's, likewise ignored, below.", "",
              f"Targets: precision >= {TARGET_P} and recall >= {TARGET_R} per kind, exact spans. TP = detection "
              "whose (start, end) equals a label of its kind; overlap columns count any overlap with a label of "
              "its kind.", ""]
    report += table("ours (filters/pii.py)", ours, KINDS)
    if base_sc is not None:
        report += ["", *table(f"before ({BASELINE_REV[:7]})", base_sc, KINDS)]
    dt = None
    dt_python = os.path.join(args.dt_venv, "bin", "python")
    if not os.path.exists(dt_python):
        report += ["", f"datatrove venv not found at {args.dt_venv}: peer not run (create it with `make peer-venv`); "
                   "our numbers only."]
    else:
        dt_dets, dt_orig, dt_speed = run_datatrove(bench, dt_python)
        dt = score(bench, dt_dets, dt_orig, DT_KINDS)
        pre_dt = Counter(k for ds in dt_orig for k, _, _ in ds)
        report += [""] + table("datatrove PIIFormatter", dt, DT_KINDS)
        report += ["", f"datatrove pre-existing detections in the base text (ignored): {dict(pre_dt) or 'none'}. "
                   "It redacts only public IPv4 (`is_global`), has no IPv6, and its IPv4 regex has no word "
                   "boundaries."]
    report += ["", "Errors by type (for filters/pii.py):"] + details("ours", ours, KINDS)
    if dt:
        report += details("datatrove", dt, DT_KINDS)
    report += ["", f"Speed: `redact` (all six kinds) {speed['docs_per_s']:,.0f} documents/s, "
               f"{speed['mb_per_s']:.1f} MB/s "
               f"on one core (best of 3 passes: {speed['wall_s']:.2f} s wall, {speed['cpu_s']:.2f} s CPU for "
               f"{len(bench)} documents)"
               + (f"; before ({BASELINE_REV[:7]}) {base_speed['docs_per_s']:,.0f} documents/s, "
                  f"{base_speed['mb_per_s']:.1f} MB/s" if base_speed else "")
               + (f"; datatrove `PIIFormatter.format` {dt_speed['docs_per_s']:,.0f} documents/s." if dt else "."),
               f"Whole benchmark: {time.perf_counter() - t_start:.1f} s."]
    print("\n".join(report), flush=True)

    if args.results:
        replace_section(args.results, TITLE, provenance.body("bench-pii", "\n".join(part_a_lines + out[2:] + report)),
                        header=provenance.HEADER, key=SECTION)
        print(f"wrote the '{TITLE}' section of {args.results}")


if __name__ == "__main__":
    main()
