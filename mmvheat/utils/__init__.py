from .runner import (ToolError, add_common_args, build_runner,
                     check_data_paths, check_pretrained, clear_pretrained,
                     ensure_strict_loading, fetch_checkpoint, load_config,
                     run_tool, set_local_rank, setup_cpu_distributed,
                     teardown_distributed)

__all__ = [
    'ToolError', 'add_common_args', 'build_runner', 'check_data_paths',
    'check_pretrained', 'clear_pretrained', 'ensure_strict_loading',
    'fetch_checkpoint', 'load_config', 'run_tool', 'set_local_rank',
    'setup_cpu_distributed', 'teardown_distributed'
]
