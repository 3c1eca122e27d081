"""Batches are a pure function of (seed, step), independent of the world size, and cover each epoch once."""

import numpy as np
import pytest

from mixtures.shards import TokenStream
from train.bytemix import build_byte_mixture
from train.data import StepBatches, eval_windows
from tests.conftest import DATA

CORPORA = DATA  # the repo's embedded sample: portable to any checkout


@pytest.fixture(scope="module")
def stream(tmp_path_factory):
    out = tmp_path_factory.mktemp("mix")
    build_byte_mixture(out, [f"{CORPORA}/finance/reuters_finance.jsonl.gz"],
                       [f"{CORPORA}/general/speeches.jsonl.gz"], max_bytes=60_000)
    return TokenStream(out / "train")


def test_same_seed_and_step_give_the_same_batch(stream):
    a = StepBatches(stream, 32, 8, rank=0, world=1, micro_batch=4, seed=7)
    b = StepBatches(stream, 32, 8, rank=0, world=1, micro_batch=4, seed=7)
    for step in (0, 5, 3):  # any order: no hidden iterator state
        assert all(np.array_equal(x, y) for x, y in zip(a.micro_batches(step), b.micro_batches(step)))
    c = StepBatches(stream, 32, 8, rank=0, world=1, micro_batch=4, seed=8)
    assert not np.array_equal(a.micro_batches(0)[0], c.micro_batches(0)[0])


def test_ranks_split_the_same_global_batch(stream):
    one = np.concatenate(StepBatches(stream, 32, 8, 0, 1, 4, seed=1).micro_batches(3))
    ranks = [np.concatenate(StepBatches(stream, 32, 8, r, 2, 2, seed=1).micro_batches(3)) for r in range(2)]
    assert np.array_equal(one, np.concatenate(ranks))
    assert StepBatches(stream, 32, 8, 1, 2, 2, seed=1).grad_accum == 2


def test_rows_are_stream_windows_with_shifted_targets(stream):
    sb = StepBatches(stream, 32, 4, 0, 1, 4, seed=0)
    rows = sb.micro_batches(0)[0]
    windows = sb.sample_windows(sb.rank_samples(0)[0])
    for row, w in zip(rows, windows):
        assert np.array_equal(row, stream.window(int(w) * 32, 33))
    assert rows.shape == (4, 33) and rows.max() <= 256


def test_one_epoch_visits_every_window_once(stream):
    sb = StepBatches(stream, 256, 4, 0, 1, 4, seed=3)
    n = sb.n_windows
    seen = sb.sample_windows(np.arange(n))
    assert sorted(seen.tolist()) == list(range(n))
    assert not np.array_equal(sb.sample_windows(np.arange(n, 2 * n)), seen)  # a new order next epoch
    assert sb.epochs_done(n // 4) == pytest.approx(n // 4 * 4 / n)


def test_indivisible_batch_is_rejected(stream):
    with pytest.raises(ValueError, match="not a multiple"):
        StepBatches(stream, 32, 6, 0, 2, 4, seed=0)


def test_eval_windows_are_capped(stream):
    assert eval_windows(stream, 32, 320) == 10
    assert eval_windows(stream, 32, 10**12) == (len(stream) - 1) // 32
