from .config_utils import check_cfg_options, load_config
from .setup_env import register_all_modules

__all__ = ['register_all_modules', 'check_cfg_options', 'load_config']
