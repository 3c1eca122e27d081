"""Build the training set of the bundled finance classifier (``filters/models/finance.ftz``) from public repositories.

    python benchmarks/build_finance_train.py --out work/finance_train \\
        --sec-parser-data PATH --cover-pages PATH --rev-speech PATH --reuters-news PATH --ag-news PATH \\
        --isot-sample PATH --mercury-fixtures PATH --readability-pages PATH [--corpora ../shared/corpora] \\
        [--realworld ../shared/realworld] [--seed 0]

Each PATH is a local copy of a public GitHub repository: a git directory (a clone's ``.git`` or a bare mirror;
the commit read is ``HEAD``, recorded in every document's ``meta``) or a plain checkout. Which repository, path,
commit and license each source comes from: ``filters/models/README.md``. The output is
``OUT/{pos,neg}/<source>.jsonl.gz`` (``{"id", "text", "source", "group", "meta"}``; ``group`` is the unit a
held-out split must not cut: one filing, one call, one article) and ``OUT/manifest.json`` (counts, commits).

Deterministic: files are read in sorted order, samples are taken by a seeded crc32 of the path (no RNG state),
so the same inputs give the same bytes. No text of ``../shared/realworld`` (read by the leak check only) or of a
reserved evaluation repository (issue 20's list) enters the set; the earnings-call transcripts of
``rajdeep345/ECTSum`` are deliberately NOT used: all 39 calls of the realworld development half (from the
reserved ``la83la/earnings-call-transcripts``) are among its 2,425 files, same Motley Fool transcripts under the
same names.

Reserved filings never enter: every filing, 8-K submission and exhibit of the filers whose SEC documents the reserved
dgunning/edgartools ships in its ``data/`` folder (``RESERVED_FILERS``) is left out of both sides, and so are the
earnings calls of US companies (``CALL_CORPORA``; the reserved la83la set is US calls). After writing, a leak check
compares every training document with ``--realworld`` (``../shared/realworld/*.jsonl.gz``, read for this check only):
it prints the documents sharing the most word 13-grams with one realworld document and exits 1 when one shares more
than ``LEAK_MAX_SHARE`` (boilerplate that several training groups share does not count).
"""

from __future__ import annotations

import argparse
import csv
import gzip
import io
import json
import re
import subprocess
import sys
import zlib
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHUNK_CHARS = 6_000  # excerpt size: a few screens of a filing or a call, like the ~6 KB excerpts a crawl holds
MAX_CHUNKS_PER_FILING = 10  # per 10-K/10-Q: spread over the filing, so no one company dominates
MAX_CHUNKS_PER_CALL = 6  # per earnings call (a call is 30-60 KB of text)
REUTERS_DOCS = 3_000  # of 106,521 Reuters business stories (Ding et al. 2014), sampled by hash
CORPORA_CAP = 1_600  # documents per ../shared/corpora file at most (linux_docs alone has 2,841; keeps every BBC story)

# Filers whose SEC documents dgunning/edgartools ships in its `data/` folder (its file list). That repository is on
# issue 20's reserved list (evaluation data: ../shared/realworld's SEC excerpts come from it), and some of the very
# same filings reach us through other repositories: alphanome-ai/sec-parser-test-data holds NVIDIA's 10-K
# 0001045810-24-000029 (~50% of its 13-grams shared with realworld excerpts) and Apple's 10-Q 0000320193-23-000077;
# ryankfrench/sec_cover_page_parser holds Apple and Oracle 8-Ks. Every filing, 8-K submission and exhibit of these
# filers is left out of BOTH sides, whatever its date. Each entry: (name, CIKs, filer-name regex, tickers). A CIK is
# listed only where a filing read here states it (EDGAR header `CENTRAL INDEX KEY`, iXBRL
# `dei:EntityCentralIndexKey`, or the accession prefix of a self-filed accession); the others match by the filer's
# name (header `COMPANY CONFORMED NAME`, iXBRL `dei:EntityRegistrantName`) or ticker, never by body text (every
# filing says "Delaware").
RESERVED_FILERS: tuple[tuple[str, tuple[int, ...], str, tuple[str, ...]], ...] = (
    ("1-800-Flowers.com", (), r"1-800-flowers", ("FLWS",)),
    ("Delaware funds (485BPOS)", (), r"^delaware (group|pooled|investments|ivy|vip)|^delaware\b.*\bfunds?\b", ()),
    ("NexPoint", (), r"\bnexpoint\b", ()),
    ("NVIDIA", (1045810,), r"\bnvidia\b", ("NVDA",)),
    ("PG&E / Pacific Gas and Electric", (), r"\bpg&e\b|\bpg&amp;e\b|pacific gas (and|&) electric", ("PCG",)),
    ("AFC Gamma", (), r"\bafc gamma\b", ("AFCG",)),
    ("Cabot", (), r"\bcabot\b", ("CBT",)),
    ("Athena", (), r"\bathena\b", ()),
    ("Royal Philips", (), r"\bphilips\b", ("PHG",)),
    ("BlackRock", (1364742,), r"\bblackrock\b", ("BLK",)),
    ("Nordstrom", (), r"\bnordstrom\b", ("JWN",)),
    ("Apple", (320193,), r"\bapple (inc|computer)\b", ("AAPL",)),
    ("Buckle", (), r"\bbuckle\b", ("BKE",)),
    ("Flushing Financial", (), r"\bflushing financial\b", ("FFIC",)),
    ("Healthpeak", (), r"\bhealthpeak\b", ("PEAK", "DOC")),
    ("Microsoft", (), r"\bmicrosoft\b", ("MSFT",)),
    ("Oracle", (1341439,), r"\boracle corp", ("ORCL",)),
    ("Livent", (), r"\blivent\b", ("LTHM", "LVNT")),
    ("T. Rowe Price", (), r"\bt\.? ?rowe price\b", ("TROW",)),
    ("23andMe", (), r"\b23andme\b", ("ME",)),
    ("Snowflake", (), r"\bsnowflake\b", ("SNOW",)),
    ("374Water", (), r"\b374water\b", ("SCWO",)),
)
_RESERVED_NAME = [(name, re.compile(rx, re.I)) for name, _, rx, _ in RESERVED_FILERS]
_RESERVED_CIK = {cik: name for name, ciks, _, _ in RESERVED_FILERS for cik in ciks}
_RESERVED_TICKER = {t: name for name, _, _, tickers in RESERVED_FILERS for t in tickers}

