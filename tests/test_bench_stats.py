"""CPU tests of the harness arithmetic: quantiles, unique bytes, FLOPs, roofline."""
import math

import numpy as np
import pytest

from tkprefix.bench import stats


def test_quantiles_match_numpy():
    rng = np.random.default_rng(0)
    for n in (1, 2, 3, 10, 31):
        xs = rng.exponential(size=n).tolist()
        q = stats.quantiles(xs)
        assert q.n == n
        assert q.median == pytest.approx(np.quantile(xs, 0.5))
        assert q.p20 == pytest.approx(np.quantile(xs, 0.2))
        assert q.p80 == pytest.approx(np.quantile(xs, 0.8))
        assert q.p20 <= q.median <= q.p80


def test_quantiles_reject_empty_and_nan():
    with pytest.raises(ValueError, match="samples"):
        stats.quantiles([])
    with pytest.raises(ValueError, match="NaN"):
        stats.quantiles([1.0, float("nan")])


def test_unique_bytes_example_of_benchmarks_md():
    # config 1, batch 32, 32 heads, prefix 4096, suffix 512: unique KV ~ 335 MB -> ~110 us at 3.0 TB/s
    b = stats.attention_unique_bytes(batch=32, q_heads=32, kv_heads=32, head_dim=128, levels=[(1, 4096)], suffix=512)
    kv = (4096 + 32 * 512) * 32 * 128 * 2 * 2
    qo = 2 * 32 * 32 * 128 * 2
    assert b == kv + qo
    assert 330e6 < kv < 340e6
    t = stats.roofline_us(b, 0, 3.0e12, 798e12)
    assert 105 < t < 115


def test_unique_bytes_counts_each_level_row_once_and_gqa():
    b = stats.attention_unique_bytes(batch=32, q_heads=32, kv_heads=8, head_dim=128,
                                     levels=[(1, 2048), (8, 1024)], suffix=256)
    tok = 8 * 128 * 2 * 2
    assert b == (2048 + 8 * 1024 + 32 * 256) * tok + 2 * 32 * 32 * 128 * 2
    with pytest.raises(ValueError, match=r"levels\[0\]"):
        stats.attention_unique_bytes(batch=30, q_heads=8, kv_heads=8, head_dim=64, levels=[(8, 10)], suffix=0)


def test_flops_and_roofline_take_the_larger_bound():
    f = stats.attention_flops(batch=4, q_heads=2, head_dim=128, keys_per_query=1000)
    assert f == 4 * 4 * 2 * 1000 * 128
    # compute-bound when FLOPs/rate exceeds bytes/bandwidth
    assert stats.roofline_us(1e6, 1e15, 1e12, 1e15) == pytest.approx(1e6)
    assert stats.roofline_us(3e12, 1.0, 3e12, 1e15) == pytest.approx(1e6)
    assert stats.pct_of_roofline(50.0, 100.0) == pytest.approx(50.0)
    with pytest.raises(ValueError, match="median_us"):
        stats.pct_of_roofline(1.0, 0.0)
    with pytest.raises(ValueError, match="ceilings"):
        stats.roofline_us(1, 1, 0, 1)


def test_floor_adds_launch_and_interpolated_flush_write_back():
    mib = 1 << 20
    c = {"copy_bw_bytes_per_s": 1e12, "gemm_flops_per_s": 1e15, "launch_floor_us": 4.0,
         "flush_tax_us_8mib": 1.0, "flush_tax_us_64mib": 8.0}
    assert stats.floor_us(0, 0, c) == pytest.approx(4.0)
    # half way to the first point: half its write-back; between points: linear; past the last: held
    assert stats.floor_us(4 * mib, 0, c) == pytest.approx(4.0 + 4 * mib / 1e6 + 0.5)
    assert stats.floor_us(36 * mib, 0, c) == pytest.approx(4.0 + 36 * mib / 1e6 + 4.5)
    assert stats.floor_us(640 * mib, 0, c) == pytest.approx(4.0 + 640 * mib / 1e6 + 8.0)
    # compute-bound: the FLOPs' time replaces bytes + write-back when larger
    assert stats.floor_us(8 * mib, 1e11, c) == pytest.approx(4.0 + 100.0)
    assert stats.floor_us(8 * mib, 0, {"copy_bw_bytes_per_s": 1e12, "gemm_flops_per_s": 1e15}) is None


def test_dtype_bytes():
    assert stats.dtype_bytes("bfloat16") == 2 and stats.dtype_bytes("float32") == 4
    with pytest.raises(ValueError, match="dtype"):
        stats.dtype_bytes("int8")
    assert math.isclose(stats.attention_unique_bytes(batch=1, q_heads=1, kv_heads=1, head_dim=1, levels=[],
                                                     suffix=1, dtype="float32"), 2 * 4 + 2 * 4)
