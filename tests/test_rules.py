"""Each quality rule on real text that must pass and real text that must fail.

Failing documents are real documents of the embedded sample (data/) that the rule removes; for
rules no sample document breaks, the failing text is real text reshaped the way the rule's
target looks (bulleted lines, repeated paragraphs...). The n-gram counting is also checked
against a direct port of datatrove's pure-Python definitions on real documents.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import os
from collections import Counter
from functools import cache

import pytest

from core.config import read_yaml
from filters import gopher_quality as gq
from filters import gopher_repetition as gr
from filters.c4 import C4Config, apply_c4, count_sentences
from filters.fineweb import FineWebConfig, fineweb_rules
from filters.ngrams import duplicated_ngram_chars, top_ngram_chars
from filters.rules import RULE_SECTIONS, DocumentFilter, FilterConfig, with_override
from filters.textstats import DocStats
from filters.words import split_words

DATA = os.path.join(os.path.dirname(os.path.dirname(__file__)), "data")
QCFG, RCFG, C4CFG, FWCFG = gq.GopherQualityConfig(), gr.GopherRepetitionConfig(), C4Config(), FineWebConfig()


@cache
def corpus(name: str) -> dict[str, str]:
    with gzip.open(os.path.join(DATA, f"{name}.jsonl.gz"), "rt", encoding="utf-8") as f:
        return {r["id"]: r["text"] for r in map(json.loads, f)}


def doc(name: str, doc_id: str) -> str:
    return corpus(name)[doc_id]


def prose() -> str:
    """A real news article that every rule keeps."""
    return doc("general/bbc_nonbusiness", "bbc-tech-242")


def sentences(n: int) -> list[str]:
    text = " ".join(corpus("general/bbc_nonbusiness").values()).replace("\n", " ")
    return [s.strip() + "." for s in text.split(". ")[:n]]


def check(rule, text, cfg):
    return rule(DocStats(text), cfg)


# --------------------------------------------------------------------------- Gopher quality


@pytest.mark.parametrize("rule", gq.rules(QCFG), ids=lambda r: r.__name__)
def test_gopher_quality_rules_keep_real_prose(rule):
    assert check(rule, prose(), QCFG) is None


def test_gopher_word_count():
    assert (
        check(gq.word_count, doc("finance/reuters_finance", "reuters21578-186"), QCFG) == "gopher_word_count"
    )
    headline = prose().splitlines()[0]
    assert check(gq.word_count, headline, QCFG) == "gopher_word_count"


def test_gopher_mean_word_length():
    long_words = " ".join(w for w in split_words(prose()) if len(w) > 10)
    assert check(gq.mean_word_length, long_words, QCFG) == "gopher_mean_word_length"
    short_words = " ".join(w for w in split_words(prose()) if len(w) <= 2)
    assert check(gq.mean_word_length, short_words, QCFG) == "gopher_mean_word_length"


def test_gopher_symbol_ratio():
    assert (
        check(gq.symbol_ratio, doc("general/python_docs", "python-docs-library/index"), QCFG)
        == "gopher_symbol_ratio"
    )
    trailing = "\n".join(s[:40] + "..." for s in sentences(20))
    assert check(gq.symbol_ratio, trailing, QCFG) == "gopher_symbol_ratio"


def test_gopher_bullet_and_ellipsis_lines():
    bullets = "\n".join("- " + s for s in sentences(30))
    assert check(gq.bullet_lines, bullets, QCFG) == "gopher_bullet_lines"
    half = "\n".join(("• " + s) if i % 2 else s for i, s in enumerate(sentences(30)))
    assert check(gq.bullet_lines, half, QCFG) is None
    cut = "\n".join(s[:60] + "…" for s in sentences(30))
    assert check(gq.ellipsis_lines, cut, QCFG) == "gopher_ellipsis_lines"


def test_gopher_alpha_words_fails_numeric_tables():
    table = doc("finance/sec_10q_aapl", "sec-aapl-10q-2019q1-OtherNoncurrentLiabilitiesTableTextBlock")
    assert check(gq.alpha_words, table, QCFG) == "gopher_alpha_words"
    assert (
        check(gq.alpha_words, doc("finance/reuters_finance", "reuters21578-376"), QCFG)
        == "gopher_alpha_words"
    )


def test_gopher_stop_words():
    table = doc("finance/sec_10q_aapl", "sec-aapl-10q-2019q1-PropertyPlantAndEquipmentTextBlock")
    assert check(gq.stop_words, table, QCFG) == "gopher_stop_words"
    capitalised = " ".join(w.upper() for w in split_words(prose()))  # "THE" is not "the"
    assert check(gq.stop_words, capitalised, QCFG) == "gopher_stop_words"


# ------------------------------------------------------------------------ Gopher repetition


@pytest.mark.parametrize("rule", gr.rules(RCFG), ids=lambda r: r.__name__)
def test_gopher_repetition_rules_keep_real_prose(rule):
    assert check(rule, prose(), RCFG) is None


def test_gopher_duplicate_paragraphs_and_lines():
    paragraphs = prose().split("\n\n")[:4]
    repeated = "\n\n".join(paragraphs + paragraphs + paragraphs[:2])
    assert check(gr.dup_para_frac, repeated, RCFG) == "gopher_dup_para_frac"
    assert check(gr.dup_para_char_frac, repeated, RCFG) == "gopher_dup_para_char_frac"
    lines = sentences(10)
    assert check(gr.dup_line_frac, "\n".join(lines + lines[:6]), RCFG) == "gopher_dup_line_frac"
    audit = doc("general/python_docs", "python-docs-library/audit_events")
    assert check(gr.dup_line_char_frac, audit, RCFG) == "gopher_dup_line_char_frac"


def test_gopher_top_and_duplicated_ngrams_on_a_repetitive_page():
    page = doc("general/python_docs", "python-docs-library/functional")
    reasons = [r(DocStats(page), RCFG) for r in gr.rules(RCFG)]
    for code in ("gopher_top_2gram", "gopher_top_3gram", "gopher_dup_5gram", "gopher_dup_10gram"):
        assert code in reasons


def _top_reference(words, n):  # datatrove find_top_duplicate over get_n_grams
    grams = [" ".join(words[i : i + n]) for i in range(len(words) - n + 1)]
    gram, count = Counter(grams).most_common(1)[0]
    return len(gram) * count


def _dup_reference(words, n):  # datatrove find_all_duplicate
    unique, repeated, idx = set(), 0, 0
    while idx < len(words) - n + 1:
        gram = "".join(words[idx : idx + n])
        if gram in unique:
            repeated += len(gram)
            idx += n
        else:
            unique.add(gram)
            idx += 1
    return repeated


@pytest.mark.parametrize(
    "name,doc_id",
    [
        ("general/python_docs", "python-docs-library/functional"),
        ("general/python_docs", "python-docs-library/audit_events"),
        ("finance/sec_10q_aapl", "sec-aapl-10q-2019q1-ScheduleOfUnrealizedLossOnInvestmentsTableTextBlock"),
        ("general/bbc_nonbusiness", "bbc-tech-242"),
        ("general/speeches", None),
    ],
)
def test_vectorized_ngram_counts_equal_datatrove_definitions(name, doc_id):
    texts = [doc(name, doc_id)] if doc_id else list(corpus(name).values())[:5]
    for text in texts:
        s = DocStats(text)
        for n in (2, 3, 4):
            hashes, lengths = s.ngrams(n)
            assert top_ngram_chars(hashes, lengths, n) == _top_reference(s.words, n)
        for n in range(5, 11):
            hashes, lengths = s.ngrams(n)
            assert duplicated_ngram_chars(hashes, lengths, n) == _dup_reference(s.words, n)


# ------------------------------------------------------------------------------------ C4


def test_c4_keeps_prose_and_drops_short_lines():
    text, reason = apply_c4(prose(), C4CFG)
    assert reason is None
    assert prose().splitlines()[0] not in text.splitlines() or len(prose().splitlines()[0].split()) >= 3
    assert all(len(line.split()) >= 3 for line in text.splitlines())


def test_c4_document_rules():
    assert apply_c4(doc("general/python_docs", "python-docs-c-api/slice"), C4CFG)[1] == "c4_curly_bracket"
    assert apply_c4(doc("finance/reuters_finance", "reuters21578-186"), C4CFG)[1] == "c4_min_sentences"
    placeholder = prose() + "\nLorem ipsum dolor sit amet, consectetur adipiscing elit.\n"
    assert apply_c4(placeholder, C4CFG)[1] == "c4_lorem_ipsum"
    short_braces = prose() + "\n{}\n"  # a line of < 3 words is dropped before the bracket check
    assert apply_c4(short_braces, C4CFG)[1] is None


def test_c4_line_modifier_removes_boilerplate_lines():
    cookie = "This website uses cookies to improve your experience."
    js = "Please enable JavaScript in your browser to view this page."
    text, reason = apply_c4(f"{cookie}\n{prose()}\n{js}", C4CFG)
    assert reason is None and cookie not in text and js not in text
    strict = C4Config(filter_no_terminal_punct=True)
    kept, _ = apply_c4(prose(), strict)
    assert all(line.endswith((".", "?", "!", '"', "'")) for line in kept.splitlines())
    assert apply_c4(f"{cookie}\n{prose()}", C4Config(modify_lines=False))[0].startswith(cookie)


def test_sentence_count_follows_spacy_sentencizer():
    assert count_sentences("It rained. We stayed in! Did you? Yes.") == 4
    assert count_sentences("See e.g. the docs, i.e. this one.") == 1
    assert count_sentences("Version 3.11 is out.") == 1


# -------------------------------------------------------------------------------- FineWeb


def test_fineweb_keeps_prose():
    assert fineweb_rules(prose(), FWCFG) == []


def test_fineweb_rules_on_real_failures():
    table = doc("finance/sec_10q_aapl", "sec-aapl-10q-2019q1-OtherNoncurrentLiabilitiesTableTextBlock")
    assert fineweb_rules(table, FWCFG) == ["fineweb_punct_lines"]
    assert fineweb_rules(doc("finance/reuters_finance", "reuters21578-5"), FWCFG) == [
        "fineweb_dup_line_chars"
    ]
    assert fineweb_rules(doc("general/bbc_nonbusiness", "bbc-sport-190"), FWCFG)[0] == "fineweb_short_lines"


def test_fineweb_newline_ratio_flags_one_word_lines():
    words = [w for w in split_words(prose()) if w.isalpha()]
    lists = "\n".join(" ".join(words[i : i + 2]) + "." for i in range(0, 200, 2))
    cfg = FineWebConfig(short_line_thr=1.0)  # isolate the newline rule
    assert "fineweb_newline_ratio" in fineweb_rules(lists, cfg, annotate=True)


# ------------------------------------------------------------------- config and the chain


def test_default_yaml_equals_literature_defaults():
    path = os.path.join(os.path.dirname(DATA), "configs", "filter", "default.yaml")
    config = FilterConfig.from_yaml(path)
    assert config == FilterConfig.from_dict({})  # the yaml spells out the default domain profiles
    assert dataclasses.replace(config, domains=None) == FilterConfig()
    assert config.profile("domain") == FilterConfig().profile("domain")


def test_config_rejects_unknown_keys_and_ambiguous_classifiers():
    with pytest.raises(ValueError):
        FilterConfig.from_dict({"gopher_quality": {"min_words": 3}})
    with pytest.raises(ValueError):
        FilterConfig.from_dict(
            {"classifiers": [{"name": "x", "path": "m.ftz", "threshold": 0.5, "top_fraction": 0.1}]}
        )


def test_chain_first_reason_and_annotate_all_reasons():
    f = DocumentFilter(FilterConfig(), load_models=False)
    page = doc("general/python_docs", "python-docs-library/functional")
    first = f.judge(page)
    assert first.reason == "gopher_top_2gram" and first.failed == ["gopher_top_2gram"]
    every = f.judge(page, annotate=True)
    assert every.reason == "gopher_top_2gram" and len(every.failed) > 5
    kept = f.judge(prose())
    assert kept.reason is None and kept.text != prose()  # C4 dropped the short title line
    off = DocumentFilter(
        FilterConfig.from_dict(
            {"gopher_repetition": {"enabled": False}, "gopher_quality": {"enabled": False}}
        ),
        load_models=False,
    )
    assert off.judge(page).reason not in first.failed[:1]


# ------------------------------------------------------------------------------ words

SPACY_TOKENS = {  # spaCy 3.8 blank("en") tokens of these strings (whitespace tokens dropped)
    "(hello).": ["(", "hello", ")", "."],
    "e.g. i.e. etc. U.S. Mr. A. API. Python.": [
        "e.g.",
        "i.e.",
        "etc",
        ".",
        "U.S.",
        "Mr.",
        "A.",
        "API",
        ".",
        "Python",
        ".",
    ],
    "don't it's I'm can't John's O'Neil": [
        "do",
        "n't",
        "it",
        "'s",
        "I",
        "'m",
        "ca",
        "n't",
        "John",
        "'s",
        "O'Neil",
    ],
    "========== ---------- #####": ["="] * 10 + ["----------"] + ["#"] * 5,
    "__init__ foo_bar os.path file.txt foo.Bar": [
        "_",
        "_",
        "init",
        "_",
        "_",
        "foo_bar",
        "os.path",
        "file.txt",
        "foo",
        ".",
        "Bar",
    ],
    "/usr/bin/env and/or key=value well-known 2004-2005 1,000 3.14 $5 10% 5km": [
        "/usr",
        "/",
        "bin",
        "/",
        "env",
        "and/or",
        "key",
        "=",
        "value",
        "well",
        "-",
        "known",
        "2004",
        "-",
        "2005",
        "1,000",
        "3.14",
        "$",
        "5",
        "10",
        "%",
        "5",
        "km",
    ],
    "wait... http://x.com/a?b=1. <kishon@ti.com> (:ref:`x`)": [
        "wait",
        "...",
        "http://x.com/a?b=1",
        ".",
        "<",
        "kishon@ti.com",
        ">",
        "(:",
        "ref:`x",
        "`",
        ")",
    ],
}


@pytest.mark.parametrize("text", sorted(SPACY_TOKENS))
def test_words_follow_spacy_english_tokenizer(text):
    assert split_words(text) == SPACY_TOKENS[text]


def test_word_fast_path_equals_the_general_algorithm_on_real_text():
    import filters.words as w

    chunks = {
        c
        for name in ("general/python_docs", "general/bbc_nonbusiness", "finance/sec_10q_aapl")
        for text in corpus(name).values()
        for c in text.split()
        if not c.isalpha()
    }
    fast = {c: w._simple_chunk(c) for c in chunks}
    assert sum(v is not None for v in fast.values()) > len(chunks) / 3
    saved = w._simple_chunk
    try:
        w._simple_chunk = lambda c: None
        for chunk, tokens in fast.items():
            if tokens is not None:
                assert w.tokenize_chunk(chunk) == tokens, chunk
    finally:
        w._simple_chunk = saved


def test_the_profile_is_chosen_by_domain():
    config = FilterConfig.from_dict({})
    assert config.profile("domain").tables.enabled  # the finance profile by default
    assert not config.profile("general").tables.enabled and config.profile("general") is config
    assert FilterConfig.from_dict(config.to_dict()) == config  # what the Beam workers rebuild it from
    off = FilterConfig.from_dict({"domains": {}})
    assert off.profile("domain") is off
    with pytest.raises(ValueError, match="domains.domain"):
        FilterConfig.from_dict({"domains": {"domain": {"route": []}}})


# a domain source's settings, as configs/runs/demo.yaml gives sec_10q (its run config's sources[].filter)
SEC_10Q = {"gopher_quality": {"min_doc_words": 20}, "c4": {"min_num_sentences": 1}}


def test_a_source_override_changes_what_is_removed_from_its_domain_documents():
    """A real Reuters brief (47 words, figures and tickers): the base rules remove it for its length; the
    domain source's override keeps it, because the override lands on top of the finance profile (table-aware:
    "<LIEB>", ".3322" are not prose words); the same override without the profile removes it for its alpha
    ratio. A general document is judged by the base rules with the override, never by the domain profile."""
    brief = doc("finance/reuters_finance", "reuters21578-128")

    def reason(config: dict, domain: str = "domain") -> str | None:
        return DocumentFilter(FilterConfig.from_dict(config), load_models=False).judge(brief, "reuters",
                                                                                       domain=domain).reason

    assert reason({}) == "gopher_word_count"
    assert reason(with_override({}, SEC_10Q)) is None
    assert reason(with_override({"domains": {}}, SEC_10Q)) == "gopher_alpha_words"
    assert reason(with_override({}, SEC_10Q), "general") == "gopher_alpha_words"
    # a profile setting the same threshold: the source's override still wins (a plain merge of the override
    # into the base sections would leave the profile's 50 in force), and the profile's other settings stay
    profile = {"domains": {"domain": {"tables": {"enabled": True}, "gopher_quality": {"min_doc_words": 50}}}}
    assert reason(profile) == "gopher_word_count"
    merged = with_override(profile, SEC_10Q)
    assert reason(merged) is None
    domain = FilterConfig.from_dict(merged).profile("domain")
    assert domain.tables.enabled and domain.gopher_quality.min_doc_words == 20 and domain.c4.min_num_sentences == 1
    assert domain.gopher_quality.max_doc_words == FilterConfig().gopher_quality.max_doc_words  # merged by key
    assert profile["domains"]["domain"]["gopher_quality"] == {"min_doc_words": 50}  # the inputs are not changed


def test_with_override_changes_nothing_else():
    demo = read_yaml(os.path.join(os.path.dirname(DATA), "configs", "filter", "demo.yaml"))
    assert with_override(demo, None) == demo and with_override(demo, {}) is not demo
    # settings outside the rule sections (language ID, routes, classifiers) go on the base only
    lang = {"langid": {"default": {"languages": ["en"], "min_score": 0.4}}}
    merged = FilterConfig.from_dict(with_override(demo, lang))
    assert merged.langid.default.min_score == 0.4 and merged.langid.default.languages == ("en",)
    assert "domains" not in with_override(demo, lang)
    rules = [{key: getattr(c.profile("domain"), key) for key in RULE_SECTIONS}
             for c in (merged, FilterConfig.from_dict(demo))]
    assert rules[0] == rules[1]
    # the finance profile is written out only under a rule override, and then equals the built-in one plus it
    sec = FilterConfig.from_dict(with_override(demo, SEC_10Q))
    assert sec.gopher_quality.min_doc_words == 20 and sec.c4.min_num_sentences == 1
    assert sec.profile("domain") == dataclasses.replace(FilterConfig.from_dict(demo).profile("domain"),
                                                        gopher_quality=sec.gopher_quality, c4=sec.c4)


@pytest.mark.parametrize("old", [{"sources": {"filings": {"gopher_quality": {"min_doc_words": 20}}}},
                                 {"sources": {}},
                                 {"langid": {"sources": {"python_docs": {"min_score": 0.4}}}}])
def test_per_source_settings_in_a_filter_config_name_the_replacement(old):
    with pytest.raises(ValueError) as exc:
        FilterConfig.from_dict(old)
    message = str(exc.value)
    assert "\n" not in message and "sources[].filter" in message and "--sources FILE" in message
    assert message.startswith("filter config langid.sources" if "langid" in old else "filter config sources:")


# ------------------------------------------------------------------ finance profile (tables)


def test_general_documents_are_judged_without_tables():
    """The general profile computes no layout: datatrove's rules, datatrove's decisions."""
    f = DocumentFilter(FilterConfig(), load_models=False)
    profile = f._profile("general")
    assert profile[0] is f.config and DocStats(prose(), profile[0].tables).layout is None
    assert f.judge(prose(), domain="general").reason == f.judge(prose(), domain="").reason is None


@pytest.mark.parametrize("doc_id", ["OtherNoncurrentLiabilitiesTableTextBlock", "DisaggregationOfRevenueTableTextBlock",
                                    "CompensationAndEmployeeBenefitPlansTextBlock"])
def test_finance_profile_keeps_real_tables_and_numeric_prose(doc_id):
    """Real 10-Q notes (a table alone, a table with footnotes, MD&A-style prose: "the total unrecognized
    compensation cost ... was $14.0 billion") that the general rules remove for their numbers."""
    f = DocumentFilter(FilterConfig(), load_models=False)
    text = doc("finance/sec_10q_aapl", f"sec-aapl-10q-2019q1-{doc_id}")
    assert f.judge(text, domain="general").reason is not None
    verdict = f.judge(text, domain="domain")
    assert verdict.reason is None, verdict
    assert "$51,982" in verdict.text or "iPhone" not in text  # C4 keeps the table rows


def test_finance_profile_keeps_a_reuters_figures_story():
    f = DocumentFilter(FilterConfig(), load_models=False)
    text = doc("finance/reuters_finance", "reuters21578-5")  # USDA reserve prices "as follows": a figures table
    assert "gopher_alpha_words" in f.judge(text, domain="general", annotate=True).failed
    assert f.judge(text, domain="domain").reason is None


def _rows(doc_id: str) -> list[list[str]]:
    from filters.tables import split_cells

    text = doc("finance/sec_10q_aapl", f"sec-aapl-10q-2019q1-{doc_id}")
    return [cells for cells in map(split_cells, text.split("\n")) if cells]


@pytest.mark.parametrize("kind, reason", [("number_soup", "table_unlabelled"), ("xbrl", "markup_residue"),
                                          ("repeated_line", "gopher_dup_line_frac"), ("menu", "fineweb_punct_lines"),
                                          ("style_residue", "markup_residue")])
def test_finance_profile_still_removes_junk(kind, reason):
    """Junk made from real 10-Q text; the rules alone (no language ID) must remove it."""
    from filters.tables import is_label

    rows = _rows("ScheduleOfDebtInstrumentsTextBlock")
    rows += _rows("CashCashEquivalentsandAvailableforSaleSecuritiesTableTextBlock")
    labels = list(dict.fromkeys(c for r in rows for c in r if is_label(c)))
    if kind == "number_soup":
        text = "\n".join(" | ".join(c for c in r if not is_label(c)) for r in rows * 2)
    elif kind == "xbrl":
        text = "\n".join(f"us-gaap:{''.join(w.title() for w in label.split() if w.isalpha())} c-{i} 2018-12-29 "
                         f"iso4217:USD {i * 1000}" for i, label in enumerate(labels))
    elif kind == "repeated_line":
        text = "\n".join([sentences(1)[0]] * 30)
    elif kind == "menu":
        text = "\n".join(" | ".join(labels[i:i + 5]) for i in range(0, len(labels), 5))
    else:
        text = "\n".join(s for sentence in sentences(12) for s in (sentence, "display:none;", "blacklining:none;"))
    f = DocumentFilter(FilterConfig(), load_models=False)
    assert len(split_words(text)) >= 50
    assert f.judge(text, domain="domain").reason is not None
    assert reason in f.judge(text, domain="domain", annotate=True).failed
