"""Ctrl-C that is safe while modules are being imported.

A KeyboardInterrupt raised while a C extension is being imported (torch._C and others built with
pybind11 run Python code from their init) may not come back as an exception at all: the C++ side
calls std::terminate and the process dies with SIGABRT and "terminate called after throwing an
instance of 'pybind11::error_already_set'"; or the extension swallows it and the program runs on
as if no key had been pressed. The CLIs import torch and friends after parsing their arguments,
and a user who presses Ctrl-C then must get `interrupted`, nothing else.
"""
import signal
import sys
import threading


def _outermost_import(frame):
    """The frame of the import machinery nearest the bottom of the stack that ends in `frame`
    (the import that all others running now are nested in), or None outside any import."""
    found = None
    while frame is not None:
        if frame.f_code.co_filename.startswith("<frozen importlib"):
            found = frame
        frame = frame.f_back
    return found


class SafeCtrlC:
    """Inside the block, SIGINT raises KeyboardInterrupt as usual, except while an import runs.
    Then it is held back until the outermost import returns, and raised there: the import
    statement that started it raises KeyboardInterrupt, with the module whole in sys.modules.
    Any import counts, not only a C extension's: C++ code that calls back into Python also runs
    from pure-Python imports (torch/__init__.py calls torch._C's init functions). A Ctrl-C during
    `import torch` thus ends the program once torch is imported, a second or two later.

    The return is seen by a profile hook (sys.setprofile), set only while a Ctrl-C is held back;
    a profiler already set is put back afterwards. Nothing is changed where SIGINT is ignored (a
    job that a script started in the background) or outside the main thread.
    """

    def __init__(self):
        self._old_handler = None
        self._old_profile = None
        self._held = None           # the outermost import frame while a Ctrl-C waits for it

    def __enter__(self):
        if (threading.current_thread() is threading.main_thread()
                and signal.getsignal(signal.SIGINT) is not signal.SIG_IGN):
            self._old_handler = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame):
        outermost = _outermost_import(frame)
        if outermost is None:
            raise KeyboardInterrupt
        if self._held is None:
            self._held, self._old_profile = outermost, sys.getprofile()
            sys.setprofile(self._watch)

    def _watch(self, frame, event, arg):
        # An exception raised here comes out of the returning frame (and unsets this hook): the
        # import statement raises it, and the next bytecode runs outside the import machinery.
        if frame is self._held and event == "return":
            self._release()
            raise KeyboardInterrupt

    def _release(self):
        self._held = None
        sys.setprofile(self._old_profile)

    def __exit__(self, *exc):
        if self._old_handler is None:
            return
        signal.signal(signal.SIGINT, self._old_handler)
        self._old_handler = None
        if self._held is not None:
            self._release()
            if exc[0] is None:
                raise KeyboardInterrupt
