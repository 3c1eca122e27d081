"""The filter configuration (YAML) and the per-document decision built from it.

A config names the language keep list, the rule sets with their thresholds and the fastText
classifiers; every field has the literature's default, so ``{}`` is a valid config::

    langid:
      model_path: null                  # bundled lid.176.ftz; or a path to lid.176.bin
      default: {languages: [en], min_score: 0.65}
    gopher_repetition: {enabled: true, dup_line_frac: 0.3, ...}
    gopher_quality: {enabled: true, min_doc_words: 50, ...}
    c4: {enabled: true, modify_lines: true, filter_no_terminal_punct: false, ...}
    fineweb: {enabled: true, line_punct_thr: 0.12, ...}
    classifiers:
      - {name: finance, path: models/finance.ftz, label: pos, threshold: 0.5}
      - {name: quality, path: models/quality.ftz, top_fraction: 0.3}
    decontaminate:                      # remove documents sharing a 13-gram with evaluation text
      ngram: 13
      sets:
        - {name: finqa, path: evals/finqa/*.jsonl, fields: [question, answer]}
    route:                              # harvest domain documents from general sources
      - {name: finance, path: filters/models/finance.ftz, label: pos, threshold: 0.9, to: domain}
    tables: {enabled: false}            # table-aware word rules (filters/tables.py)
    domains:                            # the profile of a document by its `domain` column
      domain: {tables: {enabled: true}}   # (this is the default: FINANCE_PROFILE)

:class:`DocumentFilter` applies it to one document, in this order: language ID, Gopher
repetition, Gopher quality, C4 (which may rewrite the text), FineWeb (on the rewritten text),
then decontamination (on the kept text), then classifiers; a document that passes them all may
be *routed* to another domain: a route's classifier scores it first (on its text as read), and a
document it claims is judged by the profile of the domain it would move to, so finance found in a
general crawl is judged as finance (its tables kept) and moves only if it passes. Normally the
first failing rule decides (and later rules are not computed); with ``annotate=True`` every rule
runs and every failure is recorded.

Profiles: the rule sections (``RULE_SECTIONS``) a document is judged with are chosen by its
``domain`` column (``domains.<domain>``, merged over the base sections, section by section), else the
base config. Unless a config sets ``domains``, domain documents get :data:`FINANCE_PROFILE` (table-aware
rules, ``filters/tables.py``) and general documents the literature's rules unchanged, so general-web
decisions stay those of datatrove.

A config describes one source's rules. Per-source settings are the run config's ``sources[].filter``
(``run/orchestrator.py``), applied by :func:`with_override`: on the base sections and on top of every
domain profile, so a domain source that lowers ``min_doc_words`` stays table-aware. The stage's own
command line takes one ``--config`` per source (``pipelines.filter --sources FILE``).
"""

from __future__ import annotations

import copy
import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from core.config import check_keys, from_dict, read_yaml
from core.documents import DOMAINS
from filters import gopher_quality, gopher_repetition
from filters.c4 import C4Config, apply_c4
from filters.decontaminate import DEFAULT_MIN_WORDS, DEFAULT_NGRAM, ContaminationIndex, EvalSetConfig, Match
from filters.fineweb import FineWebConfig, fineweb_rules
from filters.gopher_quality import GopherQualityConfig
from filters.gopher_repetition import GopherRepetitionConfig
from filters.langid import DEFAULT_SAMPLE_CHARS, DEFAULT_WINDOWS, LanguageIdentifier
from filters.tables import Layout, TableConfig
from filters.textstats import DocStats

DEFAULT_LANG_SCORE = 0.65  # FineWeb / datatrove LanguageFilter default
CONTAMINATED = "contaminated"  # the removal reason of a document sharing an n-gram with evaluation text


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


@dataclass(frozen=True)
class DecontaminateConfig:
    """Evaluation sets to keep out of the training data (``filters/decontaminate.py``)."""

    ngram: int = DEFAULT_NGRAM
    min_words: int = DEFAULT_MIN_WORDS
    sets: tuple[EvalSetConfig, ...] = ()


