"""``sweep ui-url``: where the MLflow UI shows the newest study's runs."""

from __future__ import annotations

from sweep.guards.store_checks import TRACKING_FLAG, check_tracking_uri, origin
from sweep.locations import TRACKING_ENV, resolve_tracking_uri
from sweep.provenance.redact import redact_url
from sweep.tracking.mlflow_sink import newest_study


def ui_url(base: str, tracking_uri: str | None) -> str:
    base = redact_url(base.rstrip("/"))  # a tracking server's URL may carry user:password@
    uri = resolve_tracking_uri(tracking_uri)
    check_tracking_uri(uri, source=origin(tracking_uri, TRACKING_FLAG, TRACKING_ENV))
    newest = newest_study(uri)
    if newest is None:
        return f"{base}  (no study yet: run `make sweep` first)"
    experiment_id, name = newest
    return f"{base}/#/experiments/{experiment_id}/runs  (study {name})"
