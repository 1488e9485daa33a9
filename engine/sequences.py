"""Follow-up sequences: one YAML file each under ``config/sequences/``, checked with line numbers."""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from .deadlines import CALENDARS, parse_deadline
from .durations import format_duration, parse_duration
from .errors import ConfigError, Problem
from .eventnames import name_problem, near_built_in
from .fields import MAX_ATTR_KEY, MAX_ATTR_VALUE
from .handoff_rules import HandoffRule, parse_handoff
from . import journeys
from .variants import AbSpec, Variant
from .waits import EventWait
from .kinds import INFORMATIONAL, PROMOTIONAL, TOUCH_KINDS
from .settings import Settings, parse_cap, parse_window
from .sms import DEFAULT_MAX_SEGMENTS
from .window import FrequencyCap, SendWindow
from .yamlfile import YamlDoc, join_path, load_yaml

__all__ = ["Touch", "OfferSpec", "Trigger", "Sequence", "load_sequences", "read_sequences", "EXIT_EVENTS", "MIN_TOUCHES", "MAX_TOUCHES"]

EXIT_EVENTS = ("converted", "replied", "unsubscribed")
MIN_TOUCHES, MAX_TOUCHES = 3, 5
_NAME = re.compile(r"^[a-z0-9][a-z0-9-]*$")
SEQUENCE_KEYS = {"name", "description", "exit_on", "offer", "touches", "send_window", "frequency_cap",
                 "max_sms_segments", "reentry", "sample", "trigger", "utm", "handoff", "on_converted"}
TRIGGER_KEYS = {"event", "sample"}
#: events that can't start a sequence: an opted-out contact is sent nothing, and resubscribing is not an interest
NOT_TRIGGERS = ("unsubscribed", "resubscribed")
#: the most segments a sequence may allow an SMS (the network's own limit for one concatenated SMS)
MAX_SEGMENTS_ALLOWED = 255
TOUCH_KEYS = {"name", "after", "channel", "template", "urgent", "kind", "allow_claims", "only_if", "variants", "ab"}
OFFER_KEYS = {"code", "title", "expires_after", "expires_at", "calendar", "stock", "url"}
UTM_KEYS = ("utm_source", "utm_medium", "utm_campaign", "utm_content")


@dataclass(frozen=True)
class Touch:
    """One message of a sequence, sent ``after`` the previous one (or the enrollment)."""

    index: int
    name: str
    after: timedelta
    channel: str
    template: str
    urgent: bool = False
    line: int | None = None
    #: promotional (the default) or informational: picks the sender line and what a blacklist means
    kind: str = PROMOTIONAL
    #: phrases the honest-urgency lint lets through in this touch's template: ``(text, why)``
    allow_claims: tuple[tuple[str, str], ...] = ()
    #: journeys (:mod:`engine.journeys`): the condition to send, the event waited for, the A/B variants
    only_if: list | None = None
    wait: EventWait | None = None
    variants: tuple[Variant, ...] = ()
    ab: AbSpec | None = None


@dataclass(frozen=True)
class OfferSpec:
    """The real offer urgency may speak of. Its deadline is per contact (``expires_after``) or absolute."""

    code: str
    title: str
    expires_after: timedelta | None = None
    expires_at: datetime | None = None
    stock: int | None = None
    #: where ``{{ offer.link }}`` points (through a short link)
    url: str | None = None

    def deadline_for(self, enrolled_at: datetime) -> datetime | None:
        """The deadline a contact enrolled at ``enrolled_at`` is told; frozen on the enrollment."""
        if self.expires_at is not None:
            return self.expires_at
        if self.expires_after is not None:
            return enrolled_at + self.expires_after
        return None


@dataclass(frozen=True)
class Trigger:
    """``trigger: {event: cart_abandoned}``: the event that enrolls a contact, once per event key."""

    event: str
    #: example ``event.data`` for ``validate`` and ``preview`` to render against
    sample: dict[str, Any] = field(default_factory=dict)