@dataclass(frozen=True)
class RouteConfig:
    """Domain harvesting: a document of another domain scoring ``>= threshold`` with the fastText
    classifier moves to ``to`` (its ``domain`` column changes, its source stays)."""

    name: str  # the score column is "<name>_score"
    path: str
    threshold: float
    label: str = "pos"
    to: str = "domain"
    sources: tuple[str, ...] | None = None  # score these sources only (None: every source)

    @property
    def column(self) -> str:
        return f"{self.name}_score"

    def applies_to(self, source: str, domain: str) -> bool:
        return domain != self.to and (self.sources is None or source in self.sources)


RULE_SECTIONS = ("gopher_repetition", "gopher_quality", "c4", "fineweb", "tables")  # what a profile may override

# The finance profile: what domain documents (``domain`` column == "domain") are judged with unless
# the config's ``domains:`` says otherwise. The literature's thresholds, read table-aware
# (filters/tables.py: TableConfig's defaults, each with its reason there). Calibrated on the
# development half of ../shared/realworld (benchmarks/bench_filter_finance.py, benchmarks/RESULTS.md).
FINANCE_PROFILE: dict[str, Any] = {
    "tables": {"enabled": True},
    # FineWeb's duplicated-line characters: 5% instead of 1% (as configs/filter/demo.yaml): a filing
    # repeats its page header and footer ("Table of Contents", "See accompanying Notes") on every page;
    # 99% of the dev half's finance documents stay under 4.4%.
    "fineweb": {"char_duplicates_ratio": 0.05},
    # Filings, reports and calls repeat formulaic phrases by regulation and habit ("for the fiscal year
    # ended March 31, 2019", "compared to Q4 2018"): Gopher's n-gram limits (Table A1) + 0.15, keeping
    # their shape: at that offset 98% of the dev half's finance documents pass every n-gram rule (each
    # rule >= 98%), while one sentence pasted 10-40 times covers 0.75-0.83 in duplicated 5-grams (the
    # junk set of bench_filter_finance.py). Duplicate lines and paragraphs keep Gopher's limits.
    "gopher_repetition": {
        "top_ngram_frac": {2: 0.35, 3: 0.33, 4: 0.31},
        "dup_ngram_frac": {5: 0.30, 6: 0.29, 7: 0.28, 8: 0.27, 9: 0.26, 10: 0.25},
    },
}
DEFAULT_DOMAIN_PROFILES: dict[str, dict[str, Any]] = {"domain": FINANCE_PROFILE}
# the one line a config with the old per-source `sources:` gets (``where``: its path in the config)
SOURCES_GONE = ("{where}: per-source settings are not part of a filter config: give each source's settings in the "
                "run config's sources[].filter (docs/runs.md), or run pipelines.filter --sources FILE with one "
                "--config per source (docs/filtering.md)")


