"""A mixture recipe (YAML) and the Chinchilla arithmetic that sizes it.

A recipe names the tokenized sources, their side (``domain`` or ``general``), the share
of training tokens that must come from the domain side, and the size of the run::

    tokens_dir: work/tokens           # the tokenize stage's output (sources default to DIR/<domain>/<name>)
    seed: 1234
    domain_share: 0.51                # BloombergGPT: 51.27% of training tokens from FinPile
    target:
      params: 1_300_000_000           # or model_config: configs/train/small.yaml, or tokens: N
      tokens_per_param: 20            # Chinchilla
    max_epochs: 4                     # per source, unless the source says otherwise
    val_fraction: 0.01                # or {domain: 0.01, general: 0.005}
    shard_tokens: 100_000_000         # output shard size (tokens)
    sources:
      - {name: filings, domain: domain}
      - {name: news, domain: domain, weight: 2.0, max_epochs: 8}
      - {name: bbc_business, domain: domain, dir: domain/bbc_news}   # dir: relative to tokens_dir
      - {name: wiki, domain: general, path: /data/tokens/general/wikipedia_en}
      - {name: forum, domain: general, optional: true}   # skipped (warning) if curation left nothing
    phases:                           # optional, instead of target: one training stream per phase, in order
      - {name: blend, tokens: 80_000_000, domain_share: 0.51}
      - {name: anneal, tokens: 20_000_000, domain_share: 0.75, weights: {filings: 3, news: 1}}

Weights are relative inside one side. Either every source of a side gives one, or none
does and each source weighs its available tokens (so every source of the side is seen
the same number of epochs). Relative paths are relative to the working directory.

``phases`` (docs/mixing.md, "Phases"): each phase has a ``name`` (letters, digits, ``_``, ``-``), its own
``tokens`` and ``domain_share`` (default: the recipe's) and optional ``weights: {source: w}``. A side
the phase names any source of takes only the named sources, with those weights (0 leaves a source out);
a side it names none of keeps the sources' own weights. ``max_epochs`` bounds a source's epochs over the
whole run, spent phase by phase. A recipe with phases has no ``target``: the phases' tokens are it.
"""

from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from core.config import ConfigError, check_keys, read_yaml

SIDES = ("domain", "general")
DEFAULT_DOMAIN_SHARE = 0.51      # BloombergGPT (Wu et al. 2023), Table 1: 51.27% FinPile tokens
DEFAULT_TOKENS_PER_PARAM = 20.0  # Chinchilla (Hoffmann et al. 2022): ~20 tokens per parameter
DEFAULT_MAX_EPOCHS = 4.0         # Muennighoff et al. 2023: up to ~4 epochs of repeats ~ as good as unique data
DEFAULT_VAL_FRACTION = 0.01      # of each side's tokens, held out before sampling
DEFAULT_SHARD_TOKENS = 100_000_000  # 200 MB per uint16 output shard


class RecipeError(ConfigError):
    """A recipe that cannot be used as written (the message says which key and why), raised when it is read."""


@dataclass
class SourceSpec:
    """One tokenized source: ``path`` is its shard directory (``<tokens_dir>/<dir>``)."""

    name: str
    domain: str
    path: str
    weight: float | None = None      # relative, inside its side; None = proportional to available tokens
    max_epochs: float | None = None  # None = the recipe's max_epochs
    optional: bool = False           # a source the curation may have emptied: skipped (with a warning) if absent


@dataclass
class PhaseSpec:
    """One phase of a phased mixture: its own size, domain share and (optionally) source weights."""

    name: str
    tokens: int
    domain_share: float
    weights: dict[str, float] | None = None  # source name -> weight; None = the recipe's


