"""``bench.signalling.run`` works end to end and returns its figures (tiny sample sizes)."""

from __future__ import annotations

import pytest

from bench import signalling

pytestmark = pytest.mark.integration


async def test_bench_runs_and_reports_against_the_targets(pg_admin_url: str, mqtt_url: str) -> None:
    out = await signalling.run(2, 2, 1, database_url=pg_admin_url, mqtt_url=mqtt_url, write=False)
    assert out["request_to_first_frame"]["n"] == 2
    assert out["withdrawal_to_bye"]["n"] == 3  # two pauses and one consent withdrawal
    assert 0 < out["request_to_first_frame"]["p50_ms"] < 10_000
    assert 0 < out["withdrawal_to_bye"]["p99_ms"] < 5_000
    assert out["first_frame_p95_over_target"] > 0
    assert out["withdrawal_p99_over_target"] > 0