@dataclass
class Sequence:
    name: str
    description: str
    exit_on: tuple[str, ...]
    touches: list[Touch]
    offer: OfferSpec | None = None
    send_window: SendWindow | None = None
    frequency_cap: FrequencyCap | None = None
    #: an SMS longer than this (with the footer, for the contact it goes to) is skipped with its reason
    max_sms_segments: int = DEFAULT_MAX_SEGMENTS
    #: how long after its last enrollment ended a contact may enroll again; None (``reentry: never``): never
    reentry_after: timedelta | None = None
    #: extra columns (``contact.attrs``) for the sample contact ``validate`` and ``preview`` render against
    sample: dict[str, str] = field(default_factory=dict)
    #: the event that enrolls contacts in this sequence by itself (None: only ``enroll`` does)
    trigger: Trigger | None = None
    #: UTM parameters that replace the defaults on this sequence's links (see :mod:`engine.links`)
    utm: dict[str, str] = field(default_factory=dict)
    #: when a lead goes to sales and to which rep (see :mod:`engine.handoff`); None: never
    handoff: HandoffRule | None = None
    #: the sequence a contact is enrolled in when it converts in this one (``on_converted: {enroll: NAME}``),
    #: subject to that sequence's ``reentry``
    on_converted: str | None = None
    file: Path | None = None
    hash: str = ""
    problems: list[Problem] = field(default_factory=list)

    def to_json(self) -> str:
        """A stable snapshot of the definition, stored per version so enrollments keep theirs."""
        def enc(value: Any) -> Any:
            if isinstance(value, timedelta):
                return format_duration(value)
            if isinstance(value, datetime):
                return value.isoformat()
            if isinstance(value, (set, frozenset)):
                return sorted(value)
            if isinstance(value, Path):
                return str(value)
            raise TypeError(type(value))

        data = asdict(self)
        data.pop("problems", None)
        data.pop("sample", None)  # only validate and preview read it
        if data.get("on_converted") is None:
            data.pop("on_converted", None)  # absent: the same snapshot as a sequence written without the key
        if data.get("send_window"):  # holidays.yaml's dates are read where the window is used, not frozen here
            window = data["send_window"]
            window.pop("overrides", None)
            for key in ("skip_holidays", "skip_mourning"):
                if not window.get(key):
                    window.pop(key, None)
        if data.get("trigger"):
            data["trigger"].pop("sample", None)
        journeys.trim_json(data["touches"])
        return json.dumps(data, default=enc, ensure_ascii=False, sort_keys=True)


