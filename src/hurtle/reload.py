"""``--reload``: watch the source files and tell the supervisor when they change.

A `Reloader` runs in a thread of the parent process and calls its callback
with the changed paths; the supervisor then restarts the workers the way
SIGHUP does (the new ones up before the old ones stop, the sockets kept), so a
reload never refuses a connection, and a reload onto code that does not
import leaves the old workers serving.

Two watchers, one filter:

- `WatchFilesReloader` with ``watchfiles`` (inotify, FSEvents...) when it is
  installed (``pip install 'hurtle[standard]'``);
- `StatReloader` otherwise: a walk of the watched directories comparing
  modification times, every quarter of a second.

Which files count (Uvicorn's rules): a file whose name matches an include
glob (``*.py`` plus every ``--reload-include``) and no exclude glob (``.*``,
``*.py[cod]``, ``~*``, ``__pycache__`` plus every ``--reload-exclude``), in
no directory whose name matches an exclude glob. A glob with a ``/`` is
matched against the path relative to the watched directory instead of the
name. ``--reload-delay`` seconds of quiet are awaited after a change so that
an editor saving ten files restarts the workers once.
"""

from __future__ import annotations

import fnmatch
import logging
import os
import threading
from collections.abc import Callable, Iterable, Sequence

from hurtle.config import Config

__all__ = ["FileFilter", "Reloader", "StatReloader", "WatchFilesReloader", "make_reloader"]

logger = logging.getLogger("hurtle.error")

DEFAULT_INCLUDES = ("*.py",)
DEFAULT_EXCLUDES = (".*", "*.py[cod]", "~*", "__pycache__")
# The stat watcher's scan interval: prompt enough for a developer, and a
# walk of a source tree four times a second costs little.
POLL_SECONDS = 0.25

OnChange = Callable[[Sequence[str]], None]


class FileFilter:
    """Decides which paths trigger a reload (see the module docstring)."""

    def __init__(
        self, dirs: Sequence[str], includes: Iterable[str] = (), excludes: Iterable[str] = ()
    ) -> None:
        self.dirs = [os.path.abspath(d) for d in dirs]
        # A file asked for explicitly wins over the default exclusions
        # (``--reload-include .env`` must work), not over explicit ones.
        self.user_includes = list(includes)
        self.user_excludes = list(excludes)
        self.includes = [*DEFAULT_INCLUDES, *self.user_includes]
        self.excludes = [*DEFAULT_EXCLUDES, *self.user_excludes]

    def _matches(self, patterns: Sequence[str], name: str, relative: str) -> bool:
        for pattern in patterns:
            target = relative if "/" in pattern else name
            if fnmatch.fnmatchcase(target, pattern):
                return True
        return False

    def _relative(self, path: str) -> str:
        for base in self.dirs:
            if path == base or path.startswith(base + os.sep):
                return os.path.relpath(path, base).replace(os.sep, "/")
        return os.path.basename(path)

    def skip_dir(self, path: str) -> bool:
        """Whether a directory (and everything in it) is left out."""
        name = os.path.basename(path)
        return self._matches(self.excludes, name, self._relative(path))

    def __call__(self, path: str) -> bool:
        """Whether a change to the file `path` triggers a reload."""
        relative = self._relative(path)
        parts = relative.split("/")
        for index, part in enumerate(parts[:-1]):
            if self._matches(self.excludes, part, "/".join(parts[: index + 1])):
                return False
        name = parts[-1]
        if self._matches(self.user_includes, name, relative):
            return not self._matches(self.user_excludes, name, relative)
        if self._matches(self.excludes, name, relative):
            return False
        return self._matches(self.includes, name, relative)


class Reloader:
    """Watches in a daemon thread; `start` with a callback, `stop` when done."""

    def __init__(self, config: Config) -> None:
        dirs = list(config.reload_dirs) or [os.getcwd()]
        missing = [d for d in dirs if not os.path.isdir(d)]
        for directory in missing:
            logger.warning("Not watching %r for --reload: it is not a directory.", directory)
        self.dirs = [os.path.abspath(d) for d in dirs if d not in missing]
        self.filter = FileFilter(self.dirs, config.reload_includes, config.reload_excludes)
        self.delay = config.reload_delay
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, on_change: OnChange) -> None:
        logger.info(
            "Will watch for changes in these directories: %s (%s)",
            ", ".join(repr(d) for d in self.dirs),
            type(self).__name__,
        )
        self._thread = threading.Thread(
            target=self._run, args=(on_change,), name="hurtle-reloader", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def _run(self, on_change: OnChange) -> None:
        try:
            self.watch(on_change)
        except Exception:
            logger.exception("The --reload watcher failed; reloading stops.")

    def watch(self, on_change: OnChange) -> None:  # pragma: no cover - abstract
        raise NotImplementedError


class StatReloader(Reloader):
    """Compares modification times of the watched files every `POLL_SECONDS`."""

    def snapshot(self) -> dict[str, int]:
        files: dict[str, int] = {}
        for base in self.dirs:
            for root, dirnames, filenames in os.walk(base):
                dirnames[:] = [
                    d for d in dirnames if not self.filter.skip_dir(os.path.join(root, d))
                ]
                for name in filenames:
                    path = os.path.join(root, name)
                    if not self.filter(path):
                        continue
                    try:
                        files[path] = os.stat(path).st_mtime_ns
                    except OSError:
                        continue  # removed while walking
        return files

    def start(self, on_change: OnChange) -> None:
        # The first look, before returning: a change made right after
        # `start` must count as a change.
        self._baseline = self.snapshot()
        super().start(on_change)

    def watch(self, on_change: OnChange) -> None:
        before = self._baseline
        while not self._stop.wait(POLL_SECONDS):
            now = self.snapshot()
            changed = _diff(before, now)
            if not changed:
                continue
            # Wait for quiet: an editor or a checkout writes many files.
            while not self._stop.wait(max(self.delay, 0.01)):
                later = self.snapshot()
                more = _diff(now, later)
                now = later
                if not more:
                    break
                changed |= more
            before = now
            if not self._stop.is_set():
                on_change(sorted(changed))


def _diff(before: dict[str, int], after: dict[str, int]) -> set[str]:
    changed = {path for path, mtime in after.items() if before.get(path) != mtime}
    changed.update(path for path in before if path not in after)
    return changed


class WatchFilesReloader(Reloader):
    """Native file events through ``watchfiles``."""

    def watch(self, on_change: OnChange) -> None:
        from watchfiles import watch  # noqa: PLC0415 - optional dependency

        def keep(change: object, path: str) -> bool:
            return self.filter(path)

        for changes in watch(
            *self.dirs,
            watch_filter=keep,
            stop_event=self._stop,
            debounce=max(1, int(self.delay * 1000)),
            step=50,
            yield_on_timeout=False,
        ):
            if self._stop.is_set():
                return
            on_change(sorted({path for _, path in changes}))


def watchfiles_available() -> bool:
    try:
        import watchfiles  # noqa: F401, PLC0415
    except ImportError:
        return False
    return True


def make_reloader(config: Config, force_polling: bool = False) -> Reloader:
    """`WatchFilesReloader` when ``watchfiles`` is importable, else `StatReloader`."""
    if not force_polling and watchfiles_available():
        return WatchFilesReloader(config)
    return StatReloader(config)
