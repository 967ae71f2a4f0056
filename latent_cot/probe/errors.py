"""The one exception the thought analyses raise."""


class ProbeError(ValueError):
    """An analysis cannot run on this input (the message says why and what would make it run)."""
