"""Tools, calls and results in the prompt: through a template that knows tools, and by Loupe's
convention through one that does not."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from loupe.domain import PromptMessage, Role, TextPart, ToolCall, ToolSpec
from loupe.engines.local.processor import load_processor
from loupe.engines.local.prompt import count_prompt, templated
from loupe.models.tool_calls import format_for

TOOL = ToolSpec("get_weather", '{"properties":{"city":{"type":"string"}},"type":"object"}', "Weather forecast")
CALL = ToolCall("call_1", "get_weather", '{"city": "Oslo"}')
MESSAGES = [
    PromptMessage(Role.USER, (TextPart("Weather in Oslo?"),)),
    PromptMessage(Role.ASSISTANT, (), tool_calls=(CALL,)),
    PromptMessage(Role.TOOL, (TextPart('{"temp": 3}'),), tool_call_id="call_1"),
    PromptMessage(Role.TOOL, (TextPart('{"wind": 9}'),), tool_call_id="call_1"),
]

# A template that renders tools as Qwen2.5's does, written for this test: the function list in
# the system turn, calls as <tool_call> blocks, results as <tool_response> blocks in a user turn.
TOOLS_TEMPLATE = """\
{%- if tools -%}
<|im_start|>system
# Tools
<tools>
{%- for tool in tools %}
{{ tool | tojson }}
{%- endfor %}
</tools><|im_end|>
{% endif -%}
{%- for message in messages -%}
{%- if message.role == 'tool' -%}
<|im_start|>user
<tool_response>
{{ message.content }}
</tool_response><|im_end|>
{% elif message.tool_calls -%}
<|im_start|>assistant
{%- for call in message.tool_calls %}
<tool_call>
{"name": "{{ call.function.name }}", "arguments": {{ call.function.arguments | tojson }}}
</tool_call>
{%- endfor %}<|im_end|>
{% else -%}
<|im_start|>{{ message.role }}
{% for part in message.content %}{{ part.text }}{% endfor %}<|im_end|>
{% endif -%}
{%- endfor -%}
{%- if add_generation_prompt %}<|im_start|>assistant
{% endif -%}
"""


@pytest.fixture(scope="module")
def processor(tiny_checkpoint: Callable[[str], Path]) -> object:
    return load_processor(str(tiny_checkpoint("qwen2.5-vl")))


def test_a_template_that_knows_tools_renders_them_itself(processor: object) -> None:
    processor.chat_template = TOOLS_TEMPLATE  # type: ignore[attr-defined]
    try:
        text = templated(processor, MESSAGES, [TOOL], format_for("qwen2.5-vl"))
        assert "You may call one or more of these functions" in templated(processor, MESSAGES, [TOOL], format_for("glm4v"))
    finally:
        processor.chat_template = None  # type: ignore[attr-defined]
    assert '"name": "get_weather"' in text.split("</tools>")[0]
    assert '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Oslo"}}\n</tool_call>' in text
    assert text.count("<tool_response>") == 2
    assert "You may call one or more of these functions" not in text  # the template's words, not Loupe's


def test_other_templates_get_the_convention_as_text(processor: object, tiny_checkpoint: Callable[[str], Path]) -> None:
    plain = load_processor(str(tiny_checkpoint("qwen2.5-vl")))
    text = templated(plain, MESSAGES, [TOOL])
    system, rest = text.split("<|im_end|>", 1)
    assert "<tools>" in system and json.dumps({"type": "function", "function": {"name": "get_weather", "description": "Weather forecast", "parameters": json.loads(TOOL.parameters)}}) in system
    assert '<|im_start|>assistant\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Oslo"}}\n</tool_call>' in rest
    assert '<|im_start|>user\n<tool_response>\n{"temp": 3}\n</tool_response>\n<tool_response>\n{"wind": 9}\n</tool_response>' in rest
    without = templated(plain, MESSAGES[:1])
    assert "<tools>" not in without
    assert count_prompt(plain, MESSAGES, [TOOL]).prompt_tokens > count_prompt(plain, MESSAGES[:1]).prompt_tokens
