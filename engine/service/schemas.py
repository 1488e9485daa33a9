"""Request bodies of the API, checked by pydantic before anything touches the database."""
from __future__ import annotations

from typing import Annotated, Literal, Optional

import re

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

__all__ = ["ContactIn", "EnrollmentIn", "EventIn", "MAX_BATCH", "Batch"]

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

    phone: Optional[Text(40)] = None
    email: Optional[Text(320)] = None
    first_name: Text(200) = ""
    last_name: Text(200) = ""
    timezone: Optional[Text(64)] = None
    locale: Optional[Text(8)] = None
    tags: Annotated[list[Text(100)], BeforeValidator(_split_tags)] = Field(default_factory=list, max_length=50)
    external_id: Optional[Text(200)] = None
    attrs: dict[Text(100, 1), Text(1000)] = Field(default_factory=dict, max_length=50)


class EnrollmentIn(_Strict):
    """Enroll the contact KEY (phone, email or external id) in ``sequence``."""

    sequence: Text(100, 1)
    contact: Text(320, 1)


class EventIn(_Strict):
    """Something a contact did. The same ``idempotency_key`` twice is recorded once."""

    contact: Text(320, 1)
    type: Literal["converted", "replied", "unsubscribed", "resubscribed"]
    sequence: Optional[Text(100, 1)] = None
    channel: Optional[Literal["sms", "email", "all"]] = None
    value: Optional[Annotated[float, Field(allow_inf_nan=False, ge=-1e12, le=1e12)]] = None
    idempotency_key: Optional[Text(200, 1)] = None


def Batch(item):  # noqa: N802 - a type factory
    """One item or a list of 1 to MAX_BATCH items (all-or-nothing)."""
    return item | Annotated[list[item], Field(min_length=1, max_length=MAX_BATCH)]
