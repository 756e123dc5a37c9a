"""Loupe: vision-language models behind the OpenAI chat-completions API."""

__version__ = "0.1.0"