# Leak check: no training document may share more than this share of its word 13-grams with any one
# ../shared/realworld document. Boilerplate (SEC cover-page language, "forward-looking statements" paragraphs) gives a
# few percent; the same filing gives tens of percent (NVIDIA's 10-K: ~50%).
LEAK_NGRAM = 13  # words, as in the GPT-3 paper's contamination check (Brown et al. 2020, appendix C)
LEAK_MAX_SHARE = 0.20
# A 13-gram found in at least this many training groups (different filings, calls, articles) is form language, not
# a leak: measured on the first build, a 10-K's cover page shares ~50% of its 13-grams with ANY other 10-K's cover
# page ("Indicate by check mark whether the registrant ..."), the Sarbanes-Oxley certifications ~65%, and the
# auditor's opinion (PCAOB wording) 30-60% with another client of the same audit firm. Such 13-grams are not counted
# as shared. A copy of one filing or call is mostly 13-grams that no other group has: on the first build, with this
# value, every real leak is still flagged (NVIDIA's 10-K and 10-Q, Apple's 10-Q, the Danaher call: 0.23-0.56).
LEAK_BOILERPLATE_GROUPS = 2
# ... and fewer than this many shared 13-grams (a ~60-word run: one table header or one sentence) is no copy of a
# document, whatever the share: measured, Apple's 2019 Q1 XBRL share-based-compensation block (52 13-grams) shares 13
# with the realworld Apple 10-Q of 2023 (the same company's table labels, a different filing).
LEAK_MIN_SHARED = 50
LEAK_TOP = 15  # documents printed


def reserved_filer(ciks=(), names=(), tickers=()) -> str | None:
    """The RESERVED_FILERS entry a filing belongs to (by any of its filers' CIKs, names or tickers), else None."""
    for cik in ciks:
        if cik and int(cik) in _RESERVED_CIK:
            return _RESERVED_CIK[int(cik)]
    for t in tickers:
        if t and t.upper() in _RESERVED_TICKER:
            return _RESERVED_TICKER[t.upper()]
    for n in names:
        for name, rx in _RESERVED_NAME:
            if n and rx.search(n.strip()):
                return name
    return None


EXCLUDED: list[dict] = []  # filings left out by reserved_filer, for the manifest


class RepoReader:
    """Files of a repository copy: a git directory (read at HEAD with ``git cat-file``) or a plain directory."""

    def __init__(self, path: str):
        p = Path(path)
        git_dir = p / ".git" if (p / ".git").is_dir() else p
        self.git = (git_dir / "HEAD").exists() and (git_dir / "objects").is_dir()
        self.path = git_dir if self.git else p
        self.commit = self._git("rev-parse", "HEAD").strip() if self.git else "working-tree"

    def _git(self, *args: str) -> str:
        return subprocess.run(["git", "--git-dir", str(self.path), *args], check=True, capture_output=True,
                              text=True).stdout

    def files(self, prefix: str = "") -> list[str]:
        if self.git:
            out = self._git("ls-tree", "-r", "--name-only", "-z", "HEAD", "--", prefix or ".")
            return sorted(f for f in out.split("\0") if f)
        base = self.path / prefix if prefix else self.path
        return sorted(str(f.relative_to(self.path)) for f in base.rglob("*") if f.is_file())

    def read(self, name: str) -> bytes | None:
        """The file's bytes; None when this copy lacks it (a mirror may omit its largest files)."""
        if self.git:
            r = subprocess.run(["git", "--git-dir", str(self.path), "cat-file", "blob", f"HEAD:{name}"],
                               capture_output=True)
            return r.stdout if r.returncode == 0 else None
        f = self.path / name
        return f.read_bytes() if f.is_file() else None