def _mapping(doc: YamlDoc, key: str, raw: Any, keys: set[str], noun: str, shape: str) -> dict | None:
    """``raw`` when it is a mapping (its unknown keys reported), else None with the problem said."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        doc.problem(key, f"must be a mapping {shape}")
        return None
    for extra in sorted(set(raw) - keys):
        doc.problem(join_path(key, extra), f"unknown key; {noun} takes {', '.join(sorted(keys))}")
    return raw


def _offer(doc: YamlDoc, raw: Any, tz: ZoneInfo) -> OfferSpec | None:
    raw = _mapping(doc, "offer", raw, OFFER_KEYS, "an offer", "with code, title and expires_after or expires_at")
    if raw is None:
        return None
    code, title = raw.get("code"), raw.get("title")
    if not code:
        doc.problem("offer.code", "is required (the discount code, e.g. WINTER20)")
    if not title:
        doc.problem("offer.title", "is required (what the offer is, e.g. 20% off every coat)")
    expires_after = expires_at = None
    if "expires_after" in raw and "expires_at" in raw:
        doc.problem("offer.expires_at", "give either expires_after (per contact) or expires_at (one deadline), not both")
    if "expires_after" in raw:
        try:
            expires_after = parse_duration(raw["expires_after"])
        except ValueError as err:
            doc.problem("offer.expires_after", str(err))
    calendar = raw.get("calendar")
    if calendar is not None and calendar not in CALENDARS:
        doc.problem("offer.calendar", f"'{calendar}': use jalali or gregorian (or leave it out: a year from 1300 "
                                      "to 1499 is read as Jalali)")
        calendar = None
    if "expires_at" in raw:
        try:
            expires_at = parse_deadline(raw["expires_at"], tz, calendar)
        except ValueError as err:
            doc.problem("offer.expires_at", str(err))
    stock = raw.get("stock")
    if stock is not None and (not isinstance(stock, int) or isinstance(stock, bool) or stock < 0):
        doc.problem("offer.stock", f"{stock!r} must be a whole number of items (or leave it out)")
        stock = None
    url = raw.get("url")
    if url is not None and not (isinstance(url, str) and re.match(r"^https?://[^\s/]+\S*$", url)
                                and len(url.encode()) <= 2000):
        doc.problem("offer.url", f"{url!r} must be a full http(s) address of at most 2,000 bytes, "
                                 "e.g. https://shop.example/coats")
        url = None
    if not code or not title:
        return None
    return OfferSpec(str(code), str(title), expires_after, expires_at, stock, url)


def _touches(doc: YamlDoc, raw: Any) -> list[Touch]:
    if not isinstance(raw, list):
        doc.problem("touches", f"must be a list of {MIN_TOUCHES} to {MAX_TOUCHES} touches")
        return []
    if not MIN_TOUCHES <= len(raw) <= journeys.max_touches(raw):
        doc.problem("touches", f"has {len(raw)} touches; a sequence needs {MIN_TOUCHES} to {MAX_TOUCHES} "
                               "(3–5 honest follow-ups convert a lead; more is spam)")
    touches, names = [], set()
    for i, item in enumerate(raw):
        key = join_path("touches", i)
        if not isinstance(item, dict):
            doc.problem(key, "must be a mapping with name, after, channel and template")
            continue
        for extra in sorted(set(item) - TOUCH_KEYS):
            doc.problem(join_path(key, extra), f"unknown key; a touch takes {', '.join(sorted(TOUCH_KEYS))}")
        name = str(item.get("name") or "")
        if not _NAME.match(name):
            doc.problem(join_path(key, "name"), f"{name!r}: use lowercase letters, digits and dashes, e.g. last-chance")
        elif name in names:
            doc.problem(join_path(key, "name"), f"{name!r} is used twice in this sequence; names must be unique")
        names.add(name)
        after, wait = timedelta(0), None
        if isinstance(item.get("after"), dict):  # hook: journeys (an event wait)
            wait = journeys.touch_wait(doc, key, item, raw)
        else:
            try:
                after = parse_duration(item.get("after", "0s"))
            except ValueError as err:
                doc.problem(join_path(key, "after"), str(err))
        channel = item.get("channel")
        if channel not in ("sms", "email"):
            doc.problem(join_path(key, "channel"), f"{channel!r}: use sms or email")
        template = item.get("template")
        urgent = item.get("urgent", False)
        if not isinstance(urgent, bool):
            doc.problem(join_path(key, "urgent"), f"{urgent!r} must be true or false")
            urgent = False
        kind = item.get("kind", PROMOTIONAL)
        if kind not in TOUCH_KINDS:
            doc.problem(join_path(key, "kind"), f"{kind!r}: use promotional (an offer, an ad; the default) or "
                                                "informational (a service message to a customer, no offer)")
            kind = PROMOTIONAL
        elif kind == INFORMATIONAL and urgent:
            doc.problem(join_path(key, "urgent"), "an informational touch can't be urgent: urgency speaks of an "
                                                  "offer, and informational text carries none")
        variants, ab = journeys.touch_variants(doc, key, item)  # hook: journeys (A/B variants)
        if variants and not template:
            template = variants[0].template
        elif not template or not isinstance(template, str):
            doc.problem(join_path(key, "template"), "is required: a path under templates_dir, e.g. winter-sale/hello.sms.j2")
        touches.append(Touch(i, name, after, str(channel), str(template or ""), urgent,
                             doc.line(join_path(key, "template" if "template" in item else "name")), kind,
                             _allow_claims(doc, join_path(key, "allow_claims"), item.get("allow_claims")),
                             journeys.touch_condition(doc, key, item, raw), wait, variants, ab))
    journeys.check_paths(doc, touches)  # hook: journeys (at most 5 sends on any path)
    return touches


def _allow_claims(doc: YamlDoc, key: str, raw: Any) -> tuple[tuple[str, str], ...]:
    """``allow_claims: [{text: "۷ روز", why: "return policy"}]``: each waived phrase with its reason."""
    if raw is None:
        return ()
    example = 'e.g. allow_claims: [{text: "۷ روز", why: "return policy"}]'
    if not isinstance(raw, list):
        doc.problem(key, f"must be a list of {{text, why}}; {example}")
        return ()
    allowed = []
    for i, entry in enumerate(raw):
        where = join_path(key, i)
        if not isinstance(entry, dict) or set(entry) - {"text", "why"}:
            doc.problem(where, f"must be a mapping with text and why only; {example}")
            continue
        text, why = entry.get("text"), entry.get("why")
        if not isinstance(text, (str, int)) or not str(text).strip():
            doc.problem(join_path(where, "text"), f"is required: the phrase of the template to let through; {example}")
        elif not isinstance(why, str) or not why.strip():
            doc.problem(join_path(where, "why"), "is required: say why the phrase is not a countdown or a stock "
                                                 "claim (e.g. return policy), so a reviewer can judge it")
        else:
            allowed.append((str(text).strip(), why.strip()))
    return tuple(allowed)


def _max_segments(doc: YamlDoc, raw: Any) -> int:
    if raw is None:
        return DEFAULT_MAX_SEGMENTS
    if not isinstance(raw, int) or isinstance(raw, bool) or not 1 <= raw <= MAX_SEGMENTS_ALLOWED:
        doc.problem("max_sms_segments", f"{raw!r} must be a whole number from 1 to {MAX_SEGMENTS_ALLOWED} "
                                        f"(the default is {DEFAULT_MAX_SEGMENTS})")
        return DEFAULT_MAX_SEGMENTS
    return raw


def _reentry(doc: YamlDoc, raw: Any) -> timedelta | None:
    """``never`` (the default) → None; ``{after: 90d}`` → the wait after the last enrollment ended."""
    if raw is None or raw == "never":
        return None
    if isinstance(raw, dict) and set(raw) == {"after"}:
        try:
            return parse_duration(raw["after"])
        except ValueError as err:
            doc.problem("reentry.after", str(err))
            return None
    doc.problem("reentry", f"{raw!r}: write `reentry: never` (the default) or `reentry: {{after: 90d}}` "
                           "(counted from the end of the contact's last enrollment)")
    return None


def _event_name(doc: YamlDoc, key: str, name: Any) -> bool:
    """Check one event name written at ``key``; True when it can be used."""
    problem = name_problem(name)
    if problem is None and (close := near_built_in(name)):
        problem = (f"{name!r} is not an event the engine sends; did you mean {close!r}? (any other name is "
                   "yours to send with `followup event`, but one this close to a built-in one is taken for a typo)")
    if problem:
        doc.problem(key, problem)
    return problem is None


def _exit_on(doc: YamlDoc, raw: Any) -> tuple[str, ...]:
    """``exit_on``: a list of event names (default converted, replied, unsubscribed)."""
    if raw is None:
        return EXIT_EVENTS
    if not isinstance(raw, list):
        doc.problem("exit_on", f"must be a list of event names, e.g. [{', '.join(EXIT_EVENTS)}, order_placed]")
        return EXIT_EVENTS
    return tuple(name for i, name in enumerate(raw) if _event_name(doc, join_path("exit_on", i), name))


def _trigger(doc: YamlDoc, raw: Any, exit_on: tuple[str, ...]) -> Trigger | None:
    """``trigger: {event: NAME, sample: {...}}``: the event that enrolls a contact, once per event key."""
    raw = _mapping(doc, "trigger", raw, TRIGGER_KEYS, "a trigger", "such as trigger: {event: cart_abandoned}")
    if raw is None:
        return None
    name = raw.get("event")
    if name is None:
        doc.problem("trigger.event", "is required: the event that enrolls a contact, e.g. cart_abandoned")
        return None
    if not _event_name(doc, "trigger.event", name):
        return None
    if name in NOT_TRIGGERS:
        doc.problem("trigger.event", f"{name!r} can't start a sequence: a contact who unsubscribed is sent nothing, "
                                     "and resubscribing is not a reason to write; name the event that is")
        return None
    if name in exit_on:
        doc.problem("trigger.event", f"{name!r} is also in exit_on, so it would end the run it starts; take it out "
                                     f"of exit_on (which is [{', '.join(EXIT_EVENTS)}] when not written)")
        return None
    sample = raw.get("sample") or {}
    if not isinstance(sample, dict):
        doc.problem("trigger.sample", "must map the event's data to example values, e.g. sample: {total: 1200000}")
        sample = {}
    return Trigger(name, {str(k): v for k, v in sample.items()})


def _sample(doc: YamlDoc, raw: Any) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        doc.problem("sample", "must map extra contact columns to example values, e.g. sample: {city: تهران}")
        return {}
    sample = {}
    for key, value in raw.items():
        if isinstance(value, bool) or not isinstance(value, (str, int, float)) or value == "":
            doc.problem(join_path("sample", str(key)), f"{value!r}: give an example value as text, e.g. تهران")
        elif len(str(key)) > MAX_ATTR_KEY or len(str(value)) > MAX_ATTR_VALUE:
            doc.problem(join_path("sample", str(key)), f"a column name is at most {MAX_ATTR_KEY} characters and "
                                                       f"its value at most {MAX_ATTR_VALUE}, as in a contact")
        else:
            sample[str(key)] = str(value)
    return sample


def _utm(doc: YamlDoc, raw: Any) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        doc.problem("utm", "must map UTM parameters to values, e.g. utm: {utm_campaign: winter-2026}")
        return {}
    utm = {}
    for key, value in raw.items():
        if key not in UTM_KEYS:
            doc.problem(join_path("utm", str(key)), f"unknown key; utm takes {', '.join(UTM_KEYS)}")
        elif not isinstance(value, (str, int)) or isinstance(value, bool) or len(str(value)) > 200:
            doc.problem(join_path("utm", key), f"{value!r}: give the value as text of at most 200 characters "
                                               "(\"\" to leave the parameter out)")
        else:
            utm[key] = str(value)
    return utm


def _on_converted(doc: YamlDoc, raw: Any) -> str | None:
    """``on_converted: {enroll: thank-you-loyalty}`` → the sequence's name."""
    if raw is None:
        return None
    target = raw.get("enroll") if isinstance(raw, dict) and set(raw) == {"enroll"} else None
    if not isinstance(target, str) or not _NAME.match(target):
        doc.problem("on_converted", "write on_converted: {enroll: SEQUENCE}, e.g. {enroll: thank-you-loyalty} "
                                    "(the sequence a contact enters when it converts in this one)")
        return None
    return target


