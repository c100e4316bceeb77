"""``sweep ui-url``: where the MLflow UI shows the newest study's runs."""

from __future__ import annotations

from sweep.locations import resolve_tracking_uri
from sweep.provenance.redact import redact_url
from sweep.tracking.mlflow_sink import newest_study


def ui_url(base: str, tracking_uri: str | None) -> str:
    base = redact_url(base.rstrip("/"))  # a tracking server's URL may carry user:password@
    newest = newest_study(resolve_tracking_uri(tracking_uri))
    if newest is None:
        return f"{base}  (no study yet: run `make sweep` first)"
    experiment_id, name = newest
    return f"{base}/#/experiments/{experiment_id}/runs  (study {name})"
