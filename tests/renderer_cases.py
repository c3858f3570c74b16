"""The seven reference conversations the official chat templates were rendered on
(`/work/shared/reference/chat_templates/rendered/<template>/<case>__<variant>.txt`).

Shared by the renderer parity tests; each maps a case name to (messages, whether the
case is a generation prompt). Importable like ``fakes`` (tests/ is on sys.path).
"""

from __future__ import annotations

from typing import Any

SYSTEM = {"role": "system", "content": "You are a helpful assistant."}
BASIC = [
    SYSTEM,
    {"role": "user", "content": "What is 2+2?"},
    {"role": "assistant", "content": "2+2 = 4."},
    {"role": "user", "content": "And 3+3?"},
]
TOOLS = [
    SYSTEM,
    {"role": "user", "content": "What's the weather in Paris?"},
    {
        "role": "assistant",
        "content": "",
        "tool_calls": [
            {
                "type": "function",
                "id": "call_1",
                "function": {
                    "name": "get_weather",
                    "arguments": '{"city": "Paris", "unit": "celsius"}',
                },
            }
        ],
    },
    {
        "role": "tool",
        "tool_call_id": "call_1",
        "content": '{"temperature": 18, "condition": "sunny"}',
    },
]
THINK = [
    {"role": "user", "content": "What is 7*8?"},
    {"role": "assistant", "content": "56", "reasoning_content": "7*8 = 56."},
    {"role": "user", "content": "Now add 10."},
]
CASES: dict[str, tuple[list[dict[str, Any]], bool]] = {
    "basic_gen": (BASIC, True),
    "user_only_gen": ([{"role": "user", "content": "Hello!"}], True),
    "sft_multiturn": ([*BASIC, {"role": "assistant", "content": "3+3 = 6."}], False),
    "tools_gen_after_tool_result": (TOOLS, True),
    "tools_full": (
        [*TOOLS, {"role": "assistant", "content": "It is 18°C and sunny in Paris."}],
        False,
    ),
    "thinking_multiturn_gen": (THINK, True),
    "thinking_multiturn_full": (
        [*THINK, {"role": "assistant", "content": "66", "thinking": "56 + 10 = 66."}],
        False,
    ),
}

TOOL_CASES = {"tools_gen_after_tool_result", "tools_full"}
