"""``followup validate``: settings, sequences, templates (rendered against a sample contact with the extra
columns real contacts have, see :mod:`engine.samples`), providers, honest urgency and informational touches
without offers — every problem as ``FILE[:LINE]: KEY.PATH: what is wrong and how to fix it``."""
from __future__ import annotations

import os


from .claims import claim_problems
from .clock import now
from .config import Config, read_config
from .deadlines import both_ways
from .errors import ConfigError, Problem
from .handoff_rules import public_url_warning
from .holiday_check import holiday_deadline_problems
from .journeys import each_template, variant_problems
from .kinds import INFORMATIONAL
from .links import SampleLinks
from .render import template_context
from .samples import RECENT_CONTACTS, database_attrs, read_existing, sample_contact
from .sequences import Sequence
from .sms import sms_info, with_footer
from .provider_setup import build_providers
from .templates import EventData, EventView, MissingAttr, MissingData, RenderError, SequenceView, TouchView

__all__ = ["validate", "render_touch_sample"]


def _offer_row(seq: Sequence) -> dict | None:
    if not seq.offer:
        return None
    return {"code": seq.offer.code, "title": seq.offer.title, "stock": seq.offer.stock, "redeemed": 0}


def render_touch_sample(config: Config, seq: Sequence, touch, contact: dict | None = None, at=None,
                        enrolled_at=None, offer_row: dict | None = None):
    """Render one touch for a sample (or given) contact, as preview and validate show it.

    ``at`` is when the touch goes out; the offer's deadline counts from ``enrolled_at`` (default: ``at``);
    ``offer_row`` is the stored offer (default: the sequence's, none redeemed).
    A triggered sequence's ``event.data`` is its ``trigger.sample``.
    """
    at = at or now()
    contact = contact or sample_contact(config, seq)
    from zoneinfo import ZoneInfo

    tz = ZoneInfo(contact.get("timezone") or config.settings.timezone.key)
    deadline = seq.offer.deadline_for(enrolled_at or at) if seq.offer else None
    ctx = template_context(config, contact=contact, offer_spec_title=seq.offer.title if seq.offer else None,
                           offer_row=offer_row or _offer_row(seq), deadline=deadline, tz=tz, at=at,
                           sequence=SequenceView(seq.name, seq.description),
                           touch=TouchView(touch.name, touch.channel, touch.index),
                           event=EventView("sample", EventData.of(seq.trigger.sample)) if seq.trigger else None,
                           links=SampleLinks(config.settings), offer_url=seq.offer.url if seq.offer else None)
    return config.renderer.render(touch.template, touch.channel, ctx)


def _template_problems(config: Config, seq: Sequence, attrs: dict[str, str]) -> list[Problem]:
    problems = []
    contact = sample_contact(config, seq, attrs)
    seq_file = os.path.relpath(seq.file) if seq.file else seq.name
    for touch in each_template(seq.touches):  # hook: journeys (every variant's template too)
        key = f"touches[{touch.index}].template"
        tpl_path = os.path.relpath(config.settings.templates_dir / touch.template)
        if not (config.settings.templates_dir / touch.template).is_file():
            problems.append(Problem(seq_file, key, f"template {touch.template!r} not found under "
                                                   f"{os.path.relpath(config.settings.templates_dir)}; create it or fix the path",
                                    touch.line))
            continue
        try:
            rendered = render_touch_sample(config, seq, touch, contact)
            used = config.renderer.variables(touch.template)
        except MissingAttr as err:
            name = err.attribute
            problems.append(Problem(tpl_path, "", f"contact.attrs.{name}: no contact has this column (none of the "
                                                  f"{RECENT_CONTACTS:,} most recent in the database), so the "
                                                  f"message would be skipped; import contacts with a {name} column, "
                                                  f"declare it in {seq_file} as sample: {{{name}: ...}}, or write "
                                                  f"{{{{ contact.attrs.{name} | default('...') }}}} "
                                                  f"(used by {seq.name} touch {touch.name!r})", err.line))
            continue
        except MissingData as err:
            name = err.attribute
            event = seq.trigger.event if seq.trigger else "EVENT"
            problems.append(Problem(tpl_path, "", f"event.data.{name}: not in the sample event data of {seq_file}, "
                                                  f"so a run whose event lacks it would skip this message; declare "
                                                  f"trigger: {{event: {event}, sample: {{{name}: ...}}}}, or write "
                                                  f"{{{{ event.data.{name} | default('...') }}}} "
                                                  f"(used by {seq.name} touch {touch.name!r})", err.line))
            continue
        except RenderError as err:
            problems.append(Problem(tpl_path, "", f"{err.message} (used by {seq.name} touch {touch.name!r})", err.line))
            continue
        if touch.kind == INFORMATIONAL and "offer" in used:
            problems.append(Problem(seq_file, f"touches[{touch.index}].kind",
                                    f"touch {touch.name!r} is informational but its template {touch.template} uses "
                                    "`offer`: an offer is advertising, which a service line must not carry; drop "
                                    "the offer from the template or make the touch kind: promotional", touch.line))
        if touch.channel == "sms" and not rendered.text:
            problems.append(Problem(tpl_path, "", "renders an empty SMS; write the message text"))
        if touch.channel == "email" and not rendered.subject:
            problems.append(Problem(tpl_path, "", "renders an empty subject; fill {% block subject %}"))
        if touch.channel == "email" and "unsubscribe_url" not in used:
            problems.append(Problem(tpl_path, "", f"touch {touch.name!r} sends an email without an unsubscribe "
                                                  "link; add {% if unsubscribe_url %}<a href=\"{{ unsubscribe_url }}\">"
                                                  "Unsubscribe</a>{% endif %}", warning=True))
        if touch.channel == "sms":
            info = sms_info(with_footer(rendered.text, config.settings.footer(None)))
            if info.segments > seq.max_sms_segments:
                problems.append(Problem(tpl_path, "", f"the SMS is {info.segments} segments ({info.describe()}) for "
                                                      f"the sample contact, over max_sms_segments "
                                                      f"{seq.max_sms_segments} of {seq.name}: such messages are "
                                                      f"skipped; shorten it or raise max_sms_segments in {seq_file}"))
        if touch.urgent and "offer" not in used and not touch.variants:
            problems.append(Problem(tpl_path, "", f"touch {touch.name!r} is urgent but the template never uses "
                                                  "`offer`; speak of offer.expires_at, offer.time_left or "
                                                  "offer.stock_left, or drop `urgent: true`"))
        problems.extend(claim_problems(config.renderer.source(touch.template), tpl_path, seq_file, seq.name, touch))
    problems.extend(variant_problems(config, seq, seq_file))  # hook: journeys
    return problems


