"""Running plugin code so that whatever it raises stays contained, except the user's own Ctrl-C.

A failing plugin must never take the rest down, whatever it raises: ``call_plugin`` lets an ``Exception`` pass
(the caller turns it into a warning or a one-line error naming the plugin) and wraps any other ``BaseException``
(``SystemExit``, ``KeyboardInterrupt``, ``GeneratorExit``, a plugin's own subclasses) in ``Contained``. Only a
Ctrl-C the user really pressed, told apart by watching SIGINT while the plugin runs, still stops the program.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable
from typing import Any

from zoo.deadline import Abandoned
from zoo.messages import exception_line

__all__ = ["Contained", "OverBudget", "PluginError", "call_plugin", "run_plugin", "describe"]


class PluginError(RuntimeError):
    """Plugin code raised something that is not an ``Exception`` (``SystemExit``, ``KeyboardInterrupt`` raised by
    the code itself, ...); zoo contained it. The message names the plugin."""


class Contained(Exception):
    """Plugin code raised a ``BaseException`` that is not an ``Exception``; it travels wrapped in this."""

    def __init__(self, original: BaseException) -> None:
        super().__init__(original)
        self.original = original


class OverBudget(BaseException):
    """``_tensor_budget`` stops a build. A ``BaseException``, so that a builder's ``except Exception`` cannot swallow
    it and build on."""

    def __init__(self, numel: int, tensors: int) -> None:
        super().__init__(numel, tensors)
        self.numel, self.tensors = numel, tensors


class _SigintWatch:
    """Tells a ``KeyboardInterrupt`` that a SIGINT delivered (the user pressed Ctrl-C) from one that plugin code
    raised itself: while plugin code runs in the main thread, the SIGINT handler is wrapped so that it notes the
    delivery before doing what it did. Signals reach only the main thread, so elsewhere nothing is delivered."""

    def __init__(self) -> None:
        self.delivered = False
        self.default = False  # the handler was Python's own, which raises KeyboardInterrupt
        self._previous: Any = None

    def __enter__(self) -> _SigintWatch:
        if threading.current_thread() is not threading.main_thread():
            return self
        try:
            previous = signal.getsignal(signal.SIGINT)
            if not callable(previous):  # SIG_IGN, SIG_DFL or not set from Python: nothing is raised from a signal
                return self

            def note_delivery(signum: int, frame: Any) -> Any:
                self.delivered = True
                return previous(signum, frame)

            signal.signal(signal.SIGINT, note_delivery)
        except (ValueError, OSError, RuntimeError):  # no signals here (a sub-interpreter, an embedding host)
            return self
        self._previous = previous
        self.default = previous is signal.default_int_handler
        return self

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            with contextlib.suppress(ValueError, OSError, RuntimeError):
                signal.signal(signal.SIGINT, self._previous)


def call_plugin(who: str, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
    """Call plugin code. ``Exception`` passes through; any other ``BaseException`` it raises (``SystemExit``,
    ``KeyboardInterrupt``, ``GeneratorExit``, its own subclasses) comes out wrapped in ``Contained``, for the
    caller to report like any failure. After a SIGINT was delivered while it ran, what the handler raised goes on
    (with a note naming ``who``); with Python's own handler a Ctrl-C always ends as ``KeyboardInterrupt``, even if
    the plugin swallowed it or turned it into an error."""
    watch = _SigintWatch()
    with watch:
        try:
            result = fn(*args, **kwargs)
        except (OverBudget, Abandoned):  # zoo's own stops (a size bound, a time bound): not the plugin's failure
            raise
        except BaseException as exc:
            if watch.delivered and not isinstance(exc, Exception):  # what the SIGINT handler raised: let it go on
                exc.add_note(f"zoo: interrupted while {who} ran")
                raise
            if watch.delivered and watch.default:  # the plugin turned the user's Ctrl-C into an error
                interrupt = KeyboardInterrupt()
                interrupt.add_note(f"zoo: interrupted while {who} ran")
                raise interrupt from exc
            if isinstance(exc, Exception):
                raise
            raise Contained(exc) from exc
    if watch.delivered and watch.default:  # the plugin caught the user's Ctrl-C and carried on
        interrupt = KeyboardInterrupt()
        interrupt.add_note(f"zoo: interrupted while {who} ran")
        raise interrupt
    return result


def run_plugin(who: str, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
    """``call_plugin`` for callers outside the registry: a contained ``BaseException`` becomes a one-line
    ``PluginError`` naming ``who`` (an ``Exception`` passes through as it is)."""
    try:
        return call_plugin(who, fn, *args, **kwargs)
    except Contained as exc:
        raise PluginError(f"{who} raised {describe(exc)}; zoo contained it") from None


def describe(exc: BaseException) -> str:
    """``"Type: first line"`` of an exception, safe against messages that raise or run over many lines."""
    if isinstance(exc, Contained):
        exc = exc.original
    try:
        text = call_plugin("str() of a plugin's exception", str, exc)
        text = text if isinstance(text, str) else ""
    except Exception:
        text = ""
    return exception_line(exc, 300, text=text)
