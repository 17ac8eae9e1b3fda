"""tkprefix: shared-prefix attention for LLM decoding (Hydragen and ChunkAttention) in ThunderKittens on Hopper GPUs.

Every op takes `backend="auto" | "tk" | "torch"`: `torch` is exact PyTorch that runs anywhere and is the reference
the TK kernels are tested against; `auto` picks the TK kernels on a Hopper GPU with the extension built.
"""
from .cache import ChunkKVCache, ChunkPlan
from .chunk_attention import chunk_attention
from .hydragen import decode_attention, hydragen_attention_nopad, merge_states, prefix_attention
from .tree_attention import tree_attention
from .tree_plan import CostModel, PagedTree, TreePlan, plan_tree

__all__ = [
    "ChunkKVCache", "ChunkPlan", "chunk_attention", "decode_attention", "hydragen_attention_nopad",
    "merge_states", "prefix_attention", "tree_attention", "PagedTree", "TreePlan", "CostModel", "plan_tree",
]
__version__ = "0.1.0"
