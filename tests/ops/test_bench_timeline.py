"""The timeline benchmark's analysis (bench/timeline.py): offsets of each stage from its
request's start, over the windows between consecutive requests."""
import math

from bench.timeline import REQUEST, WOKEN, stage_table

MS = 1_000_000  # ns


def _request(t0_ms: float, *stages: tuple[str, float, float]) -> list[tuple[int, str, str]]:
    out = [(int(t0_ms * MS), "s", REQUEST), (int((t0_ms + 5) * MS), "e", REQUEST)]
    for stage, start, end in stages:
        if start is not None:
            out.append((int((t0_ms + start) * MS), "s", stage))
        out.append((int((t0_ms + end) * MS), "e", stage))
    return out


def _table(stamps, **kw) -> dict[str, tuple]:
    return {row[0]: row[1:] for row in stage_table(sorted(stamps), warmup=0, **kw)}


def test_each_stage_is_timed_from_its_own_requests_start():
    stamps = []
    for k in range(5):  # requests every 10 ms; the weight takes 1 ms, from 0.5 ms in
        stamps += _request(10 * k, ("web: weight", 0.5, 1.5 + k * 0.1))
    table = _table(stamps)
    begin, end, took, n = table["web: weight"]
    assert n == 4  # the last request has no following start: its window is left out
    assert math.isclose(begin, 0.5, abs_tol=1e-6)
    assert math.isclose(end, 1.65, abs_tol=1e-6)  # median of 1.5, 1.6, 1.7, 1.8
    assert math.isclose(took, 1.15, abs_tol=1e-6)
    assert math.isclose(table["→ next request starts"][1], 10.0, abs_tol=1e-6)


def test_a_stage_stamped_at_its_end_only_reports_when_it_ended():
    stamps = []
    for k in range(3):
        stamps += _request(10 * k, (f"engine: woken {WOKEN}", None, 4.0))
    begin, end, took, n = _table(stamps)[f"engine: woken {WOKEN}"]
    assert math.isnan(begin) and math.isnan(took)
    assert (end, n) == (4.0, 2)


def test_only_the_first_call_of_a_stage_in_a_window_counts_and_an_end_without_start_is_ignored():
    stamps = _request(0, ("engine: batch", None, 0.2), ("engine: batch", 1.0, 3.0), ("engine: batch", 4.0, 4.5)) + _request(10)
    begin, end, took, _ = _table(stamps)["engine: batch"]
    assert (begin, end, took) == (1.0, 3.0, 2.0)


def test_parity_picks_every_other_request_and_web_only_drops_the_engines_stages():
    stamps = []
    for k in range(6):  # even requests rest (a short batch), odd ones fill (a long one)
        stamps += _request(10 * k, ("web: checks", 1.0, 2.0), ("engine: batch", 3.0, 4.0 if k % 2 == 0 else 8.0))
    assert _table(stamps, parity=0)["engine: batch"][2] == 1.0
    assert _table(stamps, parity=1)["engine: batch"][2] == 5.0
    web = _table(stamps, web_only=True)
    assert "engine: batch" not in web and web["web: checks"][2] == 1.0
