"""intercept/errors.py: the exception tree is complete; its gateway branch says what it means."""

import importlib
import inspect
import pkgutil
import re

import intercept
from intercept import errors
from intercept.errors import (
    GatewayError,
    GatewayOutcomeUnknown,
    GatewayRefused,
    GatewayRetryLater,
    InterceptError,
)


def _exception_classes() -> dict[str, type[BaseException]]:
    found: dict[str, type[BaseException]] = {}
    for info in pkgutil.walk_packages(intercept.__path__, "intercept."):
        if info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        for name, value in vars(module).items():
            if (inspect.isclass(value) and issubclass(value, BaseException)
                    and value.__module__ == info.name):
                found[name] = value
    return found


def _tree() -> dict[str, str]:
    """Each class named in the docstring's trees, with the name of its parent in the tree."""
    parents: dict[str, str] = {}
    stack: list[tuple[int, str]] = []
    for line in (errors.__doc__ or "").splitlines():
        match = re.match(r"^    ((?:[│ ]   )*)(?:[├└]── )?(\w+)", line)
        if not match or line.strip().startswith(("Defined", "Catch")):
            continue
        depth = len(match.group(1)) // 4 + (1 if "──" in line else 0)
        stack = [(d, n) for d, n in stack if d < depth]
        parents[match.group(2)] = stack[-1][1] if stack else ""
        stack.append((depth, match.group(2)))
    return parents


def test_every_exception_class_of_the_package_is_in_the_tree_under_its_real_parent():
    classes, tree = _exception_classes(), _tree()
    missing = sorted(set(classes) - set(tree))
    assert not missing, f"add these to the tree in intercept/errors.py's docstring: {missing}"
    for name, cls in classes.items():
        parent = tree[name] or "Exception"  # a root of a tree
        assert parent == cls.__mro__[1].__name__, (
            f"{name} is drawn under {parent!r} but subclasses {cls.__mro__[1].__name__}")


def test_retry_later_is_not_refused_for_good():
    assert not issubclass(GatewayRetryLater, GatewayRefused)
    assert not issubclass(GatewayOutcomeUnknown, GatewayRefused)
    for cls in (GatewayRefused, GatewayRetryLater, GatewayOutcomeUnknown):
        assert issubclass(cls, GatewayError) and issubclass(cls, InterceptError)
    assert "for good" in (GatewayRefused.__doc__ or "")
    assert "for good" not in (GatewayError.__doc__ or "").split("\n")[0]
