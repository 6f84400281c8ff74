import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("trading", "0005_volatility_halts"),
        ("marketdata", "0001_timescale"),
    ]

    operations = [
        migrations.CreateModel(
            name="MarkPrice",
            fields=[
                ("market", models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, primary_key=True, related_name="mark", serialize=False, to="trading.market")),
                ("price", models.DecimalField(decimal_places=18, max_digits=38)),
                ("updated_at", models.DateTimeField(default=django.utils.timezone.now)),
            ],
        ),
    ]
