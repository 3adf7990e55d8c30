"""The one base class for failures a user can fix (bad params, bad data, unreachable services)."""


class PipelineError(Exception):
    """Reported as one clear line and a non-zero exit code, without a traceback."""
