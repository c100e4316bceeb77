"""What a sweep prints while it runs and when it ends: the progress bar and the summary.

Messages go through the ``sweep`` logger (``sweep -v``/``-q`` set its level; a program that embeds
the sweep configures it like any other logger), to standard output, with every URL's password
masked."""

from __future__ import annotations

import logging
import math
import sys

import optuna
from tqdm import tqdm

from sweep.provenance.redact import redact_text
from sweep.report import console
from sweep.report.build import StudyReport
from sweep.report.noise import noise_lines
from sweep.study.trial_session import TrialSession

logger = logging.getLogger("sweep")


class _StdoutHandler(logging.StreamHandler):
    """Writes to ``sys.stdout`` as it is when a message is written, not as it was when the
    handler was made (pytest, notebooks and ``contextlib.redirect_stdout`` replace it)."""

    @property
    def stream(self):  # noqa: ANN202 - logging.StreamHandler's attribute
        return sys.stdout

    @stream.setter
    def stream(self, _value: object) -> None:
        pass


class _RedactingFormatter(logging.Formatter):
    """Every message of the ``sweep`` loggers (the MLflow writer's too) with passwords masked."""

    def format(self, record: logging.LogRecord) -> str:
        return redact_text(super().format(record))


def _handler() -> None:
    if not logger.handlers:  # a program that set up its own keeps it
        handler = _StdoutHandler()
        handler.setFormatter(_RedactingFormatter("%(message)s"))
        logger.addHandler(handler)
        logger.propagate = False
        if logger.level == logging.NOTSET:
            logger.setLevel(logging.INFO)


def say(message: str, level: int = logging.INFO) -> None:
    """One message of the sweep, its URLs' passwords masked."""
    _handler()
    logger.log(level, redact_text(message))


class TrialProgress:
    """A tqdm bar over the study's budget, advanced as each trial ends."""

    def __init__(
        self,
        *,
        total: int,
        done: int,
        study_name: str,
        enabled: bool = True,
        best: float = math.inf,
    ) -> None:
        self.best = best  # lowest CV loss so far; kept here, not read back from the storage
        self.bar = tqdm(
            disable=not enabled,
            total=total,
            initial=done,
            desc=f"study {study_name}",
            unit="trial",
            file=sys.stderr,
        )

    def __call__(self, study: optuna.Study, session: TrialSession) -> None:
        self.bar.update(1)
        loss = session.record.cv_val_loss
        if math.isfinite(loss):
            self.best = min(self.best, loss)
        if math.isfinite(self.best):
            self.bar.set_postfix(best=f"{self.best:.4g}", refresh=False)

    def close(self) -> None:
        self.bar.close()


def print_summary(
    report: StudyReport,
    *,
    ran: int,
    seconds: float,
    training_seconds: float | None = None,
) -> None:
    """The trials table, the per-batch-size table and the timing; ``training_seconds`` (time in
    the engine) is known when this process trained every trial."""
    say("\n" + console.trials_table(report.snapshot.trials))
    say("\nPer batch size:\n" + console.batch_size_table(report.rows, report.choice))
    say("\n".join(noise_lines(report.noise, report.noise_note)))
    if report.pareto:
        say("\n" + console.pareto_table(report.pareto))
    split = (
        ""
        if training_seconds is None
        else f": training {training_seconds:.2f} s, the rest (Optuna, MLflow, report) "
        f"{seconds - training_seconds:.2f} s"
    )
    say(
        f"\n{ran} trial(s) in {seconds:.1f} s{split}.\n"
        f"Browse: make ui   Export: sweep best --study {report.snapshot.name}"
    )