@dataclass
class Recipe:
    sources: list[SourceSpec]
    domain_share: float = DEFAULT_DOMAIN_SHARE
    tokens: int | None = None        # explicit training-token target ...
    params: int | None = None        # ... or params x tokens_per_param
    model_config: str | None = None  # ... with params = param_counts(ModelConfig.from_yaml(...))["total"]
    tokens_per_param: float = DEFAULT_TOKENS_PER_PARAM
    max_epochs: float = DEFAULT_MAX_EPOCHS
    val_fraction: dict[str, float] = field(default_factory=lambda: dict.fromkeys(SIDES, DEFAULT_VAL_FRACTION))
    seed: int = 1234
    shard_tokens: int = DEFAULT_SHARD_TOKENS
    tokens_dir: str | None = None
    tokenizer: str | None = None     # only for sources not written by the tokenize stage (else it must match)
    phases: list[PhaseSpec] | None = None  # one training stream per phase (None: one stream, DIR/train/)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        if not self.phases:  # (a recipe without phases records exactly what it did before phases existed)
            d.pop("phases")
        return d

    def max_epochs_of(self, source: SourceSpec) -> float:
        return self.max_epochs if source.max_epochs is None else source.max_epochs


TOP_KEYS = {"sources", "domain_share", "target", "max_epochs", "val_fraction", "seed", "shard_tokens",
            "tokens_dir", "tokenizer", "phases"}
PHASE_KEYS = {"name", "tokens", "domain_share", "weights"}
PHASE_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")  # a directory name: DIR/train_phase<i>_<name>/
TARGET_KEYS = {"tokens", "params", "model_config", "tokens_per_param"}
SOURCE_KEYS = {"name", "domain", "dir", "path", "weight", "max_epochs", "optional"}


def _number(value: Any, key: str, minimum: float = 0.0, integer: bool = False, strict: bool = False) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RecipeError(f"{key} must be a number, got {value!r}")
    if value < minimum or (strict and value == minimum):
        raise RecipeError(f"{key} must be {'>' if strict else '>='} {minimum}, got {value}")
    if integer:
        if float(value) != int(value):
            raise RecipeError(f"{key} must be a whole number, got {value}")
        return int(value)
    return float(value)


def _unknown(d: dict[str, Any], known: set[str], where: str) -> None:
    check_keys(d, known, where, RecipeError)


