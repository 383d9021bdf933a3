"""Reading a child process's output while it runs, to act at a moment it announces."""

from __future__ import annotations

import subprocess
import threading
from dataclasses import dataclass, field


@dataclass
class ChildOutput:
    """The lines a child printed so far; the reading thread goes on until its output ends."""

    lines: list[str] = field(default_factory=list)
    reader: threading.Thread | None = None

    def text_at_end(self, timeout_s: float = 30) -> str:
        """Return everything the child printed, once its output has ended."""
        if self.reader is not None:
            self.reader.join(timeout_s)
            assert not self.reader.is_alive(), "the child's output did not end"
        return "".join(self.lines)


def read_until(process: subprocess.Popen[str], marker: str, timeout_s: float = 240) -> ChildOutput:
    """Read the child's output in a thread until a line holds ``marker``; return the output.

    Fails the test, showing the last lines, when ``marker`` does not come within
    ``timeout_s``.
    """
    output = ChildOutput()
    found = threading.Event()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            output.lines.append(line)
            if marker in line:
                found.set()

    output.reader = threading.Thread(target=read, daemon=True)
    output.reader.start()
    assert found.wait(timeout_s), "".join(output.lines[-30:])
    return output
