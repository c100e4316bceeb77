"""The names of what a study stores besides its trials (Optuna user attributes), and which trial
states count toward its budget. Imports nothing heavy: readers of a study (the report) need only
these."""

from __future__ import annotations

from optuna.trial import TrialState

SPACE_FINGERPRINT_ATTR = "space_fingerprint"  # what makes two trials comparable
CONTEXT_ATTR = "context"  # what an exported best config needs beyond a trial's params
SPEC_ATTR = "spec"  # the validated search space, so a worker joins with the study name only
PARENT_RUN_ATTR = "mlflow_parent_run_id"  # the id of the study's run in the tracking store
BUDGET_ATTR = "budget_trials"
REPORT_MARKER_ATTR = "logged_report"  # the fingerprint of the study when its report was logged
# Our choice, for Optuna's own tools (optuna-dashboard shows a study's user attributes); their
# "best trial" is the lowest loss, ours the one-standard-error rule's.
RECOMMENDED_TRIAL_ATTR = "recommended_trial"
BEST_BATCH_SIZE_ATTR = "best_batch_size"
SELECTION_RULE_ATTR = "best_batch_size_rule"
COUNTED_STATES = (TrialState.COMPLETE, TrialState.PRUNED)  # FAILED trials are retried
FAIL_REASON_ATTR = "fail_reason"  # a FAILED trial's: why (the error, or its worker being gone)
WORKER_ATTR = "batchsweep_worker"  # a trial's system attr: the process that runs it
