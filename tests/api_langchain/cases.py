"""What the LangChain tests ask, and what greedy decoding must answer.

SmolLM2 continues a count with a wide margin (every next token at least 2 nats ahead of the
runner-up, measured), so its greedy answer stays the same whether the prompt is decoded from
scratch, from cached cells or beside other requests (llama.cpp's logits differ across batch
sizes: 0.2 nats on one measured token of a plain "Say hi" reply, enough to change a prose
answer). The count never ends by itself, so a reply always runs to its token limit: output
token counts are exact.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Iterable
from dataclasses import dataclass
from functools import reduce
from typing import Literal

import pytest
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage
from langchain_core.tools import tool
from pydantic import BaseModel, Field

from conftest import TEST_MODEL_NAME

MODEL = TEST_MODEL_NAME
#: the width of SmolLM2-135M's embeddings
EMBEDDING_SIZE = 576
#: every reply to a count is cut at this many tokens
LIMIT = 8


@dataclass(frozen=True)
class Count:
    """A count the user asks for, the assistant's start of it, and its next :data:`LIMIT`
    tokens under greedy decoding."""

    ask: str
    start: str
    then: str

    @property
    def conversation(self) -> list[BaseMessage]:
        """The chat that ends with the assistant's start, which the server continues."""
        return [HumanMessage(self.ask), AIMessage(self.start)]


#: ' 13, 14,' is eight tokens: SmolLM2 spells numbers digit by digit
COUNT = Count("Count from 1 to 100.", "1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,", " 13, 14,")
COUNT_ON = Count("Count from 21 to 100.", "21, 22, 23, 24, 25, 26, 27, 28,", " 29, 30,")

WEATHER_QUESTION = "What's the weather in Paris? Answer in celsius."

CAT = "A cat sat on the mat."
KITTEN = "A kitten sat on the rug."
MARKETS = "Stock markets fell sharply today."


class Forecast(BaseModel):
    """A schema SmolLM2 only meets when generation is constrained to it (asked in prose,
    with the schema in the prompt, it echoes the schema: measured)."""

    city: str = Field(description="the city", max_length=30)
    unit: Literal["celsius", "fahrenheit"]
    temperature: int = Field(ge=-50, le=60)


@tool
def get_weather(city: str) -> str:
    """Get the current weather in a city."""
    return f"sunny in {city}"


@tool
def get_time(timezone: Literal["UTC", "CET"]) -> str:
    """Get the current time in a timezone."""
    return f"noon {timezone}"


def merged(chunks: Iterable[BaseMessage]) -> AIMessageChunk:
    """A chat stream's chunks added up into one message, as LangChain users do."""
    pieces = list(chunks)
    assert pieces and all(isinstance(piece, AIMessageChunk) for piece in pieces), pieces
    total = reduce(operator.add, pieces)
    assert isinstance(total, AIMessageChunk)
    return total


def assert_unit_vectors(vectors: list[list[float]], count: int) -> None:
    """``count`` embeddings of SmolLM2's width, each of length 1 (both APIs normalise)."""
    assert len(vectors) == count
    for vector in vectors:
        assert len(vector) == EMBEDDING_SIZE
        assert all(isinstance(value, float) for value in vector)
        assert math.fsum(value * value for value in vector) == pytest.approx(1.0, abs=1e-5)


def cosine(a: list[float], b: list[float]) -> float:
    """The cosine of two unit vectors."""
    return math.fsum(x * y for x, y in zip(a, b, strict=True))
