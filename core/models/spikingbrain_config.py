"""SpikingBrain's configuration: the architecture (GPT-2 or the llama family's variants), the spike coding and the
weights' form. Saved as ``config.json`` beside a converted model."""

from __future__ import annotations

from dataclasses import dataclass, field

from core.models.spike_coding import KERNEL_WIDTH


@dataclass
class SpikingBrainConfig:
    vocab_size: int = 50257  # GPT-2 BPE
    n_embd: int = 768
    n_layer: int = 6
    n_head: int = 12
    n_kv_head: int = 0
    """Key/value heads for grouped-query attention; 0 means n_head (plain multi-head attention)."""
    block_size: int = 1024
    """Context length in tokens."""
    family: str = "gpt2"
    """gpt2 or llama (Llama, Qwen2 and Qwen3 differ in the three settings below)."""
    head_dim: int = 0
    """Width of an attention head; 0 means n_embd / n_head (Qwen3 sets its own)."""
    qkv_bias: bool = False
    """Biases on the query, key and value projections of a llama-family model (Qwen2)."""
    qk_norm: bool = False
    """An RMSNorm over each query and key head before RoPE (Qwen3, Gemma 3)."""
    activation: str = "silu"
    """The gate's activation in a llama-family MLP: silu (SwiGLU), or gelu_tanh (Gemma 3's GeGLU)."""
    sandwich_norms: bool = False
    """A norm on the attention's and the MLP's outputs too, before each joins the residual (Gemma 3)."""
    embed_scale: float = 1.0
    """Embeddings are multiplied by it (Gemma 3: the square root of n_embd)."""
    attn_scale: float = 0.0
    """Attention scores are multiplied by it; 0 means 1 / sqrt(head_dim) (Gemma 3: query_pre_attn_scalar^-0.5)."""
    sliding_window: int = 0
    """How far back a sliding layer's queries see (that many tokens, themselves included); 0: no sliding layers."""
    layer_types: tuple[str, ...] = ()
    """Per layer, "sliding" or "full" attention; empty: all full (Gemma 3: five sliding, then one full)."""
    rope_local_base: float = 0.0
    """The RoPE base of the sliding layers; 0 means rope_base (Gemma 3: 10,000 there, 1,000,000 in full layers)."""
    intermediate_size: int = 0
    """MLP width; 0 means 4 * n_embd."""
    norm_eps: float = 1e-5
    rope_base: float = 10000.0
    tie_embeddings: bool = True
    spiking: bool = True
    """Spike-code activations and use INT8 weights; False runs the plain network."""
    spike_k: float = 4.0
    """Threshold constant: V_th = mean(|x|) / k. Larger k: finer coding, more spikes. 4 keeps SmolLM2's perplexity
    within 5% of the plain network's (the k table in docs/BENCHMARKS.md shows the trade-off)."""
    weight_group: int = 128
    """Inputs that share one INT8 weight scale (a multiple of 64, the INT8 kernel's block); 0: one per output row."""
    weight_bits: int = 8
    """8: INT8 weights, a scale per ``weight_group`` inputs (8.1 bits a weight); 4: GGUF's Q4_1 blocks, a float16
    scale and minimum per 32 inputs (5 bits a weight: decoding, bound by memory, reads 0.6 as many bytes)."""
    int8_projections: tuple[str, ...] = ()
    """With ``weight_bits`` 4, the projections kept in INT8 (``blocks.3.mlp.down_proj``): a GGUF's blocks finer than
    4 bits (Q5_0, Q6_K, Q8_0), which 4-bit blocks would round again."""
    extra: dict = field(default_factory=dict)
    """Whatever else a checkpoint carries (token ids of the chat template, the source)."""

    def __post_init__(self) -> None:
        if self.family not in ("gpt2", "llama"):
            raise ValueError(f"unknown family {self.family!r}; use gpt2 or llama")
        self.n_kv_head = self.n_kv_head or self.n_head
        self.intermediate_size = self.intermediate_size or 4 * self.n_embd
        if (not self.head_dim and self.n_embd % self.n_head) or self.n_head % self.n_kv_head:
            raise ValueError("n_embd must divide into n_head heads, and n_head into n_kv_head groups")
        self.head_dim = self.head_dim or self.n_embd // self.n_head
        self.layer_types = tuple(self.layer_types)
        self.int8_projections = tuple(self.int8_projections)
        if self.activation not in ("silu", "gelu_tanh"):
            raise ValueError(f"unknown activation {self.activation!r}; use silu or gelu_tanh")
        if self.layer_types and (len(self.layer_types) != self.n_layer or set(self.layer_types) - {"sliding", "full"}):
            raise ValueError("layer_types gives each layer sliding or full attention")
        if self.weight_bits not in (8, 4):
            raise ValueError(f"weight_bits must be 8 or 4, not {self.weight_bits}")
        if self.weight_group % KERNEL_WIDTH:
            raise ValueError(f"weight_group must be 0 or a multiple of {KERNEL_WIDTH}")
