"""``--device cuda`` on a GPU machine: does the INT8 spiking path run there, agree with the CPU, and how fast is it?

SmolLM2-135M's shape with random weights, so nothing needs downloading. Run from the repository root:
``python scripts/check_gpu.py``. Prints one JSON line per form (spiking, plain).
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.language.language_model import load_spikingbrain_dir  # noqa: E402
from core.language.spikingbrain_convert import _save  # noqa: E402
from core.models.spikingbrain_model import SpikingBrainConfig, SpikingBrainForCausalLM  # noqa: E402

SMOLLM2_SHAPE = {
    "family": "llama", "vocab_size": 49152, "n_embd": 576, "n_layer": 30, "n_head": 9, "n_kv_head": 3,
    "intermediate_size": 1536, "block_size": 2048, "norm_eps": 1e-5, "rope_base": 100000.0, "tie_embeddings": True,
}  # fmt: skip


def converted_random_model() -> Path:
    torch.manual_seed(0)
    model = SpikingBrainForCausalLM(SpikingBrainConfig(**SMOLLM2_SHAPE))
    for parameter in model.parameters():
        torch.nn.init.normal_(parameter, std=0.05)
    out = Path(tempfile.mkdtemp())
    _save(out, {k: v.contiguous() for k, v in model.state_dict().items() if k != "lm_head.weight"}, SMOLLM2_SHAPE)
    (out / "tokenizer.json").write_text('{"version": "1.0", "model": {"type": "BPE", "vocab": {}, "merges": []}}')
    return out


@torch.no_grad()
def prompt_and_decode_seconds(model, prompt_tokens: int = 200, decode_tokens: int = 128) -> float:
    prompt = torch.randint(0, SMOLLM2_SHAPE["vocab_size"], (1, prompt_tokens), device="cuda")
    model(prompt)  # warm-up
    torch.cuda.synchronize()
    start = time.perf_counter()
    output = model(prompt)
    token = output.logits[:, -1:].argmax(-1)
    for _ in range(decode_tokens):
        output = model(token, output.past_key_values)
        token = output.logits[:, -1:].argmax(-1)
    torch.cuda.synchronize()
    return time.perf_counter() - start


def main() -> None:
    print(json.dumps({"torch": torch.__version__, "gpu": torch.cuda.get_device_name(0)}))
    path = converted_random_model()
    ids = torch.randint(0, SMOLLM2_SHAPE["vocab_size"], (1, 64))
    for spiking in (True, False):
        with torch.no_grad():
            reference = load_spikingbrain_dir(path, "cpu", spiking)["model"](ids).logits
            gpu = load_spikingbrain_dir(path, "cuda", spiking)["model"]
            logits = gpu(ids.cuda()).logits.cpu()
        seconds = prompt_and_decode_seconds(gpu)
        print(json.dumps({
            "form": "spiking" if spiking else "plain",
            "relative_logit_difference_vs_cpu": round(((logits - reference).norm() / reference.norm()).item(), 5),
            "top1_agreement_vs_cpu": (logits.argmax(-1) == reference.argmax(-1)).float().mean().item(),
            "prompt_200_then_decode_128_seconds": round(seconds, 3),
        }))  # fmt: skip


if __name__ == "__main__":
    main()
