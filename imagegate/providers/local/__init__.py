"""Local diffusion models (the ``diffusers`` provider): loading, batching and running them.

Everything here imports torch and diffusers lazily, so imagegate installs and runs without
the ``imagegate[local]`` extra; only a channel that uses a local model needs it.
"""
