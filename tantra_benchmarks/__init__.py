"""Benchmarks behind ``tantra bench``: each measures ours against a reference in one run, on the same input.

Times on a shared machine drift between runs, so what to compare are the ratios measured within one run.
One module per command (``transcribe``, ``chat``, ``speak``, ``describe``); ``common`` holds the timing and
memory helpers, the sample inputs and what the benchmarks read from the model config.
"""
