"""A prompt's start read into the conversation's cache before the prompt is known (``read_into_cache``), as the voice
loop does while the user speaks: the reply is the same, and only the rest of the prompt is run."""

from tests.lazy import torch


def test_a_prompt_read_ahead_gives_the_same_reply_and_runs_only_its_rest():
    from core.language.conversation import PromptCache, SamplingOptions
    from core.language.language_model import generate_tokens, read_into_cache
    from core.models.spikingbrain_model import SpikingBrainConfig, SpikingBrainForCausalLM

    torch.manual_seed(0)
    config = SpikingBrainConfig(vocab_size=64, n_embd=64, n_layer=2, n_head=2, family="llama", block_size=128)
    model = SpikingBrainForCausalLM(config).freeze_int8().eval()
    options = SamplingOptions(temperature=0.0, max_tokens=12)
    start, rest = list(range(1, 30)), [40, 41, 42, 43]
    alone = list(generate_tokens(model, start + rest, options, cache=PromptCache()))

    cache = PromptCache()
    read_into_cache(model, start, cache)
    assert cache.continued_by(start + rest)
    ran = []
    forward = model.forward
    model.forward = lambda ids, *args, **kwargs: (ran.append(ids.shape[1]), forward(ids, *args, **kwargs))[1]
    assert list(generate_tokens(model, start + rest, options, cache=cache)) == alone
    assert ran[0] == len(rest)  # the prompt's own run: its start was in the cache
