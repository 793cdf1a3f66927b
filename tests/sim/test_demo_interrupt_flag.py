"""Ctrl-C that Python swallows (it lands in a finalizer) still stops the demo."""

from __future__ import annotations

import os
import signal

import pytest

from phe_trace.cli.demo import _interruptible


class _Finalised:
    def __del__(self) -> None:
        # The signal handler runs here, inside a finalizer: its KeyboardInterrupt is
        # "ignored" by the interpreter, exactly as when it lands in a GC callback.
        os.kill(os.getpid(), signal.SIGINT)


def test_a_swallowed_interrupt_is_raised_at_the_next_check(
    capsys: pytest.CaptureFixture[str],
) -> None:
    before = signal.getsignal(signal.SIGINT)  # SIG_IGN where the tests run in the background
    with pytest.raises(KeyboardInterrupt), _interruptible() as check:
        obj = _Finalised()
        del obj  # the interrupt is swallowed here; execution carries on
        reached = True
        check()
    assert reached
    assert "Exception ignored" not in capsys.readouterr().err
    assert signal.getsignal(signal.SIGINT) is before  # the handler it found is put back


def test_no_interrupt_means_no_exception() -> None:
    before = signal.getsignal(signal.SIGINT)
    with _interruptible() as check:
        assert signal.getsignal(signal.SIGINT) is not before  # its own handler, meanwhile
        check()
    assert signal.getsignal(signal.SIGINT) is before
