"""The filter configuration (YAML) and the per-document decision built from it.

A config names the language keep lists, the rule sets with their thresholds and the fastText
classifiers; every field has the literature's default, so ``{}`` is a valid config::

    langid:
      model_path: null                  # bundled lid.176.ftz; or a path to lid.176.bin
      default: {languages: [en], min_score: 0.65}
      sources: {fortunes: {languages: [en, de], min_score: 0.5}}
    gopher_repetition: {enabled: true, dup_line_frac: 0.3, ...}
    gopher_quality: {enabled: true, min_doc_words: 50, ...}
    c4: {enabled: true, modify_lines: true, filter_no_terminal_punct: false, ...}
    fineweb: {enabled: true, line_punct_thr: 0.12, ...}
    classifiers:
      - {name: finance, path: models/finance.ftz, label: pos, threshold: 0.5}
      - {name: quality, path: models/quality.ftz, top_fraction: 0.3}

:class:`DocumentFilter` applies it to one document, in this order: language ID, Gopher
repetition, Gopher quality, C4 (which may rewrite the text), FineWeb (on the rewritten text),
then classifiers. Normally the first failing rule decides (and later rules are not computed);
with ``annotate=True`` every rule runs and every failure is recorded.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from filters import gopher_quality, gopher_repetition
from filters.c4 import C4Config, apply_c4
from filters.fineweb import FineWebConfig, fineweb_rules
from filters.gopher_quality import GopherQualityConfig
from filters.gopher_repetition import GopherRepetitionConfig
from filters.langid import DEFAULT_SAMPLE_CHARS, DEFAULT_WINDOWS, LanguageIdentifier
from filters.textstats import DocStats
from pipelines import check_keys, from_dict, read_yaml  # the conventions module: no Beam

DEFAULT_LANG_SCORE = 0.65  # FineWeb / datatrove LanguageFilter default


@dataclass(frozen=True)
class LanguageRule:
    languages: tuple[str, ...] | None = ("en",)  # None: any language
    min_score: float = DEFAULT_LANG_SCORE


@dataclass(frozen=True)
class LangIdConfig:
    enabled: bool = True
    model_path: str | None = None  # None: filters/models/lid.176.ftz
    sample_chars: int = DEFAULT_SAMPLE_CHARS
    windows: int = DEFAULT_WINDOWS
    default: LanguageRule = field(default_factory=LanguageRule)
    sources: dict[str, LanguageRule] = field(default_factory=dict)

    def rule_for(self, source: str) -> LanguageRule:
        return self.sources.get(source, self.default)


@dataclass(frozen=True)
class ClassifierConfig:
    name: str  # the score column is "<name>_score"; the reason "classifier_<name>"
    path: str
    label: str = "pos"  # the label whose probability is the score
    threshold: float | None = None  # keep documents scoring >= threshold
    top_fraction: float | None = None  # or keep this fraction of the corpus with the highest scores
    sources: tuple[str, ...] | None = None  # apply to these sources only (None: all)

    @property
    def column(self) -> str:
        return f"{self.name}_score"

    @property
    def reason(self) -> str:
        return f"classifier_{self.name}"

    def applies_to(self, source: str) -> bool:
        return self.sources is None or source in self.sources


RULE_SECTIONS = ("gopher_repetition", "gopher_quality", "c4", "fineweb")  # what a source may override


@dataclass(frozen=True)
class FilterConfig:
    langid: LangIdConfig = field(default_factory=LangIdConfig)
    gopher_repetition: GopherRepetitionConfig = field(default_factory=GopherRepetitionConfig)
    gopher_quality: GopherQualityConfig = field(default_factory=GopherQualityConfig)
    c4: C4Config = field(default_factory=C4Config)
    fineweb: FineWebConfig = field(default_factory=FineWebConfig)
    classifiers: tuple[ClassifierConfig, ...] = ()
    # per source: its own rule thresholds (RULE_SECTIONS), e.g. filings need other word-count limits
    sources: dict[str, FilterConfig] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, raw: dict[str, Any] | None) -> FilterConfig:
        raw = dict(raw or {})
        check_keys(raw, {f.name for f in dataclasses.fields(cls)}, "filter config section")
        per_source = raw.pop("sources", None) or {}
        lang = dict(raw.get("langid") or {})
        lang["default"] = _language_rule(lang.get("default"))
        lang["sources"] = {k: _language_rule(v) for k, v in (lang.get("sources") or {}).items()}
        classifiers = []
        for c in raw.get("classifiers") or []:
            c = dict(c)
            if (c.get("threshold") is None) == (c.get("top_fraction") is None):
                raise ValueError(f"classifier {c.get('name')!r}: give exactly one of threshold, top_fraction")
            if c.get("sources") is not None:
                c["sources"] = tuple(c["sources"])
            classifiers.append(_build(ClassifierConfig, c))
        names = [c.name for c in classifiers]
        if len(set(names)) != len(names):
            raise ValueError(f"classifier names must be unique: {names}")
        rep = dict(raw.get("gopher_repetition") or {})
        for key in ("top_ngram_frac", "dup_ngram_frac"):
            if key in rep:
                rep[key] = {int(n): float(v) for n, v in rep[key].items()}
        base = cls(
            langid=_build(LangIdConfig, lang),
            gopher_repetition=_build(GopherRepetitionConfig, rep),
            gopher_quality=_build(GopherQualityConfig, raw.get("gopher_quality")),
            c4=_build(C4Config, raw.get("c4")),
            fineweb=_build(FineWebConfig, raw.get("fineweb")),
            classifiers=tuple(classifiers),
        )
        overrides = {}
        for name, over in per_source.items():  # a source's rule thresholds on top of the base's
            check_keys(over or {}, RULE_SECTIONS, f"filter config sources.{name}")
            merged = cls.from_dict({key: {**(raw.get(key) or {}), **((over or {}).get(key) or {})}
                                    for key in RULE_SECTIONS})
            overrides[name] = dataclasses.replace(base, **{key: getattr(merged, key) for key in RULE_SECTIONS})
        return dataclasses.replace(base, sources=overrides)

    @classmethod
    def from_yaml(cls, path: str) -> FilterConfig:
        return cls.from_dict(read_yaml(path))

    def to_dict(self) -> dict[str, Any]:
        """The config as ``from_dict`` reads it back (a source keeps only its rule sections)."""
        out = dataclasses.asdict(self)
        out["sources"] = {name: {key: out["sources"][name][key] for key in RULE_SECTIONS} for name in self.sources}
        return out


def _language_rule(raw: dict[str, Any] | None) -> LanguageRule:
    raw = dict(raw or {})
    if raw.get("languages") is not None:
        raw["languages"] = tuple(raw["languages"])
    return _build(LanguageRule, raw)


def _build(cls, raw: dict[str, Any] | None):
    return from_dict(cls, dict(raw or {}), cls.__name__)


@dataclass
class Verdict:
    """What the filter decided about one document."""

    reason: str | None  # first failing reason; None: kept
    text: str  # the text to keep (C4 may have removed lines)
    lang: str = ""
    lang_score: float = math.nan
    scores: dict[str, float] = field(default_factory=dict)  # classifier column -> score
    failed: list[str] = field(default_factory=list)  # every failing reason (annotate mode)


class DocumentFilter:
    """A config with its models loaded: ``judge(text, source) -> Verdict``. Build one per
    worker (models load in ``__init__``); pure Python, no Beam."""

    def __init__(self, config: FilterConfig, load_models: bool = True):
        from filters.quality import FastTextScorer

        self.config = config
        self.lid = None
        if config.langid.enabled and load_models:
            self.lid = LanguageIdentifier(
                config.langid.model_path, config.langid.sample_chars, config.langid.windows
            )
        self.scorers = (
            {c.name: FastTextScorer(c.path, c.label) for c in config.classifiers} if load_models else {}
        )
        self.rep_rules = gopher_repetition.rules(config.gopher_repetition)
        self.quality_rules = gopher_quality.rules(config.gopher_quality)
        self.by_source = {name: (c, gopher_repetition.rules(c.gopher_repetition),
                                 gopher_quality.rules(c.gopher_quality)) for name, c in config.sources.items()}

    def judge(self, text: str, source: str = "", annotate: bool = False) -> Verdict:
        cfg = self.config
        verdict = Verdict(None, text)
        failed = verdict.failed

        def fail(reason: str) -> bool:
            failed.append(reason)
            if verdict.reason is None:
                verdict.reason = reason
            return not annotate  # stop here?

        if not text.strip() and fail("empty_text"):
            return verdict
        if self.lid is not None:
            verdict.lang, verdict.lang_score = self.lid.identify(text)
            rule = cfg.langid.rule_for(source)
            if rule.languages is not None and verdict.lang not in rule.languages:
                if fail("lang_not_allowed"):
                    return verdict
            elif verdict.lang_score < rule.min_score and fail("lang_low_score"):
                return verdict
        stats = DocStats(text)
        cfg, rep_rules, quality_rules = self.by_source.get(source, (cfg, self.rep_rules, self.quality_rules))
        for enabled, rules, rule_cfg in (
            (cfg.gopher_repetition.enabled, rep_rules, cfg.gopher_repetition),
            (cfg.gopher_quality.enabled, quality_rules, cfg.gopher_quality),
        ):
            if enabled:
                for rule in rules:
                    reason = rule(stats, rule_cfg)
                    if reason and fail(reason):
                        return verdict
        new_text = text
        if cfg.c4.enabled:
            new_text, reason = apply_c4(text, cfg.c4)
            if reason and fail(reason):
                return verdict
        if cfg.fineweb.enabled:
            n_words = stats.n_words if new_text is text else None
            for reason in fineweb_rules(new_text, cfg.fineweb, n_words, annotate):
                if fail(reason):
                    return verdict
        verdict.text = new_text
        for c in cfg.classifiers:
            if c.applies_to(source) and c.name in self.scorers:
                score = self.scorers[c.name].score(new_text)
                verdict.scores[c.column] = score
                if c.threshold is not None and score < c.threshold and fail(c.reason):
                    return verdict
        return verdict