@dataclass(frozen=True)
class FilterConfig:
    langid: LangIdConfig = field(default_factory=LangIdConfig)
    gopher_repetition: GopherRepetitionConfig = field(default_factory=GopherRepetitionConfig)
    gopher_quality: GopherQualityConfig = field(default_factory=GopherQualityConfig)
    c4: C4Config = field(default_factory=C4Config)
    fineweb: FineWebConfig = field(default_factory=FineWebConfig)
    classifiers: tuple[ClassifierConfig, ...] = ()
    decontaminate: DecontaminateConfig = field(default_factory=DecontaminateConfig)
    route: tuple[RouteConfig, ...] = ()
    tables: TableConfig = field(default_factory=TableConfig)
    # per domain column value: the profile (RULE_SECTIONS); None: DEFAULT_DOMAIN_PROFILES
    domains: dict[str, FilterConfig] | None = None

    @classmethod
    def from_dict(cls, raw: dict[str, Any] | None) -> FilterConfig:
        raw = dict(raw or {})
        if "sources" in raw:
            raise ValueError(SOURCES_GONE.format(where="filter config sources"))
        check_keys(raw, {f.name for f in dataclasses.fields(cls)}, "filter config section")
        per_domain = raw.pop("domains", None)
        per_domain = DEFAULT_DOMAIN_PROFILES if per_domain is None else per_domain
        lang = dict(raw.get("langid") or {})
        if "sources" in lang:
            raise ValueError(SOURCES_GONE.format(where="filter config langid.sources"))
        lang["default"] = _language_rule(lang.get("default"))
        classifiers = []
        for i, c in enumerate(raw.get("classifiers") or []):
            c = dict(c)
            if (c.get("threshold") is None) == (c.get("top_fraction") is None):
                raise ValueError(f"classifier {c.get('name')!r}: give exactly one of threshold, top_fraction")
            if c.get("sources") is not None:
                c["sources"] = tuple(c["sources"])
            classifiers.append(_build(ClassifierConfig, c, f"filter config classifiers[{i}]"))
        routes = []
        for i, r in enumerate(_route_entries(raw.get("route"))):
            if r.get("sources") is not None:
                r["sources"] = tuple(r["sources"])
            route = _build(RouteConfig, r, f"filter config route[{i}]")
            if route.to not in DOMAINS:
                raise ValueError(f"route {route.name!r}: to must be one of {DOMAINS}, got {route.to!r}")
            routes.append(route)
        names = [c.name for c in classifiers] + [r.name for r in routes]
        if len(set(names)) != len(names):
            raise ValueError(f"classifier and route names must be unique: {names}")
        decon = dict(raw.get("decontaminate") or {})
        decon["sets"] = tuple(_eval_set(e) for e in decon.get("sets") or [])
        if len({e.name for e in decon["sets"]}) != len(decon["sets"]):
            raise ValueError(f"decontaminate: set names must be unique: {[e.name for e in decon['sets']]}")
        rep = dict(raw.get("gopher_repetition") or {})
        for key in ("top_ngram_frac", "dup_ngram_frac"):
            if key in rep:
                rep[key] = {int(n): float(v) for n, v in rep[key].items()}
        base = cls(
            langid=_build(LangIdConfig, lang, "filter config langid"),
            gopher_repetition=_build(GopherRepetitionConfig, rep, "filter config gopher_repetition"),
            gopher_quality=_build(GopherQualityConfig, raw.get("gopher_quality"), "filter config gopher_quality"),
            c4=_build(C4Config, raw.get("c4"), "filter config c4"),
            fineweb=_build(FineWebConfig, raw.get("fineweb"), "filter config fineweb"),
            tables=_build(TableConfig, raw.get("tables"), "filter config tables"),
            classifiers=tuple(classifiers),
            decontaminate=_build(DecontaminateConfig, decon, "filter config decontaminate"),
            route=tuple(routes),
        )

        def merged(*overs: dict[str, Any] | None) -> FilterConfig:
            """The base with each override's rule thresholds on top, in order (section by section)."""
            sections = {key: {k: v for over in (raw, *overs) for k, v in ((over or {}).get(key) or {}).items()}
                        for key in RULE_SECTIONS}
            rules = cls.from_dict({**sections, "domains": {}})
            return dataclasses.replace(base, domains={}, **{key: getattr(rules, key) for key in RULE_SECTIONS})

        if not isinstance(per_domain, dict):
            raise ValueError(f"filter config domains must be a mapping, got {type(per_domain).__name__}")
        for name, over in per_domain.items():
            if over is not None and not isinstance(over, dict):
                raise ValueError(f"filter config domains.{name} must be a mapping, got {type(over).__name__}")
            check_keys(over or {}, RULE_SECTIONS, f"filter config domains.{name}")
            for key, section in (over or {}).items():  # each key at its own path, before any merge
                if not isinstance(section, dict):
                    raise ValueError(f"filter config domains.{name}.{key} must be a mapping, "
                                     f"got {type(section).__name__}")
                check_keys(section, {f.name for f in dataclasses.fields(getattr(base, key))},
                           f"filter config domains.{name}.{key}")
        return dataclasses.replace(base, domains={name: merged(over) for name, over in per_domain.items()})

    @classmethod
    def from_yaml(cls, path: str) -> FilterConfig:
        return cls.from_dict(read_yaml(path))

    def to_dict(self) -> dict[str, Any]:
        """The config as ``from_dict`` reads it back (a domain profile keeps only its rule sections)."""
        out = dataclasses.asdict(self)
        if self.domains is None:
            out.pop("domains")  # not built by from_dict: let from_dict apply the default profiles
        else:
            out["domains"] = {name: {key: out["domains"][name][key] for key in RULE_SECTIONS}
                              for name in self.domains}
        return out

    def profile(self, domain: str) -> FilterConfig:
        """The config a document of ``domain`` (its ``domain`` column) is judged with (module docstring)."""
        domains = self.domains if self.domains is not None else _default_domains()
        return domains.get(domain, self)