def sample_key(seed: int, key: str) -> int:
    return zlib.crc32(f"{seed}:{key}".encode())


# --- HTML filings to text: block elements -> lines, a table row -> one line with cells joined by " | " -------------

_BLOCK = {"p", "div", "br", "li", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6", "table", "tr", "section",
          "article", "center", "blockquote", "pre", "hr", "title", "dt", "dd", "font_block"}
_DROP = {"script", "style", "head", "noscript", "ix:header", "xbrli:context", "ix:hidden"}
_HIDDEN = re.compile(r"display\s*:\s*none", re.I)
_SPACE = re.compile(r"[ \t\u00a0\u2009\u200b]+")


def html_to_text(raw: bytes) -> str:
    """Visible text of an HTML/iXBRL filing: hidden iXBRL header and ``display:none`` dropped, one line per block,
    one line per table row with non-empty cells joined by `` | `` (numbers kept as written)."""
    import lxml.html

    try:
        root = lxml.html.fromstring(raw)
    except Exception:  # noqa: BLE001 - one unreadable file is skipped, not fatal
        return ""
    lines: list[str] = []
    buf: list[str] = []

    def flush() -> None:
        line = _SPACE.sub(" ", "".join(buf)).strip()
        if line:
            lines.append(line)
        buf.clear()

    def cell_text(el) -> str:
        return _SPACE.sub(" ", " ".join(t for t in el.itertext())).strip()

    def walk(el) -> None:
        tag = el.tag.lower() if isinstance(el.tag, str) else ""
        if tag in _DROP or _HIDDEN.search(el.get("style", "") or ""):
            if el.tail:
                buf.append(el.tail)
            return
        if tag == "tr":
            flush()
            cells = [cell_text(c) for c in el if isinstance(c.tag, str) and c.tag.lower() in ("td", "th")]
            merged: list[str] = []
            for c in cells:  # a currency sign or a closing ")"/"%" has a cell of its own in most filings
                if c in (")", "%", ")%") and merged:
                    merged[-1] += c
                elif c and c not in ("$", "€", "£"):
                    merged.append(c)
            if merged:
                lines.append(" | ".join(merged))
        else:
            block = tag in _BLOCK
            if block:
                flush()
            if el.text:
                buf.append(el.text)
            for child in el:
                walk(child)
            if block:
                flush()
        if el.tail:
            buf.append(el.tail)

    body = root.find(".//body")
    walk(body if body is not None else root)
    flush()
    return "\n".join(lines)


def chunks(text: str, size: int = CHUNK_CHARS, sep: str = "\n") -> list[str]:
    """``text`` cut at ``sep`` boundaries into pieces of about ``size`` characters (a longer piece stays whole)."""
    out, cur, n = [], [], 0
    for part in text.split(sep):
        if n + len(part) > size and cur:
            out.append(sep.join(cur).strip())
            cur, n = [], 0
        cur.append(part)
        n += len(part) + len(sep)
    if cur:
        out.append(sep.join(cur).strip())
    return [c for c in out if len(c) >= 200]


def spread(items: list, k: int) -> list:
    """``k`` items spread evenly over ``items`` (all of them when there are at most ``k``)."""
    if len(items) <= k:
        return items
    return [items[round(i * (len(items) - 1) / (k - 1))] for i in range(k)] if k > 1 else items[:1]


# --- sources -------------------------------------------------------------------------------------------------------


def sec_parser_filings(repo: RepoReader) -> Iterator[dict]:
    """alphanome-ai/sec-parser-test-data: 10-K and 10-Q primary documents (2023-2024 iXBRL), cut into excerpts."""
    for name in repo.files():
        if not name.endswith("primary-document.html"):
            continue
        raw = repo.read(name)
        if not raw:
            continue
        form, ticker, accession = name.split("/")[:3]
        cik = re.search(rb'name="dei:EntityCentralIndexKey"[^>]*>\s*(\d+)\s*<', raw)
        reg = re.search(rb'name="dei:EntityRegistrantName"[^>]*>(.*?)</ix:', raw, re.S)
        registrant = re.sub(r"<[^>]+>", "", reg.group(1).decode("utf-8", "replace")) if reg else ""
        filer = reserved_filer(ciks=[cik.group(1).decode() if cik else "", accession.split("-")[0]],
                               names=[registrant], tickers=[ticker])
        if filer:
            EXCLUDED.append({"repo": "alphanome-ai/sec-parser-test-data", "accession": accession, "form": form,
                             "filer": filer})
            continue
        parts = spread(chunks(html_to_text(raw)), MAX_CHUNKS_PER_FILING)
        for i, text in enumerate(parts):
            yield {"id": f"secparser-{accession}-{i}", "text": text, "group": accession,
                   "meta": {"form": form, "ticker": ticker, "path": name, "kind": "SEC filing excerpt"}}


