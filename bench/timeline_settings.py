"""Settings of the timeline benchmark's servers and engine (bench/timeline.py): the latency
benchmark's, plus the app that stamps each stage (only when KK99_TIMELINE_FILE is set)."""
from bench.latency_settings import *  # noqa: F403 — settings layer on the latency bench's by design
from bench.latency_settings import INSTALLED_APPS, MIDDLEWARE

INSTALLED_APPS = [*INSTALLED_APPS, "bench.timeline.TimelineConfig"]
MIDDLEWARE = ["bench.timeline.StampMiddleware", *MIDDLEWARE]
