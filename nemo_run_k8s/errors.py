"""The errors nemo_run_k8s raises, in one small hierarchy.

Every message says what went wrong and what to do about it. Library errors
(docker, kubernetes) are translated with ``raise ... from err`` so the original
stays in the traceback.
"""

from __future__ import annotations


class NemoRunError(Exception):
    """Base class of every error raised by nemo_run_k8s."""


class ConfigError(NemoRunError, ValueError):
    """A configuration cannot be built, converted or serialized as asked."""


class InvalidOptionError(NemoRunError, ValueError):
    """An executor option is unknown, has the wrong type, or cannot be met."""


class BundleError(NemoRunError):
    """A task cannot be bundled, or a bundle cannot be read or trusted."""


class ImageBuildError(NemoRunError):
    """A job image could not be built, checked or pushed."""


class BackendError(NemoRunError):
    """The Docker engine or the Kubernetes API server refused or failed an operation."""


class SubmissionError(BackendError):
    """A backend refused or failed to start a job: nothing of it runs."""


class RecordsError(NemoRunError):
    """The job records (SQLite, under ``$NEMO_RUN_K8S_HOME``) cannot be read or written."""


class JobNotFoundError(NemoRunError, LookupError):
    """No job record has the given id."""


class ResultMissingError(NemoRunError, FileNotFoundError):
    """A job succeeded, but the file (or log) holding its result is gone."""


class JobFailed(NemoRunError):
    """A job ended in a state other than SUCCEEDED.

    Attributes:
      job_id: the id of the job.
      state: the final :class:`JobState`.
      log_tail: the last lines of the job's logs, for the message.
      traceback: the remote traceback, when the job wrote one.
      reason: the backend's account of the failure (e.g. a pod's OOMKilled), if any.
    """

    def __init__(
        self,
        job_id: str,
        state: object,
        log_tail: str = "",
        traceback: str = "",
        reason: str = "",
    ):
        self.job_id = job_id
        self.state = state
        self.log_tail = log_tail
        self.traceback = traceback
        self.reason = reason
        state_name = getattr(state, "name", state)
        message = f"job {job_id} ended {state_name}"
        if reason:
            message += f": {reason}"
        # Both: a script's traceback only says "exited with code N", its reason
        # is in the logs. The traceback once, when the log tail holds it already.
        if log_tail:
            message += f"\n--- last log lines ---\n{log_tail.rstrip()}"
        if traceback and traceback.rstrip() not in log_tail:
            message += f"\n--- remote traceback ---\n{traceback.rstrip()}"
        super().__init__(message)

    def __reduce__(self):  # keep picklable with the custom __init__
        args = (self.job_id, self.state, self.log_tail, self.traceback, self.reason)
        return (type(self), args)
