"""Request bodies of the API, checked by pydantic before anything touches the database."""
from __future__ import annotations

from typing import Annotated, Any, Literal, Optional

import re

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

from ..eventnames import MAX_KEY, MAX_NAME, data_problem, name_problem
from ..fields import MAX_ATTR_KEY, MAX_ATTR_VALUE, MAX_ATTRS, MAX_LENGTH, MAX_TAG, MAX_TAGS

__all__ = ["ContactIn", "EnrollmentIn", "EventIn", "UnenrollIn", "MAX_BATCH", "Batch"]

MAX_BATCH = 1000


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


def Text(max_length: int, min_length: int = 0):  # noqa: N802 - a type factory
    return Annotated[str, Field(min_length=min_length, max_length=max_length), AfterValidator(_no_nul)]


def _split_tags(value: object) -> object:
    """Tags as a list, or as one string split on ``;`` or ``,`` the way the CSV import reads them."""
    if isinstance(value, str):
        return [tag.strip() for tag in re.split(r"[;,]", value) if tag.strip()]
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ContactIn(_Strict):
    """One contact, with the same columns and rules as a CSV row (extra values go under ``attrs``)."""

    phone: Optional[Text(MAX_LENGTH["phone"])] = None
    email: Optional[Text(MAX_LENGTH["email"])] = None
    first_name: Text(MAX_LENGTH["first_name"]) = ""
    last_name: Text(MAX_LENGTH["last_name"]) = ""
    timezone: Optional[Text(MAX_LENGTH["timezone"])] = None
    locale: Optional[Text(MAX_LENGTH["locale"])] = None
    tags: Annotated[list[Text(MAX_TAG)], BeforeValidator(_split_tags)] = Field(default_factory=list, max_length=MAX_TAGS)
    external_id: Optional[Text(MAX_LENGTH["external_id"])] = None
    attrs: dict[Text(MAX_ATTR_KEY, 1), Text(MAX_ATTR_VALUE)] = Field(default_factory=dict, max_length=MAX_ATTRS)


class EnrollmentIn(_Strict):
    """Enroll the contact KEY (phone, email or external id) in ``sequence``."""

    sequence: Text(100, 1)
    contact: Text(320, 1)


class UnenrollIn(_Strict):
    """Take the contact KEY (phone, email or external id) out of the sequence in the path."""

    contact: Text(320, 1)


def _event_name(value: str) -> str:
    problem = name_problem(value)
    if problem:
        raise ValueError(problem)
    return value


def _event_data(value: dict[str, Any]) -> dict[str, Any]:
    problem = data_problem(value)
    if problem:
        raise ValueError(problem)
    return value


class EventIn(_Strict):
    """Something a contact did: a built-in event or any named one (``cart_abandoned``), with the ``key`` it
    is about (one run per key) and its ``data`` (templates read it as ``event.data``). The same
    ``idempotency_key`` twice is recorded once."""

    contact: Text(320, 1)
    type: Annotated[Text(MAX_NAME, 1), AfterValidator(_event_name)]
    key: Optional[Text(MAX_KEY, 1)] = None
    data: Optional[Annotated[dict[str, Any], AfterValidator(_event_data)]] = None
    sequence: Optional[Text(100, 1)] = None
    channel: Optional[Literal["sms", "email", "all"]] = None
    value: Optional[Annotated[float, Field(allow_inf_nan=False, ge=-1e12, le=1e12)]] = None
    idempotency_key: Optional[Text(200, 1)] = None


def Batch(item):  # noqa: N802 - a type factory
    """One item or a list of 1 to MAX_BATCH items (all-or-nothing)."""
    return item | Annotated[list[item], Field(min_length=1, max_length=MAX_BATCH)]