def with_override(config: dict[str, Any] | None, override: dict[str, Any] | None) -> dict[str, Any]:
    """One source's filter config (a mapping, as ``from_dict`` reads it): ``override`` (the run config's
    ``sources[].filter``) deep-merged over ``config``, and its rule sections (``RULE_SECTIONS``) also over
    every domain profile (the built-in :data:`DEFAULT_DOMAIN_PROFILES` where ``config`` has no ``domains``),
    so the override wins for the source's documents of any domain, routed ones included, while they keep
    their profile's other settings. Without an override, ``config`` unchanged (a copy)."""
    out = _deep_merge(config or {}, override or {})
    rules = {key: section for key, section in (override or {}).items() if key in RULE_SECTIONS}
    domains = DEFAULT_DOMAIN_PROFILES if out.get("domains") is None else out["domains"]
    if rules and isinstance(domains, dict):  # (anything else: from_dict says what is wrong)
        out["domains"] = {name: _deep_merge(profile or {}, rules) if profile is None or isinstance(profile, dict)
                          else profile for name, profile in domains.items()}
    return out


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``over`` on ``base``: mappings merged key by key at every depth, anything else replaced (copies)."""
    out = copy.deepcopy(base)
    for k, v in over.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else copy.deepcopy(v)
    return out


def _default_domains() -> dict[str, FilterConfig]:
    """The default profiles over the literature defaults (a ``FilterConfig()`` built without ``from_dict``)."""
    global _DEFAULT_DOMAINS
    if _DEFAULT_DOMAINS is None:
        _DEFAULT_DOMAINS = FilterConfig.from_dict({}).domains
    return _DEFAULT_DOMAINS


_DEFAULT_DOMAINS: dict[str, FilterConfig] | None = None


def _language_rule(raw: dict[str, Any] | None) -> LanguageRule:
    raw = dict(raw or {})
    if raw.get("languages") is not None:
        raw["languages"] = tuple(raw["languages"])
    return _build(LanguageRule, raw)


def _route_entries(raw: Any) -> list[dict[str, Any]]:
    """The ``route:`` section as route dicts. ``route: finance`` (or a list item ``finance``, or
    ``{name: finance}`` without a path) means a bundled model (``filters.quality.BUNDLED``) at its shipped
    threshold; a dict may override ``threshold``/``to``/``sources``. What ``--route finance`` adds."""
    if raw is None:
        return []
    entries = [raw] if isinstance(raw, (str, dict)) else list(raw)
    out = []
    for r in entries:
        r = {"name": r} if isinstance(r, str) else dict(r or {})
        if "path" not in r and r.get("name") is not None:
            from filters.quality import BUNDLED  # lazy: fastText loads only when a route is configured

            bundled = BUNDLED.get(str(r["name"]))
            if bundled is None:
                raise ValueError(f"route {r['name']!r}: give a path, or one of the bundled routes {sorted(BUNDLED)}")
            r = {"path": bundled.path, "threshold": bundled.threshold, "label": bundled.label, **r}
        out.append(r)
    return out


def _eval_set(raw: dict[str, Any]) -> EvalSetConfig:
    raw = dict(raw or {})
    if isinstance(raw.get("fields"), (list, tuple)):
        raw["fields"] = tuple(raw["fields"])
    cfg = _build(EvalSetConfig, raw)
    if (cfg.path is None) == (cfg.hf is None):
        raise ValueError(f"decontaminate set {cfg.name!r}: give exactly one of path, hf")
    return cfg


def build_contamination_index(config: DecontaminateConfig) -> ContaminationIndex | None:
    """Read every evaluation set once (the launcher does, then ships the index to the workers)."""
    if not config.sets:
        return None
    from filters.decontaminate import eval_texts

    return ContaminationIndex.build({e.name: eval_texts(e) for e in config.sets}, config.ngram, config.min_words)


def _build(cls, raw: dict[str, Any] | None, where: str | None = None):
    """``cls`` from a config mapping; ``where`` is the mapping's path in the config, named by errors."""
    if raw is not None and not isinstance(raw, dict):
        raise ValueError(f"{where or cls.__name__} must be a mapping, got {type(raw).__name__}")
    return from_dict(cls, dict(raw or {}), where or cls.__name__)