def _sequence(doc: YamlDoc, tz: ZoneInfo) -> Sequence | None:
    raw = doc.data
    if not isinstance(raw, dict):
        doc.problem("", "must be a YAML mapping with name and touches (see `followup init`)")
        return None
    for extra in sorted(set(raw) - SEQUENCE_KEYS):
        doc.problem(extra, f"unknown key; a sequence takes {', '.join(sorted(SEQUENCE_KEYS))}")
    name = str(raw.get("name") or "")
    if not _NAME.match(name):
        doc.problem("name", f"{name!r}: a sequence name uses lowercase letters, digits and dashes, e.g. winter-sale")
    exit_on = _exit_on(doc, raw.get("exit_on"))
    offer = _offer(doc, raw.get("offer"), tz)
    touches = _touches(doc, raw.get("touches"))
    journeys.check_exits(doc, touches, exit_on)  # hook: journeys
    for touch in touches:
        if touch.urgent and offer is None:
            doc.problem(join_path(join_path("touches", touch.index), "urgent"),
                        "an urgent touch needs an offer in this sequence: urgency must come from a real offer")
    seq = Sequence(
        name=name,
        description=str(raw.get("description") or ""),
        exit_on=exit_on,
        touches=touches,
        offer=offer,
        send_window=parse_window(doc, "send_window", raw.get("send_window")),
        frequency_cap=parse_cap(doc, "frequency_cap", raw.get("frequency_cap")),
        max_sms_segments=_max_segments(doc, raw.get("max_sms_segments")),
        reentry_after=_reentry(doc, raw.get("reentry")),
        sample=_sample(doc, raw.get("sample")),
        trigger=_trigger(doc, raw.get("trigger"), exit_on),
        utm=_utm(doc, raw.get("utm")),
        handoff=parse_handoff(doc, raw.get("handoff"), {t.name for t in touches}),
        on_converted=_on_converted(doc, raw.get("on_converted")),
        file=doc.path,
        hash=hashlib.sha256(doc.path.read_bytes()).hexdigest()[:16],
    )
    seq.problems = doc.problems
    return seq


