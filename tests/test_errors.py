"""Every error callrec raises on purpose has one root, and is also the builtin it is a kind of."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import callrec
from callrec import CallrecError


def _error_classes() -> list[type[BaseException]]:
    found = {}
    for module in pkgutil.walk_packages(callrec.__path__, "callrec."):
        if module.name.endswith("__main__"):
            continue
        for _, value in inspect.getmembers(importlib.import_module(module.name), inspect.isclass):
            if issubclass(value, BaseException) and value.__module__.startswith("callrec"):
                found[f"{value.__module__}.{value.__qualname__}"] = value
    return list(found.values())


def test_every_exception_class_of_callrec_has_the_one_root_and_a_builtin_leaf():
    classes = _error_classes()
    assert len(classes) >= 12
    for error in classes:
        assert issubclass(error, CallrecError), f"{error.__module__}.{error.__name__} is not a CallrecError"
        if error is not CallrecError:
            builtins = [base for base in error.__mro__[1:] if base.__module__ == "builtins" and base not in
                        (Exception, BaseException, object)]
            assert builtins, f"{error.__name__} subclasses no builtin error"
