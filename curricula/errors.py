"""The curricula's user-error type (dependency-free, so the CLI can name it without heavy imports)."""


class CurriculumConfigError(ValueError):
    """A curriculum is misconfigured; the message names the field."""