@dataclass
class Verdict:
    """What the filter decided about one document."""

    reason: str | None  # first failing reason; None: kept
    text: str  # the text to keep (C4 may have removed lines)
    lang: str = ""
    lang_score: float = math.nan
    scores: dict[str, float] = field(default_factory=dict)  # classifier column -> score
    failed: list[str] = field(default_factory=list)  # every failing reason (annotate mode)
    contaminated_by: Match | None = None  # the evaluation set and n-gram found in the text
    routed_by: RouteConfig | None = None  # the route that moved the document to route.to


class DocumentFilter:
    """A config with its models loaded: ``judge(text, source) -> Verdict``. Build one per
    worker (models load in ``__init__``); pure Python, no Beam."""

    def __init__(self, config: FilterConfig, load_models: bool = True,
                 contamination: ContaminationIndex | None = None):
        from filters.quality import FastTextScorer

        self.config = config
        self.contamination = contamination  # built by build_contamination_index (the stage: a side input)
        self.lid = None
        if config.langid.enabled and load_models:
            self.lid = LanguageIdentifier(
                config.langid.model_path, config.langid.sample_chars, config.langid.windows
            )
        self.scorers = (
            {c.name: FastTextScorer(c.path, c.label) for c in (*config.classifiers, *config.route)}
            if load_models else {}
        )
        self.profiles: dict[int, tuple] = {}  # id(profile config) -> (config, repetition rules, quality rules)

    def _profile(self, domain: str) -> tuple:
        cfg = self.config.profile(domain)
        found = self.profiles.get(id(cfg))
        if found is None:
            found = self.profiles[id(cfg)] = (cfg, gopher_repetition.rules(cfg.gopher_repetition),
                                              gopher_quality.rules(cfg.gopher_quality, cfg.tables))
        return found

    def judge(self, text: str, source: str = "", annotate: bool = False, domain: str = "") -> Verdict:
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
        # Harvesting: a document of another domain that a route's classifier claims is judged by the profile
        # of the domain it would move to (finance found in a general crawl keeps its tables), and moves if it
        # passes. The first route it scores over decides; every applicable route's score is recorded.
        candidate: RouteConfig | None = None
        for r in cfg.route:
            if r.applies_to(source, domain) and r.name in self.scorers:
                score = self.scorers[r.name].score(text)
                verdict.scores[r.column] = score
                if candidate is None and score >= r.threshold:
                    candidate = r
        profile, rep_rules, quality_rules = self._profile(candidate.to if candidate else domain)
        stats = DocStats(text, profile.tables)
        if self.lid is not None:
            # table-aware: identify the language of the prose and labels (numbers have none)
            view = stats.words_view.text if stats.layout is not None else text
            verdict.lang, verdict.lang_score = self.lid.identify(view if view.strip() else text)
            rule = cfg.langid.default
            if rule.languages is not None and verdict.lang not in rule.languages:
                if fail("lang_not_allowed"):
                    return verdict
            elif verdict.lang_score < rule.min_score and fail("lang_low_score"):
                return verdict
        cfg = profile
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
        layout = stats.layout  # None unless the profile is table-aware
        if cfg.c4.enabled:
            new_text, reason = apply_c4(text, cfg.c4, layout, None if layout is None else cfg.tables.min_data_rows)
            if reason and fail(reason):
                return verdict
        if cfg.fineweb.enabled:
            n_words = stats.n_words if new_text is text else None
            tabular = False
            if layout is not None:
                if new_text is not text:
                    layout = Layout(new_text, cfg.tables.max_heading_words)
                tabular = (layout.data_rows >= cfg.tables.min_data_rows
                           and len(layout.prose.split()) < (cfg.gopher_quality.min_doc_words or 0))
            for reason in fineweb_rules(new_text, cfg.fineweb, n_words, annotate, layout, tabular):
                if fail(reason):
                    return verdict
        verdict.text = new_text
        if self.contamination is not None:
            verdict.contaminated_by = self.contamination.find(new_text)
            if verdict.contaminated_by is not None and fail(CONTAMINATED):
                return verdict
        for c in cfg.classifiers:
            if c.applies_to(source) and c.name in self.scorers:
                score = self.scorers[c.name].score(new_text)
                verdict.scores[c.column] = score
                if c.threshold is not None and score < c.threshold and fail(c.reason):
                    return verdict
        if candidate is not None and not failed:  # only a kept document moves
            verdict.routed_by = candidate
        return verdict