_DOC = re.compile(rb"<DOCUMENT>(.*?)</DOCUMENT>", re.S | re.I)
_TYPE = re.compile(rb"<TYPE>([^\n<]+)", re.I)
_TEXT = re.compile(rb"<TEXT>(.*?)</TEXT>", re.S | re.I)
_SKIP_TYPES = ("GRAPHIC", "ZIP", "PDF", "XML", "EX-101", "JSON", "EXCEL", "XBRL")


def cover_page_filings(repo: RepoReader) -> Iterator[dict]:
    """ryankfrench/sec_cover_page_parser test filings: EDGAR full-submission .txt files (8-Ks from 1998-2022 with
    their exhibits, press releases among them); each ``<DOCUMENT>`` is one document, cut into excerpts."""
    for name in repo.files():
        if not (name.endswith(".txt") and "test_filings/" in name and Path(name).stem in name.split("/")[-2]):
            continue
        raw = repo.read(name) or b""
        accession = Path(name).stem
        header = raw.split(b"<DOCUMENT>", 1)[0].decode("utf-8", "replace")
        filer = reserved_filer(ciks=re.findall(r"CENTRAL INDEX KEY:\s*(\d+)", header) + [accession.split("-")[0]],
                               names=re.findall(r"COMPANY CONFORMED NAME:\s*(.+)", header))
        if filer:
            EXCLUDED.append({"repo": "ryankfrench/sec_cover_page_parser", "accession": accession,
                             "form": (re.findall(r"CONFORMED SUBMISSION TYPE:\s*(\S+)", header) or ["?"])[0],
                             "filer": filer})
            continue
        for d, doc in enumerate(_DOC.findall(raw)):
            m = _TYPE.search(doc)
            dtype = m.group(1).strip().decode("ascii", "replace") if m else "?"
            if dtype.upper().startswith(_SKIP_TYPES):
                continue
            t = _TEXT.search(doc)
            body = t.group(1) if t else doc
            text = html_to_text(body) if re.search(rb"<(html|body|p|div|table)[\s>]", body[:5000], re.I) else \
                body.decode("utf-8", "replace")
            for i, piece in enumerate(spread(chunks(text), MAX_CHUNKS_PER_FILING)):
                yield {"id": f"coverpage-{accession}-{d}-{i}", "text": piece, "group": accession,
                       "meta": {"form": dtype, "path": name, "kind": "SEC filing document"}}


def nlp_to_text(raw: str) -> str:
    """A Rev ``.nlp`` transcript (one token per row: token|speaker|...|punctuation|prepunctuation|...) as
    ``Speaker N: ...`` paragraphs."""
    paras, words, speaker = [], [], None
    rows = csv.reader(io.StringIO(raw), delimiter="|", quoting=csv.QUOTE_NONE)
    header = next(rows, [])
    col = {name: i for i, name in enumerate(header)}  # earnings21 has no prepunctuation column
    tok, spk, punct, pre = col.get("token", 0), col.get("speaker", 1), col.get("punctuation"), col.get("prepunctuation")
    for row in rows:
        if len(row) < len(header):
            continue
        if row[spk] != speaker and words:
            paras.append(f"Speaker {speaker}: " + " ".join(words))
            words = []
        speaker = row[spk]
        words.append((row[pre] if pre is not None else "") + row[tok] + (row[punct] if punct is not None else ""))
    if words:
        paras.append(f"Speaker {speaker}: " + " ".join(words))
    return "\n\n".join(paras)


# Earnings calls of US companies are left out: the reserved la83la/earnings-call-transcripts (issue 20's list) holds
# 1,381 calls of US companies 2018-2022, and the first leak check found Earnings-21 call 4344338 (Danaher, Q1 2021)
# to be the same call as a realworld development transcript (DHR_q1_2021: ~50% of its 13-grams shared). So all of
# Earnings-21 (calls of 2020-2021, mostly US companies) and the 5 calls of Earnings-22 whose metadata says
# "United States" are not used; the other 120 Earnings-22 calls are of companies listed outside the US.
CALL_CORPORA = ("earnings22",)
CALL_COUNTRY_LEFT_OUT = "United States"  # earnings22/metadata.csv, column "Country by Ticker"


