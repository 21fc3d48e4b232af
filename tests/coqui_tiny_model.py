"""Writes a tiny, random Coqui VITS model directory (config.json + model.pth): ``python -m tests.coqui_tiny_model DIR``.

Random weights speak noise, but every step of Coqui's loading and synthesis runs on them, as with a real voice.
"""

from __future__ import annotations

import sys
from pathlib import Path

from core.voice.speaker import _import_coqui


def write_tiny_vits(out: Path) -> None:
    import torch

    _import_coqui()  # the torchaudio/torchcodec stand-ins, where needed
    from TTS.tts.configs.shared_configs import CharactersConfig
    from TTS.tts.configs.vits_config import VitsConfig
    from TTS.tts.models.vits import Vits, VitsArgs

    torch.manual_seed(0)
    args = VitsArgs(
        hidden_channels=16, hidden_channels_ffn_text_encoder=32, num_heads_text_encoder=2, num_layers_text_encoder=1,
        num_layers_flow=1, num_layers_posterior_encoder=1, resblock_kernel_sizes_decoder=[3],
        resblock_dilation_sizes_decoder=[[1, 3, 5]], upsample_rates_decoder=[8, 8, 4],
        upsample_initial_channel_decoder=32, upsample_kernel_sizes_decoder=[16, 16, 8], init_discriminator=False,
    )  # fmt: skip
    characters = CharactersConfig(
        characters_class="TTS.tts.models.vits.VitsCharacters", pad="_", eos="", bos="", blank=None,
        characters="abcdefghijklmnopqrstuvwxyz ", punctuations=".,!?'", phonemes=None,
    )  # fmt: skip
    config = VitsConfig(model_args=args, use_phonemes=False, text_cleaner="basic_cleaners", characters=characters)
    config.audio.sample_rate = 16000
    model = Vits(config)
    out.mkdir(parents=True, exist_ok=True)
    torch.save({"model": model.state_dict()}, out / "model.pth")
    config.save_json(str(out / "config.json"))


if __name__ == "__main__":
    write_tiny_vits(Path(sys.argv[1]))
