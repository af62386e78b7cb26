"""Backbones: loading (alias, tiny, local dir, Hub id) and the per-architecture component map.

Importing this package does not import transformers; the loaders import it on first call.
"""

from .components import (
    ARCHITECTURES,
    COMPONENTS,
    EMBED,
    HEAD,
    RESID,
    ActivationSite,
    ComponentMap,
    WeightSite,
    get_module,
)
from .loading import load_backbone, load_tokenizer, resolve_backbone_path
from .tasks import TASKS
from .tiny import TINY_NAMES

__all__ = [
    "ARCHITECTURES",
    "COMPONENTS",
    "EMBED",
    "HEAD",
    "RESID",
    "TASKS",
    "TINY_NAMES",
    "ActivationSite",
    "ComponentMap",
    "WeightSite",
    "get_module",
    "load_backbone",
    "load_tokenizer",
    "resolve_backbone_path",
]