def rev_earnings_calls(repo: RepoReader) -> Iterator[dict]:
    """revdotcom/speech-datasets earnings22 (125 calls of global companies, less the US ones, CALL_CORPORA): the
    reference transcripts, cut into excerpts at speaker turns."""
    meta = (repo.read("earnings22/metadata.csv") or b"").decode("utf-8", "replace")
    us_calls = {r["File ID"] for r in csv.DictReader(io.StringIO(meta))
                if r.get("Country by Ticker") == CALL_COUNTRY_LEFT_OUT}
    for corpus in CALL_CORPORA:
        for name in repo.files(f"{corpus}/transcripts/nlp_references"):
            if not name.endswith(".nlp"):
                continue
            if Path(name).stem in us_calls:
                EXCLUDED.append({"repo": "revdotcom/speech-datasets", "accession": f"{corpus}-{Path(name).stem}",
                                 "form": "earnings call", "filer": f"US company ({CALL_COUNTRY_LEFT_OUT})"})
                continue
            raw = repo.read(name)
            if not raw:
                continue
            call = f"{corpus}-{Path(name).stem}"
            for i, text in enumerate(spread(chunks(nlp_to_text(raw.decode("utf-8", "replace")), sep="\n\n"),
                                            MAX_CHUNKS_PER_CALL)):
                yield {"id": f"rev-{call}-{i}", "text": text, "group": call,
                       "meta": {"path": name, "kind": "earnings call transcript excerpt"}}


def reuters_news(repo: RepoReader, seed: int) -> Iterator[dict]:
    """duynht/financial-news-dataset: Reuters business and markets stories 2006-2013, a hash sample."""
    names = [n for n in repo.files("ReutersNews106521") if n.count("/") == 2]
    names = sorted(names, key=lambda n: sample_key(seed, n))[:REUTERS_DOCS]
    for name in sorted(names):
        raw = (repo.read(name) or b"").decode("utf-8", "replace")
        head, _, body = raw.partition("\n\n")
        title = head.split("\n")[0].lstrip("- ").strip()
        body = re.sub(r"[ \t]+", " ", body).strip()
        body = re.sub(r"\n\s*\n+", "\n\n", body)
        if len(body) < 200:
            continue
        yield {"id": f"reutersnews-{Path(name).name}", "text": f"{title}\n\n{body}", "group": Path(name).name,
               "meta": {"path": name, "kind": "financial news"}}


def ag_news(repo: RepoReader) -> tuple[Iterator[dict], Iterator[dict]]:
    """Shane-Neeley/CharCnn_Keras ``data/ag_news_csv`` (a sample of AG News, Zhang et al. 2015): class 3
    (Business) is finance-side news; World, Sports and Sci/Tech are general news."""
    rows = []
    for split in ("train", "test"):
        raw = (repo.read(f"data/ag_news_csv/{split}.csv") or b"").decode("utf-8", "replace")
        rows += [(split, i, r) for i, r in enumerate(csv.reader(io.StringIO(raw))) if len(r) == 3]

    def gen(business: bool) -> Iterator[dict]:
        for split, i, (cls, title, desc) in rows:
            if (cls == "3") != business:
                continue
            text = f"{title}\n\n{desc.replace(chr(92) + 'n', ' ')}".strip()
            yield {"id": f"agnews-{split}-{i}", "text": text, "group": f"agnews-{split}-{i}",
                   "meta": {"path": f"data/ag_news_csv/{split}.csv", "class": cls, "kind": "news snippet"}}

    return gen(True), gen(False)


def isot_news(repo: RepoReader) -> Iterator[dict]:
    """Aks121/Dataset ``True.csv`` / ``Fake.csv``: a small sample of the ISOT fake-news set (Reuters politics and
    world news; partisan web articles): economy-adjacent general news."""
    csv.field_size_limit(10**8)
    for name in ("True.csv", "Fake.csv"):
        raw = (repo.read(name) or b"").decode("utf-8", "replace")
        for i, row in enumerate(csv.DictReader(io.StringIO(raw))):
            text = f"{row.get('title', '')}\n\n{row.get('text', '')}".strip()
            if len(text) >= 200:
                yield {"id": f"isot-{Path(name).stem.lower()}-{i}", "text": text, "group": f"isot-{name}-{i}",
                       "meta": {"path": name, "subject": row.get("subject"), "kind": "general news"}}


def mostly_english_script(text: str) -> bool:
    """At most 5% non-ASCII letters: the Latin-script English pages (the model is English; other languages are
    removed by language ID before routing)."""
    letters = [c for c in text if c.isalpha()]
    return bool(letters) and sum(not c.isascii() for c in letters) <= 0.05 * len(letters)


