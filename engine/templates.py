"""Rendering touches: sandboxed Jinja, strict about undefined names, autoescaped HTML.

An SMS template renders the message text. An email template defines the blocks
``subject``, ``text`` and optionally ``html``. Both see ``contact``, ``offer``,
``sequence``, ``touch``, ``event`` (the key and data of the event that started the run) and ``unsubscribe_url``, and the filters ``fa_digits``,
``jalali`` and ``duration`` (in an ``html`` block ``jalali`` gives an isolated ``<bdi>``).
A contact's own data is passed as values, never as template source, so ``{{ ... }}``
in a name is printed as text.
"""
from __future__ import annotations

import time
from functools import partial
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Iterable

from jinja2.runtime import new_context
from jinja2 import (FileSystemLoader, StrictUndefined, TemplateError, TemplateSyntaxError, Undefined, UndefinedError,
                    meta, pass_context)
from jinja2.sandbox import SandboxedEnvironment
from markupsafe import Markup, escape

from .claims import literal_urgency  # the lint lives in engine.claims; re-exported for its callers
from .links import LinkError
from .sandbox import BoundedSandbox, budget
from .text import fa_digits

__all__ = [
    "Renderer", "Rendered", "ContactView", "OfferView", "EventView", "RenderError", "MissingAttr", "MissingData",
    "Attrs", "EventData",
    "jalali", "jalali_html", "human_duration", "literal_urgency",
]

JALALI_MONTHS = ["فروردین", "اردیبهشت", "خرداد", "تیر", "مرداد", "شهریور",
                 "مهر", "آبان", "آذر", "دی", "بهمن", "اسفند"]


class RenderError(Exception):
    """A template could not be rendered; ``line`` points into the template where known."""

    def __init__(self, template: str, message: str, line: int | None = None):
        self.template, self.message, self.line = template, message, line
        super().__init__(f"{template}{f':{line}' if line else ''}: {message}")


class MissingAttr(RenderError):
    """A template reads a column (``contact.attrs.NAME``) the contact does not have: that message is skipped."""

    def __init__(self, template: str, attribute: str, line: int | None = None):
        self.attribute = attribute
        super().__init__(template, f"contact has no attrs.{attribute}; add it or use | default(...)", line)


class MissingData(RenderError):
    """A template reads ``event.data.NAME`` and the run's event carried no NAME: that message is skipped."""

    def __init__(self, template: str, attribute: str, line: int | None = None):
        self.attribute = attribute
        super().__init__(template, f"the event that started this run has no data.{attribute}; send it in the "
                                   f"event's data or use | default(...)", line)


class Attrs(dict):
    """A contact's extra columns as a template sees them: a missing one names itself when used."""

    __slots__ = ()


class EventData(dict):
    """An event's data as a template sees it: a missing entry names itself when used."""

    __slots__ = ()

    @classmethod
    def of(cls, data: Any) -> Any:
        """``data`` with every mapping in it an :class:`EventData`."""
        if isinstance(data, dict):
            return cls({k: cls.of(v) for k, v in data.items()})
        if isinstance(data, list):
            return [cls.of(v) for v in data]
        return data


class _AttrUndefined(UndefinedError):
    # raised by using a missing column or event data entry: carries its name
    def __init__(self, message: str, attribute: str, kind: type = Attrs):
        self.attribute, self.kind = attribute, kind
        super().__init__(message)


@dataclass(slots=True)
class ContactView:
    """What a template may read of a contact."""

    first_name: str = ""
    last_name: str = ""
    phone: str = ""
    email: str = ""
    locale: str = "fa"
    timezone: str = "Asia/Tehran"
    attrs: Attrs = field(default_factory=Attrs)
    tags: tuple[str, ...] = ()


@dataclass(slots=True)
class OfferView:
    """What a template may read of the offer: always the stored, real numbers.

    ``offer.link`` is the message's short link to the offer's ``url:`` (made when a template reads it)."""

    code: str
    title: str
    expires_at: datetime | None
    time_left: timedelta | None
    stock_left: int | None
    url: str | None = None
    _links: Any = None

    @property
    def link(self) -> str:
        if not self.url:
            raise LinkError("offer.link needs the offer's url: in the sequence "
                            "(offer: {url: https://shop.example/coats})")
        return self._links.link(self.url)


@dataclass(frozen=True, slots=True)
class SequenceView:
    """The sequence a message belongs to (``sequence.name``; ``sequence["name"]`` reads the same)."""

    name: str
    description: str | None = None


@dataclass(slots=True)
class EventView:
    """The event that started the run (``event.key``, ``event.data``): empty for an enrollment by hand."""

    key: str | None = None
    data: EventData = field(default_factory=EventData)


@dataclass(frozen=True, slots=True)
class TouchView:
    """The touch being rendered (``touch.name``, ``touch.channel``, ``touch.index``)."""

    name: str
    channel: str
    index: int


