"""Batches are a pure function of (seed, step), independent of the world size, and cover each epoch once;
the vectorized, prefetched loader gives the very batches of the plain per-window loop it replaced."""

import numpy as np
import pytest
import torch

from mixtures.shards import TokenStream, write_shard
from tests.bytemix import build_byte_mixture
from tests.conftest import DATA
from train.data import StepBatches, StepPrefetcher, eval_windows, gather_windows

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


def loop_batches(sb: StepBatches, step: int) -> list[np.ndarray]:
    """The loader as it was (one Python divmod per sample, one ``stream.window`` per row, int64): the reference."""
    def windows(samples):
        out = np.empty(len(samples), dtype=np.int64)
        for k, i in enumerate(samples):
            epoch, pos = divmod(int(i), sb.n_windows)
            out[k] = np.random.default_rng([sb.seed, epoch]).permutation(sb.n_windows)[pos]
        return out

    span = sb.seq_len + 1
    return [np.stack([sb.stream.window(int(w) * sb.seq_len, span) for w in windows(rows)])
            for rows in sb.rank_samples(step)]


@pytest.fixture(scope="module")
def sharded(tmp_path_factory, stream):
    """The same real tokens cut into three shards of odd sizes, so some windows cross a shard boundary."""
    out = tmp_path_factory.mktemp("sharded")
    tokens = stream.window(0, len(stream))
    cuts = [0, 5_001, 12_345, len(tokens)]
    for i, (a, b) in enumerate(zip(cuts, cuts[1:])):
        write_shard(out / f"part-{i:05d}", tokens[a:b], 257, doc_lengths=[b - a])
    return TokenStream(out)


@pytest.mark.parametrize("world,rank", [(1, 0), (2, 1)])
def test_loader_batches_are_identical_to_the_per_window_loop(sharded, world, rank):
    sb = StepBatches(sharded, 64, 16, rank=rank, world=world, micro_batch=4, seed=5)
    crossing = [w for w in range(sb.n_windows) if np.searchsorted(sharded.starts, w * 64, "right") !=
                np.searchsorted(sharded.starts, w * 64 + 64, "right")]
    assert crossing  # the fixture does exercise the slow path
    steps_per_epoch = sb.n_windows // 16
    for step in (0, 1, steps_per_epoch - 1, steps_per_epoch, steps_per_epoch + 1, 3 * steps_per_epoch + 2):
        new, old = sb.micro_batches(step), loop_batches(sb, step)
        assert len(new) == len(old) == sb.grad_accum
        for a, b in zip(new, old):
            assert a.dtype == b.dtype == np.int64 and np.array_equal(a, b)
        assert sb.tokens(step).dtype == np.int32 and np.array_equal(np.stack(old), sb.tokens(step))
    starts = np.array(crossing) * 64
    assert np.array_equal(gather_windows(sharded, starts, 65), np.stack([sharded.window(int(s), 65) for s in starts]))


@pytest.mark.parametrize("enabled", [True, False])
def test_prefetcher_yields_the_step_batches_in_order_and_after_a_resume(stream, enabled):
    sb = StepBatches(stream, 32, 8, 0, 1, 4, seed=2)
    pf = StepPrefetcher(sb, torch.device("cpu"), end=6, enabled=enabled)
    try:
        for step in (2, 3, 4, 5):  # a run resumed at step 2
            got = pf.get(step)
            assert [t.dtype for t in got] == [torch.int64] * sb.grad_accum
            assert all(np.array_equal(t.numpy(), a) for t, a in zip(got, sb.micro_batches(step)))
        assert not pf.pending  # nothing read past the end
    finally:
        pf.close()
