"""The students' user-facing error types (no heavy imports, so the CLI can name them cheaply)."""


class ConfigError(ValueError):
    """A student, training or evaluation setting is invalid; the message names the field."""


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the message names the step and the last good checkpoint."""