def page_text(raw: bytes) -> str:
    """Main text of a web page as the clean stage would see it: trafilatura, else the full visible text."""
    import trafilatura

    html = raw.decode("utf-8", "replace")
    text = trafilatura.extract(html, include_tables=True, favor_recall=True) or ""
    return text if len(text) >= 500 else html_to_text(raw)


# Sites of the postlight/parser fixtures whose pages are markets, investing or personal-finance pages (by site,
# not by reading the page): positives. Business-general sites are left out of both sides.
FINANCE_SITES = ("www.bloomberg.com", "www.cnbc.com", "www.fool.com", "money.cnn.com", "www.investmentexecutive.com",
                 "www.thepennyhoarder.com")
MIXED_SITES = ("fortune.com", "www.reuters.com", "qz.com", "www.fastcompany.com", "www.recode.net",
               "www.linkedin.com")


def mercury_pages(repo: RepoReader) -> tuple[list[dict], list[dict]]:
    """postlight/parser ``fixtures/*.html``: ~170 saved news, blog and magazine pages (2016-2019): pages of finance
    sites are positives, English pages of every other site (politics, sport, science, tech, culture, lifestyle)
    negatives."""
    pos, neg = [], []
    for name in repo.files("fixtures"):
        if not name.endswith(".html") or name.count("/") != 1:
            continue
        site = Path(name).name[: -len(".html")].split("--")[0]
        if site in MIXED_SITES:
            continue
        text = page_text(repo.read(name) or b"")
        if len(text) < 500 or not mostly_english_script(text):
            continue
        doc = {"id": f"mercury-{Path(name).stem}", "text": text, "group": f"mercury-{site}",
               "meta": {"path": name, "site": site, "kind": "web page"}}
        (pos if site in FINANCE_SITES else neg).append(doc)
    return pos, neg


def readability_pages(repo: RepoReader) -> Iterator[dict]:
    """mozilla/readability ``test/test-pages/*/expected.html``: the article text of ~130 real web pages (news,
    blogs, docs, encyclopedia; general topics), English only."""
    for name in repo.files("test/test-pages"):
        if not name.endswith("/expected.html"):
            continue
        text = html_to_text(repo.read(name) or b"")
        if len(text) < 500 or not mostly_english_script(text):
            continue
        page = name.split("/")[-2]
        yield {"id": f"readability-{page}", "text": text, "group": f"readability-{page}",
               "meta": {"path": name, "kind": "web page"}}


def demo_ids() -> set[str]:
    """Ids of the documents of the repository's ``data/`` sample (a subset of ../shared/corpora): the demo must route
    text the model never saw, so they are not in the training set (``bench_route.py`` leaves them out too)."""
    ids = set()
    for path in sorted((ROOT / "data").glob("*/*.jsonl.gz")):
        with gzip.open(path, "rt", encoding="utf-8") as f:
            ids |= {str(json.loads(line)["id"]) for line in f if line.strip()}
    return ids


def corpora_docs(corpora: Path, side: str, seed: int) -> Iterator[tuple[str, dict]]:
    """../shared/corpora/<side>/*.jsonl.gz (provenance: its README), at most CORPORA_CAP per file by hash, less the
    documents of ``data/`` (demo_ids): all 37 of ``sec_10q_aapl`` (Apple's 10-Q for the quarter ended 2018-12-29,
    XBRL text blocks) are among them, so no Apple filing is in the training set."""
    demo = demo_ids()
    for path in sorted((corpora / side).glob("*.jsonl.gz")):
        with gzip.open(path, "rt", encoding="utf-8") as f:
            recs = [r for r in map(json.loads, filter(str.strip, f)) if str(r["id"]) not in demo]
        recs = sorted(recs, key=lambda r: sample_key(seed, str(r["id"])))[:CORPORA_CAP]
        for r in sorted(recs, key=lambda r: str(r["id"])):
            yield path.name.split(".")[0], {"id": str(r["id"]), "text": r["text"], "group": str(r["id"]),
                                            "meta": {"path": f"corpora/{side}/{path.name}"}}


_WORD = re.compile(r"\w+")


def ngram_hashes(text: str, n: int = LEAK_NGRAM) -> set[int]:
    r"""Hashes of the word ``n``-grams of ``text`` (lower-cased ``\w+`` tokens, so numbers count and table
    separators do not). In-process hashes: only compared within one run."""
    words = _WORD.findall(text.lower())
    return {hash(tuple(words[i:i + n])) for i in range(len(words) - n + 1)}


