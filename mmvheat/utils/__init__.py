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

__all__ = [
    'add_common_args', 'build_runner', 'check_data_paths', 'clear_pretrained',
    'load_config', 'set_local_rank', 'setup_cpu_distributed',
    'teardown_distributed'
]
