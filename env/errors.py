"""The one exception type for mistakes a user can make in their files.

Everything that reads user input (CSV, dataset spec, experiment YAML, state strings)
raises :class:`InputError`. The CLI turns it into a single line on stderr and exit
code 2, so a bad file never ends in a traceback. The message always says *which file*
and *what* is wrong, because the engineer reading it has several files open.
"""

from __future__ import annotations

from pathlib import Path


class InputError(ValueError):
    """A problem with user-supplied input, reported as one line.

    Args:
        source: the file (or the flag/argument) the problem is in.
        problem: what is wrong, phrased for the person who wrote the file.
        where: optional column, key or row inside the source.
    """

    def __init__(self, source: str | Path, problem: str, where: str | None = None) -> None:
        self.source = str(source)
        self.where = where
        self.problem = " ".join(str(problem).split())  # never more than one line
        location = f"{self.source}: {where}" if where else self.source
        super().__init__(f"{location}: {self.problem}")

    def __reduce__(self) -> tuple[type[InputError], tuple[str, str, str | None]]:
        """Pickled with its own arguments, so that it crosses process boundaries (a
        preparation process, a Ray worker) as the same one-line error."""
        return (type(self), (self.source, self.problem, self.where))
