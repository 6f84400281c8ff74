"""The Strategies page: pick a strategy and parameters, run a backtest on the exchange's
candles (or an uploaded CSV) as a Celery job, watch its progress, see equity/drawdown plots
and metrics, compare runs. Views validate input and call the service / selectors; plots are
SVG drawn on the server (quant/report.py)."""
from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from kk99.errors import KK99Error
from quant import selectors
from quant.errors import QuantError, QuantErrorCode
from quant.metrics import Metrics, format_metric
from quant.models import BacktestRun
from quant.report import figure
from quant.services import backtest_run_create
from quant.strategies import STRATEGIES, VOTE_DEFAULTS, Vote
from trading.selectors import market_list

INTERVALS = ["1m", "5m", "15m", "1h", "4h", "1d"]
MAX_UPLOAD = 20 * 1024 * 1024
MAX_COMPARE = 6


def parse_params(text: str) -> dict[str, str]:
    """"fast=10, slow=20" → {"fast": "10", "slow": "20"} (the strategy coerces the types)."""
    out: dict[str, str] = {}
    for part in text.replace(";", ",").split(","):
        if not part.strip():
            continue
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise QuantError(QuantErrorCode.BAD_PARAMETER, f"parameters are key=value pairs, got {part.strip()!r}", param="params")
        out[key.strip()] = value.strip()
    return out


def _float_or_none(value: str, name: str) -> float | None:
    if not value.strip():
        return None
    try:
        return float(value)
    except ValueError:
        raise QuantError(QuantErrorCode.BAD_PARAMETER, f"{name} must be a number", param=name) from None


def _strategy_choices() -> list[dict]:
    rows = [{"name": name, "label": cls.label, "defaults": ", ".join(f"{k}={v}" for k, v in cls.defaults.items())}
            for name, cls in STRATEGIES.items()]
    vote = ", ".join(f"{k}={v}" for k, v in VOTE_DEFAULTS.items())
    return [*rows, {"name": Vote.name, "label": Vote.label, "defaults": vote + ", weights=…, threshold=…, sma_cross.fast=…"}]


def _page_context(request: HttpRequest, *, values: dict | None = None, error: str = "") -> dict:
    runs = list(selectors.runs_for_user(user=request.user)[:50])
    return {
        "strategies": _strategy_choices(), "markets": [m.symbol for m in market_list()], "intervals": INTERVALS,
        "engines": BacktestRun.Engine.choices, "runs": runs, "pending": any(not r.finished for r in runs),
        "values": values or {"strategy": "sma_cross", "params": "fast=10, slow=20", "interval": "1h", "bars": 1000, "fee": "0.001"},
        "error": error,
    }


@login_required
@require_GET
def strategies(request: HttpRequest) -> HttpResponse:
    return render(request, "quant/strategies.html", _page_context(request))


@login_required
@require_GET
def runs(request: HttpRequest) -> HttpResponse:
    """The runs list fragment (polled by HTMX while a run is unfinished)."""
    return render(request, "quant/_runs.html", _page_context(request))


@login_required
@require_POST
def run_create(request: HttpRequest) -> HttpResponse:
    post = request.POST
    values = {k: post.get(k, "") for k in ("strategy", "params", "symbol", "interval", "bars", "engine", "fee", "stop_loss")}
    upload = request.FILES.get("csv")
    try:
        if upload is not None and upload.size > MAX_UPLOAD:
            raise QuantError(QuantErrorCode.BAD_DATA, "the CSV file is too large (20 MB at most)")
        try:
            bars = int(values["bars"] or 1000)
        except ValueError:
            raise QuantError(QuantErrorCode.BAD_PARAMETER, "bars must be a whole number", param="bars") from None
        run = backtest_run_create(
            user=request.user, strategy=values["strategy"], params=parse_params(values["params"]),
            symbol="" if upload is not None else values["symbol"], interval=values["interval"] or "1h", bars=bars,
            engine=values["engine"] or BacktestRun.Engine.VECTORISED, fee=_float_or_none(values["fee"], "fee") or 0.0,
            stop_loss=_float_or_none(values["stop_loss"], "stop_loss"),
            csv_name=upload.name if upload is not None else "", csv_data=upload.read() if upload is not None else None,
        )
    except KK99Error as exc:
        ctx = _page_context(request, values=values, error=exc.message)
        if request.htmx:
            return render(request, "quant/_form.html", ctx, status=exc.status)
        return render(request, "quant/strategies.html", ctx, status=exc.status)
    if request.htmx:
        ctx = _page_context(request, values=values)
        html = render(request, "quant/_form.html", ctx).content.decode()
        html += render(request, "quant/_runs.html", {**ctx, "oob": True}).content.decode()
        return HttpResponse(html)
    return redirect("quant:run", run_id=run.pk)


def _run_or_404(request: HttpRequest, run_id: int) -> BacktestRun:
    run = selectors.run_for_user(user=request.user, run_id=run_id)
    if run is None:
        raise Http404("No such run.")
    return run


def _metric_rows(runs: list[BacktestRun]) -> list[tuple[str, list[str]]]:
    return [(label, [format_metric(r.metrics.get(name), kind) if r.metrics else "—" for r in runs])
            for name, (label, kind) in Metrics.LABELS.items()]


@login_required
@require_GET
def run_detail(request: HttpRequest, run_id: int) -> HttpResponse:
    run = _run_or_404(request, run_id)
    ctx = {"run": run, "rows": _metric_rows([run])}
    if request.htmx:
        return render(request, "quant/_run.html", ctx)
    return render(request, "quant/run.html", ctx)


def _svg(content: bytes) -> HttpResponse:
    response = HttpResponse(content, content_type="image/svg+xml")
    response["Cache-Control"] = "private, max-age=3600"
    return response


@login_required
@require_GET
def run_plot(request: HttpRequest, run_id: int) -> HttpResponse:
    run = _run_or_404(request, run_id)
    if run.status != BacktestRun.Status.DONE or len(run.equity) < 2:
        raise Http404("No plot yet.")
    return _svg(figure(equity=run.equity, title=str(run), fmt="svg"))


def _compare_runs(request: HttpRequest) -> list[BacktestRun]:
    ids = []
    for value in request.GET.getlist("run")[:MAX_COMPARE]:
        if not value.isdigit():
            raise Http404("Bad run id.")
        ids.append(int(value))
    runs = [_run_or_404(request, i) for i in dict.fromkeys(ids)]
    return [r for r in runs if r.status == BacktestRun.Status.DONE]


@login_required
@require_GET
def compare(request: HttpRequest) -> HttpResponse:
    runs = _compare_runs(request)
    query = "&".join(f"run={r.pk}" for r in runs)
    return render(request, "quant/compare.html", {"runs": runs, "rows": _metric_rows(runs), "query": query})


@login_required
@require_GET
def compare_plot(request: HttpRequest) -> HttpResponse:
    runs = _compare_runs(request)
    if not runs:
        raise Http404("Nothing to compare.")
    first, rest = runs[0], runs[1:]
    # Curves are rescaled to start at 1 so runs of different sizes share one axis.
    norm = lambda eq: [v / eq[0] for v in eq]
    series = {f"#{r.pk} {r.strategy}": norm(r.equity) for r in rest}
    return _svg(figure(equity=norm(first.equity), series={f"#{first.pk} {first.strategy}": norm(first.equity), **series}, fmt="svg"))
