"""User-facing errors: one line that names the file, column or parameter. The CLI prints them without a
traceback (``--debug`` shows it); anything else is a bug and keeps its traceback."""


class DistilleryError(Exception):
    """A mistake in the user's input, pipeline or arguments, explained in one line."""


class InputError(DistilleryError):
    """Input data that cannot be read as documents (missing path, corrupt file, wrong column type)."""


class AccountingError(DistilleryError):
    """Rows in != rows out + rows rejected for some stage: rows were lost or duplicated."""
