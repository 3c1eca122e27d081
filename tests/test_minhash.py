"""MinHash signatures, LSH parameters, exact keys and line dedup: pure functions on real text."""

from __future__ import annotations

import numpy as np
import pytest
from datasketch import MinHash
from datasketch.lsh import _optimal_param

from filters import exact, minhash
from tests.conftest import ref_jaccard


def edit_every(text: str, k: int, word: str = "zebra") -> str:
    """Replace every k-th whitespace token with ``word`` (a controlled near duplicate)."""
    tokens = text.split(" ")
    return " ".join(word if i % k == k - 1 else t for i, t in enumerate(tokens))


def test_signature_is_bit_identical_to_datasketch(general_docs):
    for doc in general_docs[:15]:
        shingles = minhash.text_shingles(doc["text"])
        ours = minhash.signature(shingles, 128)
        ref = MinHash(num_perm=128, seed=1, scheme="affine64", hashfunc=int)
        ref.update_batch(shingles.tolist())
        assert ours.dtype == np.uint64
        assert np.array_equal(ours, ref.hashvalues)
        assert np.array_equal(ours, minhash.signature_datasketch(shingles, 128))


def test_permutations_are_datasketchs():
    for num_perm, seed in [(128, 1), (112, 1), (64, 7)]:
        a, b = MinHash(num_perm=num_perm, seed=seed, scheme="affine64").permutations
        ours = minhash.permutations(num_perm, seed)
        assert np.array_equal(ours[0], a) and np.array_equal(ours[1], b)


def test_signature_over_chunk_boundary_matches_datasketch(general_docs):
    text = " ".join(d["text"] for d in general_docs[:20])  # > 2048 shingles: several blocks
    shingles = minhash.text_shingles(text)
    assert len(shingles) > 2 * 2048
    assert np.array_equal(minhash.signature(shingles, 64), minhash.signature_datasketch(shingles, 64))


def test_normalization_folds_case_whitespace_and_punctuation():
    assert minhash.normalize_text("The  U.S. economy\tGREW, 3.5%!\n\nNaïve café…") == \
        "the u s economy grew 3 5 naïve café"
    assert minhash.words("हिन्दी भाषा") == ["हिन्दी", "भाषा"]  # combining vowel signs stay in words


def test_exact_hash_is_a_function_of_the_normalized_text(finance_docs):
    for doc in finance_docs[:20]:
        text = doc["text"]
        assert exact.exact_hash(text) == exact.exact_hash(minhash.normalize_text(text))
        assert exact.exact_hash(text) == exact.exact_hash(text.upper().replace(".", " . ").replace(" ", "   "))
        assert exact.exact_hash(text) != exact.exact_hash(text + " Reuter")
    assert exact.exact_hash("New York, said") != exact.exact_hash("NewYork said")  # word boundaries matter
    assert len({exact.exact_hash(d["text"]) for d in finance_docs}) == len(
        {minhash.normalize_text(d["text"]) for d in finance_docs})


def test_batch_fingerprints_equal_single_ones(general_docs):
    cfg = minhash.MinHashConfig(verify=True).resolved()
    texts = [d["text"] for d in general_docs[:40]] + ["", "?!", "two words", "x " * 3000]
    for single, batch in zip(map(cfg.fingerprint, texts), cfg.fingerprint_batch(texts)):
        assert single[0] == batch[0] and np.array_equal(single[1], batch[1]) and single[2] == batch[2]


def test_shingle_jaccard_equals_reference_jaccard(general_docs):
    for doc in general_docs[:10]:
        a, b = doc["text"], edit_every(doc["text"], 9)
        ours = minhash.jaccard(minhash.text_shingles(a), minhash.text_shingles(b))
        assert ours == pytest.approx(ref_jaccard(a, b), abs=1e-9)


def test_minhash_estimate_tracks_jaccard(general_docs):
    errors = []
    for doc in general_docs[:30]:
        a, b = doc["text"], edit_every(doc["text"], 12)
        sa, sb = minhash.text_shingles(a), minhash.text_shingles(b)
        est = minhash.estimated_jaccard(minhash.signature(sa, 256), minhash.signature(sb, 256))
        errors.append(est - minhash.jaccard(sa, sb))
    assert abs(np.mean(errors)) < 0.03  # unbiased
    assert np.std(errors) < 0.06  # ~sqrt(J(1-J)/256) = 0.03


def test_lsh_params_match_datasketch_optimum():
    for threshold, num_perm in [(0.7, 64), (0.8, 128), (0.9, 112)]:
        assert minhash.lsh_params(threshold, num_perm) == _optimal_param(threshold, num_perm, 0.5, 0.5)
    b, r = minhash.lsh_params(0.8, 128, minhash.VERIFY_WEIGHTS)
    assert b * r <= 128
    # favouring recall moves the S-curve left: more likely to catch a 0.85 pair
    assert minhash.candidate_probability(0.85, b, r) > minhash.candidate_probability(0.85, 9, 13)


def test_band_keys_identical_texts_collide_and_distinct_texts_do_not(general_docs):
    cfg = minhash.MinHashConfig().resolved()
    exact_a, shingles_a, keys_a = cfg.fingerprint(general_docs[0]["text"])
    _, _, keys_a2 = cfg.fingerprint(general_docs[0]["text"].upper())
    _, _, keys_b = cfg.fingerprint(general_docs[1]["text"])
    assert exact_a == exact.exact_hash(general_docs[0]["text"])
    assert np.array_equal(shingles_a, minhash.text_shingles(general_docs[0]["text"]))
    assert len(keys_a) == cfg.bands and all(len(k) == minhash.BAND_KEY_BYTES for k in keys_a)
    assert keys_a == keys_a2
    assert not set(keys_a) & set(keys_b)
    assert cfg.fingerprint("... !!! ---")[2] == []  # no words: no buckets


def test_config_rejects_impossible_bands():
    with pytest.raises(ValueError):
        minhash.MinHashConfig(num_perm=64, bands=10, rows=10).resolved()


def test_line_dedup_removes_boilerplate_kept_elsewhere(general_docs):
    boiler = "Share this article with your friends on social media today"
    body = general_docs[2]["text"]
    text = f"{boiler}\n{body}\nOK\n{boiler}"
    seen_elsewhere = {exact.line_hash(boiler)}
    new, removed = exact.remove_repeated_lines(text, lambda h: h not in seen_elsewhere)
    assert removed == 2 and boiler not in new and body in new
    assert "OK" in new.split("\n")  # short lines are never removed
    hashes = list(exact.document_lines(text))
    assert len(hashes) == len(set(hashes)) and exact.line_hash(boiler) in hashes
