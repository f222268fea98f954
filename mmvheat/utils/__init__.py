from .runner import (build_runner, launcher_choices, load_config,
                     set_local_rank, setup_cpu_distributed,
                     teardown_distributed)

__all__ = [
    'build_runner', 'launcher_choices', 'load_config', 'set_local_rank',
    'setup_cpu_distributed', 'teardown_distributed'
]
