"""Warning filters for the command-line tools (never set on import)."""
import warnings

# setuptools' message when ``pkg_resources`` is imported (setuptools 67-80).
PKG_RESOURCES_DEPRECATED = r'pkg_resources is deprecated as an API'


def ignore_pkg_resources_deprecation() -> None:
    """Hide setuptools' deprecation warning about ``pkg_resources``, and
    nothing else.

    mmengine imports (and reloads) ``pkg_resources`` whenever it checks an
    installed package, for instance for every ``mmdet::``/``mmseg::``/
    ``mmpretrain::`` base of a config, so every tool that reads one of our
    configs would print the warning several times. It concerns mmengine,
    not the user, and is expected: mmengine needs ``pkg_resources``, which
    is why the requirements keep ``setuptools<81``. The filter matches this
    message and category only; any other warning still shows.
    """
    warnings.filterwarnings('ignore', message=PKG_RESOURCES_DEPRECATED,
                            category=UserWarning)