def recipe_from_dict(doc: dict[str, Any]) -> Recipe:
    """Validate a parsed recipe; every mistake is a :class:`RecipeError` naming the key."""
    if not isinstance(doc, dict):
        raise RecipeError("a recipe is a YAML mapping")
    _unknown(doc, TOP_KEYS, "recipe")
    tokens_dir = doc.get("tokens_dir")
    raw_sources = doc.get("sources")
    if not isinstance(raw_sources, list) or not raw_sources:
        raise RecipeError("sources: give a non-empty list of {name, domain[, dir|path, weight, max_epochs]}")
    sources: list[SourceSpec] = []
    for i, s in enumerate(raw_sources):
        if not isinstance(s, dict):
            raise RecipeError(f"sources[{i}] must be a mapping with a name and a domain, got {s!r}")
        _unknown(s, SOURCE_KEYS, f"sources[{i}]")  # first: a misspelled key is named, not reported missing
        missing = [k for k in ("name", "domain") if s.get(k) is None]
        if missing:
            raise RecipeError(f"sources[{i}] needs {' and '.join(missing)}, got {s!r}")
        if s["domain"] not in SIDES:
            raise RecipeError(f"sources[{i}] ({s['name']}): domain must be one of {SIDES}, got {s['domain']!r}")
        if "path" in s and "dir" in s:
            raise RecipeError(f"sources[{i}] ({s['name']}): give dir (relative to tokens_dir) or path, not both")
        path = s.get("path")
        if path is None:
            if tokens_dir is None:
                raise RecipeError(f"sources[{i}] ({s['name']}): no path, and the recipe has no tokens_dir")
            path = os.path.join(tokens_dir, s.get("dir", f"{s['domain']}/{s['name']}"))
        weight = None if s.get("weight") is None else _number(s["weight"], f"sources[{i}].weight")
        max_epochs = (None if s.get("max_epochs") is None
                      else _number(s["max_epochs"], f"sources[{i}].max_epochs"))
        sources.append(SourceSpec(str(s["name"]), s["domain"], str(path), weight, max_epochs,
                                  bool(s.get("optional", False))))
    names = [s.name for s in sources]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise RecipeError(f"source names must be unique, repeated: {dupes} (name each one and give its dir)")
    for side in SIDES:
        given = [s.weight is not None for s in sources if s.domain == side]
        if any(given) and not all(given):
            raise RecipeError(f"{side} sources: give a weight to every source of the side or to none")

    default_share = _number(doc.get("domain_share", DEFAULT_DOMAIN_SHARE), "domain_share")
    phases = None if doc.get("phases") is None else _phases(doc["phases"], sources, default_share)
    target = doc.get("target") or {}
    if not isinstance(target, dict):
        raise RecipeError("target must be a mapping with tokens, params or model_config")
    _unknown(target, TARGET_KEYS, "target")
    chosen = [k for k in ("tokens", "params", "model_config") if target.get(k) is not None]
    if phases is not None:
        if chosen:
            raise RecipeError(f"target.{chosen[0]}: a recipe with phases is sized by its phases' tokens; "
                              "remove target")
        target = {"tokens": sum(p.tokens for p in phases)}
    elif len(chosen) != 1:
        raise RecipeError(f"target: give exactly one of tokens, params, model_config (got {chosen or 'none'})")
    val = doc.get("val_fraction", DEFAULT_VAL_FRACTION)
    val = dict.fromkeys(SIDES, val) if not isinstance(val, dict) else {**dict.fromkeys(SIDES, DEFAULT_VAL_FRACTION),
                                                                      **val}
    _unknown(val, set(SIDES), "val_fraction")
    for side, v in val.items():
        if _number(v, f"val_fraction.{side}") >= 1.0:
            raise RecipeError(f"val_fraction.{side} must be < 1, got {v}")
    recipe = Recipe(
        sources=sources,
        domain_share=default_share,
        tokens=None if target.get("tokens") is None else _number(target["tokens"], "target.tokens", 1, True),
        params=None if target.get("params") is None else _number(target["params"], "target.params", 1, True),
        model_config=None if target.get("model_config") is None else str(target["model_config"]),
        tokens_per_param=_number(target.get("tokens_per_param", DEFAULT_TOKENS_PER_PARAM),
                                 "target.tokens_per_param", 0, strict=True),
        max_epochs=_number(doc.get("max_epochs", DEFAULT_MAX_EPOCHS), "max_epochs"),
        val_fraction={k: float(v) for k, v in val.items()},
        seed=_number(doc.get("seed", 1234), "seed", 0, True),
        shard_tokens=_number(doc.get("shard_tokens", DEFAULT_SHARD_TOKENS), "shard_tokens", 1, True),
        tokens_dir=tokens_dir,
        tokenizer=doc.get("tokenizer"),
        phases=phases,
    )
    if not 0.0 <= recipe.domain_share <= 1.0:
        raise RecipeError(f"domain_share must be in [0, 1], got {recipe.domain_share}")
    shares = [(None, recipe.domain_share)] if phases is None else [(p.name, p.domain_share) for p in phases]
    for phase, domain_share in shares:
        where = "" if phase is None else f"phase {phase}: "
        for side, share in (("domain", domain_share), ("general", 1.0 - domain_share)):
            if share > 0 and not any(s.domain == side for s in sources):
                raise RecipeError(f"{where}the {side} side must supply {share:.0%} of the tokens but no source is "
                                  f"labeled {side}")
    return recipe


