from django.contrib import admin

from quant.models import BacktestRun


@admin.register(BacktestRun)
class BacktestRunAdmin(admin.ModelAdmin):
    """Read-only view of users' backtest runs (support: "my backtest is stuck")."""

    list_display = ("id", "user", "strategy", "engine", "symbol", "interval", "status", "progress", "created_at", "finished_at")
    list_filter = ("status", "engine", "strategy")
    search_fields = ("user__email", "symbol", "csv_name")
    readonly_fields = [f.name for f in BacktestRun._meta.fields if f.name != "csv_data"]
    exclude = ("csv_data",)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