def leak_check(out: Path, realworld: Path) -> dict:
    """13-gram overlap of every training document of ``out`` with every ``realworld/*.jsonl.gz`` document (which
    is evaluation text: measured, never trained on). A document's share is the fraction of its distinct 13-grams
    found in ONE realworld document (the worst one), not counting boilerplate 13-grams (found in
    LEAK_BOILERPLATE_GROUPS or more training groups); the raw share, boilerplate included, is reported too. Prints
    the top LEAK_TOP documents; ``ok`` is False when any share exceeds LEAK_MAX_SHARE."""
    files = sorted(realworld.glob("*.jsonl.gz"))
    if not files:
        print(f"leak check: skipped ({realworld} has no *.jsonl.gz)")
        return {"checked": False}
    index: dict[int, list[int]] = {}
    rw_ids: list[str] = []
    for path in files:
        with gzip.open(path, "rt", encoding="utf-8") as f:
            for line in f:
                if not line.strip():
                    continue
                rec = json.loads(line)
                k = len(rw_ids)
                rw_ids.append(f"{path.name.split('.')[0]}:{rec.get('id')}")
                for h in ngram_hashes(str(rec.get("text") or "")):
                    index.setdefault(h, []).append(k)
    docs = []  # (training id, distinct 13-grams, the 13-grams it shares with some realworld document)
    groups_of: dict[int, set[str]] = {}  # shared 13-gram -> training groups that have it
    for path in sorted(out.glob("*/*.jsonl.gz")):
        with gzip.open(path, "rt", encoding="utf-8") as f:
            for line in f:
                rec = json.loads(line)
                grams = ngram_hashes(rec["text"])
                shared = [h for h in grams if h in index]
                for h in shared:
                    groups_of.setdefault(h, set()).add(f"{rec.get('source')}:{rec.get('group') or rec['id']}")
                docs.append((f"{path.parent.name}/{rec['id']}", len(grams), shared))
    boiler = {h for h, g in groups_of.items() if len(g) >= LEAK_BOILERPLATE_GROUPS}

    def worst(shared: list[int], n: int, skip: set[int]) -> tuple[float, int, int]:
        hits: dict[int, int] = {}
        for h in shared:
            if h not in skip:
                for k in index[h]:
                    hits[k] = hits.get(k, 0) + 1
        if not hits:
            return 0.0, -1, 0
        k, c = max(hits.items(), key=lambda kv: (kv[1], -kv[0]))
        return c / n, k, c

    rows = []  # (share, raw share, training id, realworld id, shared 13-grams, document 13-grams)
    for doc, n, shared in docs:
        if shared:
            share, k, c = worst(shared, n, boiler)
            raw, k_raw, _ = worst(shared, n, set())
            rows.append((share, raw, doc, rw_ids[k if k >= 0 else k_raw], c, n))
    rows.sort(key=lambda r: (-r[0], -r[1], r[2]))
    top = rows[0][0] if rows else 0.0
    top_raw = max((r[1] for r in rows), default=0.0)
    print(f"leak check: {len(docs)} training documents vs {len(rw_ids)} realworld documents ({len(files)} files), "
          f"word {LEAK_NGRAM}-grams; {len(rows)} share any; {len(boiler)} boilerplate 13-grams (in >= "
          f"{LEAK_BOILERPLATE_GROUPS} training groups) not counted; max share {top:.3f} (limit {LEAK_MAX_SHARE}); "
          f"max raw share, boilerplate counted, {top_raw:.3f}; over the limit with >= {LEAK_MIN_SHARED} shared "
          f"13-grams: {sum(r[0] > LEAK_MAX_SHARE and r[4] >= LEAK_MIN_SHARED for r in rows)}")
    for share, raw, doc, rw, c, n in rows[:LEAK_TOP]:
        print(f"  {share:.3f} (raw {raw:.3f})  {doc}  ~ {rw}  ({c} of {n} 13-grams)")
    over = [r for r in rows if r[0] > LEAK_MAX_SHARE and r[4] >= LEAK_MIN_SHARED]
    return {"checked": True, "training_docs": len(docs), "realworld_docs": len(rw_ids), "docs_sharing_any": len(rows),
            "boilerplate_ngrams": len(boiler), "max_share": round(top, 4), "max_raw_share": round(top_raw, 4),
            "limit": LEAK_MAX_SHARE, "min_shared": LEAK_MIN_SHARED, "over_limit": len(over),
            "top": [{"share": round(r[0], 4), "raw_share": round(r[1], 4), "doc": r[2], "realworld": r[3]}
                    for r in rows[:LEAK_TOP]],
            "ok": not over}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(ROOT / "work" / "finance_train"))
    ap.add_argument("--corpora", default=str(ROOT.parent / "shared" / "corpora"))
    ap.add_argument("--sec-parser-data", required=True, help="alphanome-ai/sec-parser-test-data")
    ap.add_argument("--cover-pages", required=True, help="ryankfrench/sec_cover_page_parser")
    ap.add_argument("--rev-speech", required=True, help="revdotcom/speech-datasets")
    ap.add_argument("--reuters-news", required=True, help="duynht/financial-news-dataset")
    ap.add_argument("--ag-news", required=True, help="Shane-Neeley/CharCnn_Keras")
    ap.add_argument("--isot-sample", required=True, help="Aks121/Dataset")
    ap.add_argument("--mercury-fixtures", required=True, help="postlight/parser")
    ap.add_argument("--readability-pages", required=True, help="mozilla/readability")
    ap.add_argument("--realworld", default=str(ROOT.parent / "shared" / "realworld"),
                    help="evaluation text for the leak check only (never read into the training set)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    out = Path(args.out)
    repos = {"alphanome-ai/sec-parser-test-data": RepoReader(args.sec_parser_data),
             "ryankfrench/sec_cover_page_parser": RepoReader(args.cover_pages),
             "revdotcom/speech-datasets": RepoReader(args.rev_speech),
             "duynht/financial-news-dataset": RepoReader(args.reuters_news),
             "Shane-Neeley/CharCnn_Keras": RepoReader(args.ag_news),
             "Aks121/Dataset": RepoReader(args.isot_sample),
             "postlight/parser": RepoReader(args.mercury_fixtures),
             "mozilla/readability": RepoReader(args.readability_pages)}
    r = repos
    ag_pos, ag_neg = ag_news(r["Shane-Neeley/CharCnn_Keras"])
    web_pos, web_neg = mercury_pages(r["postlight/parser"])
    sources = [
        ("pos", "sec_10k_10q", "alphanome-ai/sec-parser-test-data",
         sec_parser_filings(r["alphanome-ai/sec-parser-test-data"])),
        ("pos", "sec_8k_submissions", "ryankfrench/sec_cover_page_parser",
         cover_page_filings(r["ryankfrench/sec_cover_page_parser"])),
        ("pos", "earnings_calls_rev", "revdotcom/speech-datasets", rev_earnings_calls(r["revdotcom/speech-datasets"])),
        ("pos", "reuters_business_news", "duynht/financial-news-dataset",
         reuters_news(r["duynht/financial-news-dataset"], args.seed)),
        ("pos", "agnews_business", "Shane-Neeley/CharCnn_Keras", ag_pos),
        ("neg", "agnews_world_sports_scitech", "Shane-Neeley/CharCnn_Keras", ag_neg),
        ("neg", "isot_politics_news", "Aks121/Dataset", isot_news(r["Aks121/Dataset"])),
        ("pos", "finance_site_pages", "postlight/parser", web_pos),
        ("neg", "general_site_pages", "postlight/parser", web_neg),
        ("neg", "readability_pages", "mozilla/readability", readability_pages(r["mozilla/readability"])),
    ]
    counts: dict[str, dict] = {}
    (out / "pos").mkdir(parents=True, exist_ok=True)
    (out / "neg").mkdir(parents=True, exist_ok=True)

    def write(side: str, name: str, repo: str, commit: str, docs) -> None:
        n = chars = 0
        with gzip.GzipFile(out / side / f"{name}.jsonl.gz", "wb", mtime=0) as gz:
            for doc in docs:
                doc = {**doc, "source": name, "meta": {"repo": repo, "commit": commit, **doc["meta"]}}
                gz.write((json.dumps(doc, ensure_ascii=False, sort_keys=True) + "\n").encode("utf-8"))
                n += 1
                chars += len(doc["text"])
        counts[f"{side}/{name}"] = {"docs": n, "chars": chars, "repo": repo, "commit": commit}
        print(f"{side}/{name}: {n} documents, {chars:,} characters", flush=True)

    for side, name, repo, docs in sources:
        write(side, name, repo, repos[repo].commit, docs)
    corpora = Path(args.corpora)
    for side, target in (("finance", "pos"), ("general", "neg")):
        by_file: dict[str, list] = {}
        for fname, doc in corpora_docs(corpora, side, args.seed):
            by_file.setdefault(fname, []).append(doc)
        for fname, docs in by_file.items():
            write(target, f"corpora_{fname}", "../shared/corpora", "see its README", docs)
    excluded = sorted(EXCLUDED, key=lambda e: (e["repo"], e["accession"]))
    print(f"left out as reserved filers (RESERVED_FILERS): {len(excluded)} filings: " +
          ", ".join(f"{e['filer']} {e['form']} {e['accession']}" for e in excluded))
    leak = leak_check(out, Path(args.realworld))
    (out / "manifest.json").write_text(json.dumps({"seed": args.seed, "sources": counts, "excluded": excluded,
                                                   "leak_check": leak}, indent=2, sort_keys=True)
                                       + "\n", encoding="utf-8")
    if leak.get("checked") and not leak["ok"]:
        print(f"error: {leak['over_limit']} training documents share more than {LEAK_MAX_SHARE:.0%} of their "
              f"{LEAK_NGRAM}-grams with a realworld document (above); fix the sources", file=sys.stderr)
        return {}
    return counts


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