def _phases(raw: Any, sources: list[SourceSpec], default_share: float) -> list[PhaseSpec]:
    """Validate ``phases:``; a side a phase gives weights for must keep a source of weight > 0."""
    if not isinstance(raw, list) or not raw:
        raise RecipeError("phases: give a non-empty list of {name, tokens[, domain_share, weights]}")
    side_of = {s.name: s.domain for s in sources}
    phases: list[PhaseSpec] = []
    for i, p in enumerate(raw):
        if not isinstance(p, dict):
            raise RecipeError(f"phases[{i}] must be a mapping with a name and tokens, got {p!r}")
        _unknown(p, PHASE_KEYS, f"phases[{i}]")
        missing = [k for k in ("name", "tokens") if p.get(k) is None]
        if missing:
            raise RecipeError(f"phases[{i}] needs {' and '.join(missing)}, got {p!r}")
        name = str(p["name"])
        if not PHASE_NAME.match(name):
            raise RecipeError(f"phases[{i}].name must be 1-64 letters, digits, _ or - (it names a directory), "
                              f"got {name!r}")
        share = _number(p.get("domain_share", default_share), f"phases[{i}].domain_share")
        if not 0.0 <= share <= 1.0:
            raise RecipeError(f"phases[{i}].domain_share must be in [0, 1], got {share}")
        weights = p.get("weights")
        if weights is not None:
            if not isinstance(weights, dict) or not weights:
                raise RecipeError(f"phases[{i}].weights must be a mapping of source name to weight, got {weights!r}")
            unknown = sorted(str(k) for k in weights if k not in side_of)
            if unknown:
                raise RecipeError(f"phases[{i}].weights: unknown sources {unknown}; the recipe's are "
                                  f"{sorted(side_of)}")
            weights = {str(k): _number(v, f"phases[{i}].weights.{k}") for k, v in weights.items()}
            for side, side_share in (("domain", share), ("general", 1.0 - share)):
                named = [w for k, w in weights.items() if side_of[k] == side]
                if named and side_share > 0 and not any(w > 0 for w in named):
                    raise RecipeError(f"phases[{i}] ({name}): the {side} side supplies {side_share:.0%} but every "
                                      f"{side} source it names has weight 0")
        phases.append(PhaseSpec(name, _number(p["tokens"], f"phases[{i}].tokens", 1, True), share, weights))
    names = [p.name for p in phases]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise RecipeError(f"phase names must be unique, repeated: {dupes}")
    return phases


def load_recipe(path: str | os.PathLike, tokens_dir: str | None = None) -> Recipe:
    """Read and validate a recipe file; ``tokens_dir`` replaces the recipe's own (e.g. another work dir)."""
    doc = read_yaml(path, RecipeError)
    if tokens_dir is not None:
        doc["tokens_dir"] = tokens_dir
    return recipe_from_dict(doc)


def params_from_model_config(path: str | os.PathLike, vocab_size: int | None = None) -> tuple[int, int]:
    """``(total parameters, vocab_size)`` of a trainer model config (its ``model:`` section).

    Chinchilla's N counts every parameter, embeddings included (Hoffmann et al. 2022), so
    this is ``param_counts(cfg)["total"]`` of ``train/model.py``. A config whose
    ``vocab_size`` is 0 ("take it from the mixture") is counted with ``vocab_size``, the
    tokenizer's.
    """
    import dataclasses

    from core.model_config import ModelConfig, param_counts  # arithmetic only: no torch

    cfg = ModelConfig.from_yaml(path)
    if not cfg.vocab_size:
        if vocab_size is None:
            raise RecipeError(f"{path}: vocab_size is 0 (from the mixture) and no tokenizer vocabulary is known")
        cfg = dataclasses.replace(cfg, vocab_size=vocab_size)
    return int(param_counts(cfg)["total"]), int(cfg.vocab_size)


def chinchilla_tokens(params: int, tokens_per_param: float = DEFAULT_TOKENS_PER_PARAM) -> int:
    """Training tokens for ``params`` parameters at ``tokens_per_param`` (20: Chinchilla-optimal)."""
    return int(round(params * tokens_per_param))


def target_tokens(recipe: Recipe, vocab_size: int | None = None) -> dict[str, Any]:
    """``{"params", "tokens_per_param", "target_tokens", "model_vocab_size"}`` of a recipe.

    ``params`` is None for an explicit ``tokens`` target; ``vocab_size`` (the tokenizer's)
    fills a model config's ``vocab_size: 0``.
    """
    if recipe.tokens is not None:
        return {"params": None, "tokens_per_param": None, "target_tokens": recipe.tokens, "model_vocab_size": None}
    vocab = None
    params = recipe.params
    if params is None:
        if not os.path.exists(str(recipe.model_config)):
            raise RecipeError(f"target.model_config {recipe.model_config!r} does not exist")
        params, vocab = params_from_model_config(str(recipe.model_config), vocab_size)
    return {"params": params, "tokens_per_param": recipe.tokens_per_param,
            "target_tokens": chinchilla_tokens(params, recipe.tokens_per_param), "model_vocab_size": vocab}
