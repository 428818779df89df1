"""User-facing failures: one message that names what is wrong and how to fix it."""


class DomainftError(Exception):
    """An error the user can fix (bad recipe, missing file, bad data...).

    The CLI prints the message alone (no traceback) and exits with status 2.
    """

    exit_code = 2


class RecipeError(DomainftError):
    """The recipe failed validation; `problems` lists each `field.path: message`."""

    def __init__(self, problems: list[str], source: str | None = None):
        self.problems = problems
        head = f"recipe {source} is invalid:" if source else "recipe is invalid:"
        super().__init__("\n  ".join([head, *problems]))


class DataError(DomainftError):
    """Input data is unreadable or inconsistent; the message names file and line."""
