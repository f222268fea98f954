from .runner import (
    add_common_args,
    build_runner,
    check_data_paths,
    clear_pretrained,
    load_config,
    set_local_rank,
    setup_cpu_distributed,
    teardown_distributed,
)
from .warning_filters import ignore_pkg_resources_deprecation

__all__ = [
    'add_common_args', 'build_runner', 'check_data_paths', 'clear_pretrained',
    'load_config', 'set_local_rank', 'setup_cpu_distributed',
    'teardown_distributed', 'ignore_pkg_resources_deprecation'
]
