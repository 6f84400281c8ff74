"""Admin: the SPAN scenario parameter files, read-only (``/admin/margin/…/span-params/``).

The files in ``margin/scenarios/`` are code-reviewed data, never edited at run time; the
active version is ``KK99["MARGIN_SPAN"]["PARAMS_VERSION"]``. This page lists every version, marks
the active one, and shows one version's full table. A ``ModelAdmin`` of the margin app mixes
:class:`SpanParamsAdminMixin` in to get the page and a link on its change list."""
from __future__ import annotations

from django.template.response import TemplateResponse
from django.urls import path

from margin import span, span_inputs


def span_params_context(version: str | None) -> dict:
    active = span_inputs.active_params().version
    versions = span.available_versions()
    chosen = version if version in versions else active
    errors = {}
    for v in versions:
        try:
            span.load_params(v)
        except span.SpanParamsError as exc:
            errors[v] = str(exc)
    params = None if chosen in errors else span.load_params(chosen)
    return {
        "versions": [{"version": v, "active": v == active, "error": errors.get(v)} for v in versions],
        "active": active,
        "chosen": chosen,
        "params": params,
        "assets": sorted(params.assets.items()) if params else [],
        "error": errors.get(chosen),
    }


class SpanParamsAdminMixin:
    """Adds ``span-params/`` (URL name ``admin:margin_span_params``) to a ModelAdmin."""

    def get_urls(self):
        return [path("span-params/", self.admin_site.admin_view(self.span_params_view), name="margin_span_params"), *super().get_urls()]

    def span_params_view(self, request):
        context = {
            **self.admin_site.each_context(request),
            "title": "SPAN scenario parameters",
            "opts": self.model._meta,
            **span_params_context(request.GET.get("version")),
        }
        return TemplateResponse(request, "margin/admin_span_params.html", context)
