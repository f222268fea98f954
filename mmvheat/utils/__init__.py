from .cli import (
    add_debug_arg,
    add_hco_impl_arg,
    add_out_dir_arg,
    add_shape_arg,
    add_sizes_arg,
    hidden_alias,
    positive_int,
    require_file,
)
from .runner import (
    ToolError,
    add_common_args,
    build_runner,
    check_data_paths,
    check_pretrained,
    clear_pretrained,
    compile_settings,
    ensure_strict_loading,
    fetch_checkpoint,
    load_config,
    run_tool,
    set_local_rank,
    setup_cpu_distributed,
    teardown_distributed,
)
from .warning_filters import ignore_pkg_resources_deprecation

__all__ = [
    'ToolError', 'add_common_args', 'add_debug_arg', 'add_hco_impl_arg',
    'add_out_dir_arg', 'add_shape_arg', 'add_sizes_arg', 'hidden_alias',
    'positive_int', 'require_file', 'build_runner', 'check_data_paths',
    'check_pretrained', 'clear_pretrained', 'compile_settings',
    'ensure_strict_loading',
    'fetch_checkpoint', 'ignore_pkg_resources_deprecation', 'load_config',
    'run_tool', 'set_local_rank', 'setup_cpu_distributed',
    'teardown_distributed'
]