#: the template's own views: every public field is data, nothing reaches Python internals through them.
#: Each message gets its own (a template cannot assign an attribute anyway: Jinja allows that only on its own
#: namespace objects)
_VIEWS = frozenset({ContactView, OfferView, SequenceView, TouchView, EventView})


class _Sandbox(BoundedSandbox):
    # a contact's columns and an event's data name themselves when a template uses one they lack
    def getattr(self, obj: Any, attribute: str) -> Any:
        if type(obj) is EventData:
            # only the event's entries: `event.data.items` is its `items`, never the dict method
            return self._column(obj, attribute, obj[attribute] if attribute in obj else self.undefined(obj=obj, name=attribute))
        value = super().getattr(obj, attribute)
        return self._column(obj, attribute, value)

    def getitem(self, obj: Any, argument: Any) -> Any:
        return self._column(obj, argument, super().getitem(obj, argument))

    @staticmethod
    def _column(obj: Any, name: Any, value: Any) -> Any:
        kind = type(obj)
        if (kind is Attrs or kind is EventData) and isinstance(value, Undefined):
            # strict like every undefined name, so `| default(...)` and `is defined` still work
            return StrictUndefined(obj=obj, name=str(name), exc=partial(_AttrUndefined, attribute=str(name), kind=kind))
        return value

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        # the views hold only data fields: any but an underscore name may be read
        if type(obj) in _VIEWS:
            return not attr.startswith("_")
        return super().is_safe_attribute(obj, attr, value)


@dataclass(frozen=True)
class Rendered:
    text: str
    subject: str | None = None
    html: str | None = None


def jalali(value: Any, with_time: bool = False) -> str:
    """A date in the Jalali calendar with Persian digits: ``۱۶ آذر ۱۴۰۵``."""
    if value is None:
        return ""
    import jdatetime  # here, not at the top: only templates that show Jalali dates need it

    if isinstance(value, datetime):
        jd = jdatetime.datetime.fromgregorian(datetime=value)
    else:
        jd = jdatetime.date.fromgregorian(date=value)
    out = f"{jd.day} {JALALI_MONTHS[jd.month - 1]} {jd.year}"
    if with_time and isinstance(value, datetime):
        out += f"، ساعت {value.hour:02d}:{value.minute:02d}"
    return fa_digits(out)


def jalali_html(value: Any, with_time: bool = False) -> Markup:
    """:func:`jalali` isolated for HTML: ``<bdi dir="rtl" lang="fa">۱۶ آذر ۱۴۰۵، ساعت ۲۲:۰۰</bdi>``.

    Without the isolate, a Jalali date and time beside left-to-right text (or a Gregorian date) is
    reordered by the bidi algorithm: the day's number lands after «ساعت» and reads as the hour.
    """
    text = jalali(value, with_time)
    return Markup(f'<bdi dir="rtl" lang="fa">{escape(text)}</bdi>') if text else Markup("")


def human_duration(value: timedelta | None, locale: str = "fa") -> str:
    """``timedelta(days=2, hours=3)`` → ``۲ روز و ۳ ساعت`` (fa) or ``2 days 3 hours`` (en)."""
    if value is None:
        return ""
    seconds = max(0, int(value.total_seconds()))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    parts = [(days, "روز", "day"), (hours, "ساعت", "hour"), (minutes, "دقیقه", "minute")]
    shown = [(n, fa, en) for n, fa, en in parts if n][:2] or [(0, "دقیقه", "minute")]
    if locale == "fa":
        return " و ".join(fa_digits(f"{n} {fa}") for n, fa, _ in shown)
    return " ".join(f"{n} {en}{'s' if n != 1 else ''}" for n, _, en in shown)


@pass_context
def _duration_filter(ctx, value: timedelta | None) -> str:
    contact = ctx.get("contact")
    return human_duration(value, getattr(contact, "locale", "fa") or "fa")