def read_sequences(config_dir: Path, settings: Settings | None = None) -> tuple[dict[str, Sequence], list[Problem]]:
    """Every ``sequences/*.yaml`` in ``config_dir``: the sequences that loaded without a problem, and the
    problems of the others (so ``validate`` can still check the templates of those that loaded).

    An offer's ``expires_at`` without an offset is in the settings' timezone (UTC without settings).
    """
    tz = settings.timezone if settings is not None else ZoneInfo("UTC")
    problems: list[Problem] = []
    found: dict[str, Sequence] = {}
    docs: dict[str, YamlDoc] = {}
    folder = config_dir / "sequences"
    files = sorted(folder.glob("*.yaml")) + sorted(folder.glob("*.yml"))
    for path in files:
        try:
            doc = load_yaml(path)
        except ConfigError as err:
            problems.extend(err.problems)
            continue
        seq = _sequence(doc, tz)
        if seq is not None and seq.name in found:
            doc.problem("name", f"{seq.name!r} is also the name of {found[seq.name].file}; names must be unique")
        problems.extend(doc.problems)
        if seq is not None and not doc.problems:
            found[seq.name] = seq
            docs[seq.name] = doc
    for seq in list(found.values()):
        target = seq.on_converted
        if target is not None and (target not in found or target == seq.name):
            doc = docs[seq.name]
            why = ("is this sequence itself; name a post-purchase sequence" if target == seq.name else
                   f"names no sequence; add sequences/{target}.yaml or fix the name (known: {', '.join(sorted(found))})")
            problems.append(Problem(str(doc.path), "on_converted.enroll", f"{target!r} {why}", doc.line("on_converted")))
            found.pop(seq.name)
    return found, problems


def load_sequences(config_dir: Path, settings: Settings | None = None) -> dict[str, Sequence]:
    """Every ``sequences/*.yaml`` in ``config_dir``; raises :class:`ConfigError` listing all problems."""
    found, problems = read_sequences(config_dir, settings)
    if problems:
        raise ConfigError(problems)
    return found