def _webhook_key_problems(config: Config) -> list[Problem]:
    """A Mailgun provider without its webhook signing key refuses every event Mailgun sends."""
    problems = []
    for channel, entries in config.settings.providers.items():
        for i, entry in enumerate(entries):
            if entry.get("type") == "mailgun" and not (entry.get("webhook_signing_key") or entry.get("webhook_key")):
                problems.append(Problem(
                    os.path.relpath(config.settings.path), f"providers.{channel}[{i}].webhook_signing_key",
                    "is missing, so every Mailgun webhook (bounces, complaints, unsubscribes) is refused; set it to "
                    "the HTTP webhook signing key from Mailgun's dashboard (not the API key), e.g. "
                    "webhook_signing_key: ${MAILGUN_WEBHOOK_SIGNING_KEY}", entry.get("_line")))
    return problems


def validate(directory=None) -> tuple[Config | None, list[Problem]]:
    """Check everything; return the config (when settings.yaml loads) and every problem found.

    The templates of every sequence that loaded are checked even when another sequence has problems."""
    try:
        config, problems = read_config(directory)
    except ConfigError as err:
        return None, err.problems
    if config is None:
        return None, problems
    try:
        build_providers(config)
    except ConfigError as err:
        problems.extend(err.problems)
    problems.extend(_webhook_key_problems(config))
    problems.extend(public_url_warning(config.sequences, config.settings))
    attrs = database_attrs(config.settings.database_url)
    for seq in config.sequences.values():
        problems.extend(_template_problems(config, seq, attrs))
        problems.extend(holiday_deadline_problems(config, seq))
        channels = {t.channel for t in seq.touches}
        for channel in channels:
            if not config.settings.providers.get(channel):
                problems.append(Problem(os.path.relpath(seq.file), "touches",
                                        f"uses {channel} but settings.yaml has no providers.{channel}"))
        if seq.offer and seq.offer.expires_at and seq.offer.expires_at < now():
            problems.append(Problem(os.path.relpath(seq.file), "offer.expires_at",
                                    f"the offer ended at {both_ways(seq.offer.expires_at, config.settings.timezone)}; "
                                    "urgent touches will all be "
                                    "skipped — move the deadline or remove the offer"))
    from .versions import version_problems

    problems.extend(read_existing(config.settings.database_url, lambda conn: version_problems(conn, config)) or [])
    if config.settings.unsubscribe_url and not config.settings.secret_key:
        problems.append(Problem(os.path.relpath(config.settings.path), "secret_key",
                                "unsubscribe_url needs a secret_key to sign links; set secret_key: ${FOLLOWUP_SECRET_KEY}"))
    return config, problems