class Renderer:
    """Loads and renders templates from ``templates_dir``."""

    #: how long a loaded template is used before its file is checked for changes again
    RECHECK_SECONDS = 2.0

    def __init__(self, templates_dir: Path):
        self.templates_dir = templates_dir
        self.text_env = self._env(autoescape=False)
        self.html_env = self._env(autoescape=True)
        self._loaded: dict[tuple[int, str], tuple[float, Any]] = {}

    def _load(self, env: SandboxedEnvironment, name: str) -> tuple[float, Any, dict[str, Any]]:
        # Jinja checks a template's file on every get_template; on the hot path once in a while is enough
        key = (id(env), name)
        hit = self._loaded.get(key)
        clock = time.monotonic()
        if hit is None or clock - hit[0] > self.RECHECK_SECONDS:
            template = env.get_template(name)
            hit = self._loaded[key] = (clock, template, dict(template.globals))
        return hit

    def _get(self, env: SandboxedEnvironment, name: str):
        return self._load(env, name)[1]

    def preload(self, names: Iterable[str]) -> None:
        """Compile templates now (a worker's start), not on the first message due; a broken one is left
        for :meth:`render` to report against the touch that uses it.

        Compiling evaluates nothing of a template (see :mod:`engine.sandbox`); a template nested too
        deeply to parse is left for :meth:`render` too, so no template can stop a worker from starting.
        """
        for name in names:
            try:
                self._load(self.text_env, name)
            except (TemplateError, RecursionError, MemoryError):
                pass

    def _render_text(self, name: str, context: dict[str, Any]) -> str:
        """``Template.render(context)``, the template's globals merged from the plain dict kept with it rather
        than from their ``ChainMap`` over the environment's for every message (6% of a worker's tick:
        ``python -m bench.plain_ab --only render``)."""
        _, template, globals_ = self._load(self.text_env, name)
        ctx = new_context(template.environment, template.name, template.blocks, {**globals_, **context}, True,
                          globals_)
        try:
            return template.environment.concat(template.root_render_func(ctx))
        except Exception:
            template.environment.handle_exception()  # raises it again, with the template's lines in its traceback
            raise

    def _env(self, autoescape: bool) -> SandboxedEnvironment:
        env = _Sandbox(
            loader=FileSystemLoader(str(self.templates_dir)),
            undefined=StrictUndefined,
            autoescape=autoescape,
            trim_blocks=True,
            lstrip_blocks=True,
            auto_reload=True,
        )
        # in HTML a Jalali date comes isolated, so the text around it cannot reorder it
        env.add_short_filters(fa_digits=fa_digits, jalali=jalali_html if autoescape else jalali,
                              duration=_duration_filter)
        return env

    def source(self, name: str) -> str:
        try:
            return self.text_env.loader.get_source(self.text_env, name)[0]
        except TemplateError as err:
            raise RenderError(name, f"template not found under {self.templates_dir}") from err

    def variables(self, name: str) -> set[str]:
        """Top-level names a template uses (to check an urgent template really speaks of ``offer``)."""
        try:
            return meta.find_undeclared_variables(self.text_env.parse(self.source(name)))
        except TemplateSyntaxError as err:
            raise RenderError(name, err.message or "syntax error", err.lineno) from err

    def render(self, name: str, channel: str, context: dict[str, Any]) -> Rendered:
        """Render one touch under a render budget (:mod:`engine.sandbox`).

        Raises :class:`RenderError` with the template line on any failure, whatever the template does.
        """
        try:
            with budget():
                if channel == "sms":
                    return Rendered(text=self._render_text(name, context).strip())
                return self._render_email(name, context)
        except RenderError:
            raise
        except LinkError as err:
            raise RenderError(name, str(err), _template_line(err, name)) from err
        except _AttrUndefined as err:
            missing = MissingData if err.kind is EventData else MissingAttr
            raise missing(name, err.attribute, _template_line(err, name)) from err
        except TemplateSyntaxError as err:
            raise RenderError(name, err.message or "syntax error", err.lineno) from err
        except TemplateError as err:
            raise RenderError(name, _explain(err), _template_line(err, name)) from err
        except RecursionError as err:
            raise RenderError(name, "the template calls itself without end (a macro, include or extends that "
                                    "recurses, or expressions nested too deeply); RecursionError") from err
        except MemoryError as err:
            raise RenderError(name, "the template needs more memory than there is; MemoryError") from err
        except Exception as err:  # noqa: BLE001 - whatever a template does fails its message, never the worker
            raise RenderError(name, f"{type(err).__name__}: {err}", _template_line(err, name)) from err

    def _render_email(self, name: str, context: dict[str, Any]) -> Rendered:
        text_tpl = self._get(self.text_env, name)
        missing = {"subject", "text"} - set(text_tpl.blocks)
        if missing:
            raise RenderError(name, f"an email template must define the blocks subject and text "
                                    f"(missing: {', '.join(sorted(missing))}); add {{% block subject %}}...{{% endblock %}}")

        def block(tpl, block_name: str) -> str:
            return "".join(tpl.blocks[block_name](tpl.new_context(context))).strip()

        subject = " ".join(block(text_tpl, "subject").split())
        html = None
        if "html" in text_tpl.blocks:
            html = block(self._get(self.html_env, name), "html")
        return Rendered(text=block(text_tpl, "text"), subject=subject, html=html)


def _explain(err: TemplateError) -> str:
    message = getattr(err, "message", None) or str(err)
    if "is undefined" in message:
        return f"{message}; available: contact, offer, sequence, touch, event, unsubscribe_url, link(...)"
    return message


def _template_line(err: BaseException, name: str) -> int | None:
    tb = err.__traceback__
    line = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename.endswith(name):
            line = tb.tb_lineno
        tb = tb.tb_next
    return line
