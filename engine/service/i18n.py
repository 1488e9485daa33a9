"""The dashboard's words in each locale: one dict per locale, read by the templates' ``t()``.

``translate(locale, key, **values)`` formats the entry with ``str.format``; a key missing from a locale
falls back to English, and a key missing everywhere is an error (a test checks that every ``t("...")`` in
the templates exists in both dicts). Words for stored values (events, statuses, channels) are the keys
``ev:<value>``; a value with no entry is shown as it is. The KPI page's hover text is ``kpi.def.<figure>``: in
English the engine's own definitions (:data:`engine.kpi.DEFINITIONS`, :data:`engine.kpi_series.STEPS`, which the
README lists), in Persian the same said in Persian. The lead page's refusals are ``lead.error.<code>``.
``reason_phrases`` turns the engine's reasons (English, with codes like ``offer_expired:``) into words of the
locale; their timestamps are shown by :mod:`.pages` in the local time zone.
"""
from __future__ import annotations

import re

from ..durations import parse_duration
from ..kpi import DEFINITIONS
from ..kpi_series import STEPS
from ..templates import human_duration

__all__ = ["LOCALES", "CATALOG", "text", "translate", "reason_phrases", "duration_words", "TIMESTAMP"]

LOCALES = ("fa", "en")

EN: dict[str, str] = {
    "dir": "ltr", "switch": "فارسی", "switch_to": "fa",
    "nav.overview": "Overview", "nav.log": "Delivery log", "nav.sequences": "Sequences",
    "nav.kpi": "KPIs",
    "kpi.since": "last",
    "kpi.by": "by",
    "kpi.all": "all",
    "kpi.figure": "figure",
    "kpi.by_source": "source",
    "kpi.by_sequence": "sequence",
    "kpi.by_rep": "rep",
    "kpi.by_month": "month",
    "kpi.leads": "leads",
    "kpi.handoffs": "handoffs",
    "kpi.conversions": "conversions",
    "kpi.conversion_rate": "conversion rate",
    "kpi.handoff_win_rate": "handoffs won",
    "kpi.median_days_to_convert": "median days to convert",
    "kpi.revenue": "revenue",
    "kpi.revenue_per_lead": "revenue per lead",
    "kpi.lead_quality": "lead quality",
    "kpi.customer_lifetime_value": "customer lifetime value",
    "kpi.repeat_purchase_rate": "repeat purchase rate",
    "kpi.repeat_customer_value": "repeat customer value",
    "kpi.repeat_after_loyalty": "purchases after loyalty",
    "kpi.cost": "cost",
    "kpi.return_on_cost": "return on cost",
    "kpi.top_objections": "top objections",
    "kpi.funnel": "Funnel per sequence",
    "kpi.daily": "Sends, clicks and conversions per day",
    "kpi.revenue_by_source": "Revenue by source",
    "kpi.objections": "Objections",
    "kpi.enrolled": "enrolled",
    "kpi.sent": "sent",
    "kpi.clicked": "clicked",
    "kpi.converted": "converted",
    "kpi.sends": "sends",
    "kpi.clicks": "clicks",
    "kpi.touch_funnel": "Funnel per touch",
    "kpi.touch_sent": "sent",
    "kpi.touch_delivered": "delivered",
    "kpi.touch_clicked": "clicked",
    "kpi.touch_converted": "converted",
    **{f"kpi.def.{key}": words for key, words in {**DEFINITIONS, **STEPS}.items()},
    "lead.title": "Lead", "lead.invalid": "This lead link is not valid",
    "lead.invalid_text": "The link of this lead's page is wrong or was revoked. Ask for a new one.",
    "lead.expired": "This lead link has expired",
    "lead.expired_text": "Ask for a new link (followup lead link KEY --renew).",
    "lead.phone": "Phone:", "lead.email": "Email:", "lead.score": "Score:", "lead.sequence": "Sequence:",
    "lead.fired_by": "Handed off because:", "lead.rep": "Rep:", "lead.saved": "The outcome is saved.",
    "lead.recorded": "Recorded outcome:", "lead.value_of": "value {value}", "lead.objection_of": "objection:",
    "lead.follow_up_of": "follow up on:", "lead.outcome": "Outcome", "lead.won": "won", "lead.value": "value",
    "lead.lost": "lost", "lead.objection": "objection", "lead.own_words": "or in your own words",
    "lead.later": "follow up later", "lead.date": "date", "lead.note": "note", "lead.save": "Save the outcome",
    "lead.error.bad_form": "This form could not be read; open the page again.",
    "lead.error.cross_site": "This form was posted from another site; open the page again.",
    "lead.error.not_a_number": "The value must be a number, e.g. 1200000.",
    "lead.error.not_an_outcome": "Choose an outcome: won, lost or follow up later.",
    "lead.error.too_long": "The {what} must be at most {limit} characters.",
    "lead.error.needs_value": "A won lead needs its value: a number from 0, e.g. 1200000.",
    "lead.error.needs_objection": "A lost lead needs its objection: one of the list or your own words.",
    "lead.error.not_a_date": "{value} is not a date; write it as YYYY-MM-DD, e.g. 2026-12-20.",
    "lead.error.date_from_today": "Follow up later needs a date from today ({today}) on.",
    "lead.error.already_won": "This lead is already recorded as won; its sale is counted once.",
    "lead.what.note": "note", "lead.what.objection": "objection", "lead.error.input": "{text}",
    "overview.webhooks": "Webhooks",
    "col.url": "URL",
    "col.pending": "pending",
    "col.failing_since": "failing since",
    "search.label": "contact", "search.placeholder": "contact: phone, email, id", "search.open": "Open",
    "logout": "Log out", "times_in": "Times in {tz}; hover a date for the {other} one.", "other_calendar": "Jalali",
    "login.title": "Log in", "login.heading": "followup dashboard", "login.secret": "Dashboard password or API key",
    "login.submit": "Log in", "login.cross_site": "This form was posted from another site; open /login here.",
    "login.throttled": "Too many failed logins. Try again in {wait} s.", "login.wrong": "Wrong password or key.",
    "overview.last_hour": "Last hour", "overview.last_day": "Last day", "overview.queue": "Queue",
    "overview.due": "due now", "overview.deferred": "deferred", "overview.lag": "lag (oldest due)",
    "overview.seconds": "{n} s", "overview.last_tick": "last tick", "overview.never": "never",
    "overview.providers": "Providers", "overview.until": "(until {when})",
    "col.name": "name", "col.type": "type", "col.channel": "channel", "col.role": "role", "col.state": "state",
    "col.error_rate": "error rate (1 h)", "col.last_error": "last error", "col.credit": "credit",
    "col.at": "at", "col.contact": "contact", "col.sequence": "sequence", "col.touch": "touch", "col.ch": "ch",
    "col.provider": "provider", "col.event": "event", "col.reason": "reason", "col.status": "status",
    "col.enrolled": "enrolled", "col.ended": "ended", "col.offer_deadline": "offer deadline", "col.due": "due",
    "col.sent": "sent", "col.what": "what", "col.detail": "reason / detail",
    "none": "none", "unknown": "unknown", "any": "any",
    "log.filter": "Filter", "log.no_rows": "no rows", "log.older": "Older →",
    "log.no_contact": "No contact matches that key.",
    "contact.tags": "tags", "contact.enrollments": "Enrollments", "contact.messages": "Messages",
    "contact.timeline": "Timeline", "contact.urgent": "(urgent)", "contact.value": "value {value}",
    "contact.unnamed": "contact {id}", "contact.score": "Lead score", "contact.handoffs": "Handed to sales",
    "contact.rep": "rep", "contact.outcome": "outcome",
    "seq.funnel": "{enrolled} enrolled → {converted} converted ({rate}%), revenue {revenue}",
    "seq.offer": "Offer", "seq.ends": "ends {when}", "seq.ends_after": "ends {after} after each enrollment",
    "seq.no_deadline": "no deadline", "seq.stock_left": "{left} of {stock} left", "seq.no_stock": "no stock limit",
    "seq.preview": "Preview", "seq.subject": "Subject:", "percent": "{n}%",
    "ev:offer_expired": "offer expired", "ev:sold_out": "sold out", "ev:requeued": "queued again",
    "ctl.heading": "State", "col.version": "version", "col.active": "active", "col.due_24h": "due in 24 h",
    "col.next_due": "next due", "col.actions": "actions", "ctl.pause": "Pause", "ctl.resume": "Resume",
    "ctl.stop": "Stop…", "ctl.unenroll": "Unenroll",
    "ctl.done.pause": "{name} is paused: its due messages wait until it is resumed.",
    "ctl.done.resume": "{name} is active again; what waited is due now.",
    "ctl.done.stop": "{name} is stopped: its enrollments ended and their pending messages were cancelled.",
    "ctl.confirm_title": "Stop {name}?",
    "ctl.confirm_text": "{active} active enrollment(s) end as stopped and their pending messages are cancelled "
                        "({due} due in the next 24 h). The sequence takes no new contacts until it is resumed.",
    "ctl.confirm": "Stop {name}", "ctl.cancel": "Cancel", "ctl.refused": "Not done",
    "ev:stopped": "stopped", "ev:orphaned": "orphaned", "ev:unenrolled": "unenrolled", "ev:handed_off": "handed off",
    "ev:follow_up_later": "follow up later",
    "seq.engagement": "{clicks} messages clicked ({rate}% of sent) → {conversions} conversions attributed, "
                      "revenue {revenue} ({per_sent} per message sent)",
    "col.clicks": "clicks", "col.click_rate": "click rate", "col.conversions": "conversions",
    "col.revenue": "revenue", "col.revenue_per_sent": "revenue / sent",
    "contact.credited": "credited to {touch} (by {by})", "contact.not_attributed": "not attributed",
    "ev:clicked_bot": "clicked (bot)", "ev:opened_bot": "opened (bot)", "ev:engagement": "engagement",
    "ev:link": "short link", "ev:pixel": "open pixel",
    "ab.heading": "A/B test of {touch} ({metric})", "ab.running": "running: too few sends yet",
    "ab.inconclusive": "inconclusive: no variant is clearly best", "ab.winner": "winner: {variant}",
    "col.variant": "variant", "col.p_best": "P(best)",
}

FA: dict[str, str] = {
    "dir": "rtl", "switch": "English", "switch_to": "en",
    "nav.overview": "نمای کلی", "nav.log": "گزارش ارسال", "nav.sequences": "دنباله‌ها",
    "nav.kpi": "شاخص‌ها",
    "kpi.since": "بازه",
    "kpi.by": "بر اساس",
    "kpi.all": "همه",
    "kpi.figure": "شاخص",
    "kpi.by_source": "منبع",
    "kpi.by_sequence": "دنباله",
    "kpi.by_rep": "فروشنده",
    "kpi.by_month": "ماه",
    "kpi.leads": "سرنخ‌ها",
    "kpi.handoffs": "واگذاری به فروش",
    "kpi.conversions": "خریدها",
    "kpi.conversion_rate": "نرخ تبدیل",
    "kpi.handoff_win_rate": "واگذاری‌های موفق",
    "kpi.median_days_to_convert": "میانه روز تا خرید",
    "kpi.revenue": "درآمد",
    "kpi.revenue_per_lead": "درآمد هر سرنخ",
    "kpi.lead_quality": "کیفیت سرنخ",
    "kpi.customer_lifetime_value": "ارزش طول عمر مشتری",
    "kpi.repeat_purchase_rate": "نرخ خرید تکراری",
    "kpi.repeat_customer_value": "ارزش مشتری تکراری",
    "kpi.repeat_after_loyalty": "خرید پس از وفاداری",
    "kpi.cost": "هزینه",
    "kpi.return_on_cost": "بازده هزینه",
    "kpi.top_objections": "اعتراض‌های اصلی",
    "kpi.funnel": "قیف هر دنباله",
    "kpi.daily": "ارسال، کلیک و خرید در روز",
    "kpi.revenue_by_source": "درآمد بر اساس منبع",
    "kpi.objections": "اعتراض‌ها",
    "kpi.enrolled": "ثبت‌نام",
    "kpi.sent": "ارسال",
    "kpi.clicked": "کلیک",
    "kpi.converted": "خرید",
    "kpi.sends": "ارسال‌ها",
    "kpi.clicks": "کلیک‌ها",
    "kpi.touch_funnel": "قیف هر پیام",
    "kpi.touch_sent": "ارسال",
    "kpi.touch_delivered": "تحویل",
    "kpi.touch_clicked": "کلیک",
    "kpi.touch_converted": "خرید",
    "kpi.def.leads": "مخاطبانی که در بازه در یک دنباله ثبت‌نام شدند (ثبت‌نام فروشنده‌ها در دنبالهٔ ‎_sales‎ حساب نمی‌شود)",
    "kpi.def.handoffs": "سرنخ‌هایی که در بازه به یک فروشنده واگذار شدند",
    "kpi.def.conversions": "رویدادهای خرید (converted) در بازه",
    "kpi.def.conversion_rate": "سهم سرنخ‌های بازه که پس از ثبت‌نام خرید کردند",
    "kpi.def.handoff_win_rate": "سهم واگذاری‌های بازه که فروشنده‌شان آن‌ها را «فروش» ثبت کرد",
    "kpi.def.median_days_to_convert": "میانهٔ روزها از ثبت‌نام هر سرنخ تا نخستین خریدش پس از آن",
    "kpi.def.revenue": "جمع مبلغ خریدهای بازه",
    "kpi.def.revenue_per_lead": "درآمد تقسیم بر تعداد سرنخ‌ها",
    "kpi.def.lead_quality": "سهم واگذاری‌های موفق، بر اساس منبع سرنخ (source یا utm_source مخاطب)",
    "kpi.def.customer_lifetime_value": "میانگین جمع همهٔ خریدهای مخاطبانی که در بازه خرید کردند، از آغاز تا کنون",
    "kpi.def.repeat_purchase_rate": "سهمی از همان مخاطبان که دو خرید یا بیشتر دارند",
    "kpi.def.repeat_customer_value": "میانگین ارزش طول عمر مخاطبانی که دو خرید یا بیشتر دارند",
    "kpi.def.repeat_after_loyalty": "خریدهای بازه از مخاطبانی که پیش‌تر وارد دنبالهٔ پس از خرید (on_converted) شده بودند",
    "kpi.def.cost": "بخش‌های پیامک × price_per_segment سرویس‌دهنده به‌اضافهٔ ایمیل‌ها × price_per_email آن، برای "
                    "پیام‌هایی که در بازه فرستاده شدند",
    "kpi.def.return_on_cost": "(درآمد − هزینه) ÷ هزینه",
    "kpi.def.top_objections": "اعتراض‌هایی که فروشنده‌ها برای سرنخ‌های از دست رفتهٔ بازه ثبت کردند: تعداد و سهم",
    "kpi.def.enrolled": "اجراهایی از این دنباله که در بازه ثبت‌نام شدند (مخاطبی که دو بار ثبت‌نام شد دو بار شمرده می‌شود)",
    "kpi.def.sent": "از آن اجراها، آن‌هایی که تا پایان بازه پیامی فرستاده بودند",
    "kpi.def.clicked": "از آن اجراها، آن‌هایی که تا پایان بازه انسانی (نه ربات) روی یکی از پیام‌هایشان کلیک کرده بود",
    "kpi.def.converted": "از آن اجراها، آن‌هایی که مخاطبشان در بازه خریدی به حساب این دنباله داشت (منتسب به یکی از "
                         "پیام‌هایش، فروشی به نام آن، یا سرنخی از آن که فروشنده «فروش» ثبت کرد)",
    "kpi.def.touch_sent": "ارسال‌های این پیام در بازه",
    "kpi.def.touch_delivered": "از آن ارسال‌ها، آن‌هایی که گزارش تحویل رسیدنشان را تأیید کرد",
    "kpi.def.touch_clicked": "از آن ارسال‌ها، آن‌هایی که انسانی (نه ربات) رویشان کلیک کرد",
    "kpi.def.touch_converted": "خریدهای منتسب به آن ارسال‌ها (آخرین پیام کلیک‌شده در بازهٔ کلیک، وگرنه آخرین پیامی "
                               "که در بازهٔ ارسال به مخاطب رسید)",
    "lead.title": "سرنخ", "lead.invalid": "این پیوند معتبر نیست",
    "lead.invalid_text": "پیوند صفحهٔ این سرنخ نادرست است یا باطل شده. پیوند تازه بخواهید.",
    "lead.expired": "مهلت این پیوند گذشته است",
    "lead.expired_text": "پیوند تازه بخواهید (followup lead link KEY --renew).",
    "lead.phone": "تلفن:", "lead.email": "ایمیل:", "lead.score": "امتیاز:", "lead.sequence": "کارزار:",
    "lead.fired_by": "دلیل واگذاری:", "lead.rep": "فروشنده:", "lead.saved": "نتیجه ثبت شد.",
    "lead.recorded": "نتیجهٔ ثبت‌شده:", "lead.value_of": "مبلغ {value}", "lead.objection_of": "اعتراض:",
    "lead.follow_up_of": "تاریخ پیگیری:", "lead.outcome": "نتیجه", "lead.won": "فروش", "lead.value": "مبلغ",
    "lead.lost": "از دست رفت", "lead.objection": "اعتراض", "lead.own_words": "یا به قلم خودتان",
    "lead.later": "پیگیری بعدی", "lead.date": "تاریخ", "lead.note": "یادداشت", "lead.save": "ثبت نتیجه",
    "lead.error.bad_form": "این فرم خوانده نشد؛ صفحه را دوباره باز کنید.",
    "lead.error.cross_site": "این فرم از جای دیگری ارسال شده است؛ صفحه را دوباره باز کنید.",
    "lead.error.not_a_number": "مبلغ باید عدد باشد، مثلاً ۱۲۰۰۰۰۰.",
    "lead.error.not_an_outcome": "یک نتیجه را برگزینید: فروش، از دست رفت یا پیگیری بعدی.",
    "lead.error.too_long": "{what} باید حداکثر {limit} نویسه باشد.",
    "lead.error.needs_value": "برای فروش، مبلغ آن را بنویسید: عددی از ۰ به بالا، مثلاً ۱۲۰۰۰۰۰.",
    "lead.error.needs_objection": "برای سرنخ از دست رفته، اعتراض را برگزینید یا به قلم خودتان بنویسید.",
    "lead.error.not_a_date": "«{value}» تاریخ نیست؛ آن را به شکل YYYY-MM-DD بنویسید، مثلاً 2026-12-20.",
    "lead.error.date_from_today": "برای پیگیری بعدی تاریخی از امروز ({today}) به بعد لازم است.",
    "lead.error.already_won": "این سرنخ پیش‌تر «فروش» ثبت شده است؛ هر فروش یک بار شمرده می‌شود.",
    "lead.what.note": "یادداشت", "lead.what.objection": "اعتراض", "lead.error.input": "{text}",
    "overview.webhooks": "وب‌هوک‌ها",
    "col.url": "نشانی",
    "col.pending": "در صف",
    "col.failing_since": "ناموفق از",
    "search.label": "مخاطب", "search.placeholder": "مخاطب: تلفن، ایمیل، شناسه", "search.open": "باز کن",
    "logout": "خروج", "times_in": "زمان‌ها به وقت {tz}؛ برای تاریخ {other} نشانگر را روی تاریخ نگه دارید.",
    "other_calendar": "میلادی",
    "login.title": "ورود", "login.heading": "داشبورد followup", "login.secret": "گذرواژهٔ داشبورد یا کلید API",
    "login.submit": "ورود", "login.cross_site": "این فرم از سایت دیگری فرستاده شده؛ ‎/login‎ را همین‌جا باز کنید.",
    "login.throttled": "ورود ناموفق زیاد بود. {wait} ثانیهٔ دیگر دوباره امتحان کنید.",
    "login.wrong": "گذرواژه یا کلید نادرست است.",
    "overview.last_hour": "یک ساعت گذشته", "overview.last_day": "یک روز گذشته", "overview.queue": "صف",
    "overview.due": "موعد رسیده", "overview.deferred": "عقب‌افتاده", "overview.lag": "تأخیر (قدیمی‌ترین موعد)",
    "overview.seconds": "{n} ثانیه", "overview.last_tick": "آخرین دور کارگر", "overview.never": "هرگز",
    "overview.providers": "سرویس‌دهنده‌ها", "overview.until": "(تا {when})",
    "col.name": "نام", "col.type": "نوع", "col.channel": "کانال", "col.role": "نقش", "col.state": "وضعیت",
    "col.error_rate": "نرخ خطا (۱ ساعت)", "col.last_error": "آخرین خطا", "col.credit": "اعتبار",
    "col.at": "زمان", "col.contact": "مخاطب", "col.sequence": "دنباله", "col.touch": "پیام", "col.ch": "کانال",
    "col.provider": "سرویس‌دهنده", "col.event": "رویداد", "col.reason": "دلیل", "col.status": "وضعیت",
    "col.enrolled": "ثبت‌نام", "col.ended": "پایان", "col.offer_deadline": "مهلت پیشنهاد", "col.due": "موعد",
    "col.sent": "ارسال", "col.what": "چه", "col.detail": "دلیل / جزئیات",
    "none": "هیچ", "unknown": "نامعلوم", "any": "همه",
    "log.filter": "پالایش", "log.no_rows": "ردیفی نیست", "log.older": "قدیمی‌تر ←",
    "log.no_contact": "هیچ مخاطبی با این کلید پیدا نشد.",
    "contact.tags": "برچسب‌ها", "contact.enrollments": "ثبت‌نام‌ها", "contact.messages": "پیام‌ها",
    "contact.timeline": "خط زمانی", "contact.urgent": "(فوری)", "contact.value": "مبلغ {value}",
    "contact.unnamed": "مخاطب {id}", "contact.score": "امتیاز سرنخ", "contact.handoffs": "واگذار شده به فروش",
    "contact.rep": "فروشنده", "contact.outcome": "نتیجه",
    "seq.funnel": "{enrolled} ثبت‌نام ← {converted} خرید ({rate}٪)، درآمد {revenue}",
    "seq.offer": "پیشنهاد", "seq.ends": "پایان {when}", "seq.ends_after": "پایان {after} پس از هر ثبت‌نام",
    "seq.no_deadline": "بی‌مهلت", "seq.stock_left": "{left} از {stock} مانده", "seq.no_stock": "بی‌سقف موجودی",
    "seq.preview": "پیش‌نمایش", "seq.subject": "موضوع:", "percent": "{n}٪",
    "ev:sent": "فرستاده", "ev:delivered": "رسیده", "ev:failed": "ناموفق", "ev:skipped": "رد شده",
    "ev:undelivered": "نرسیده", "ev:cancelled": "لغو شده", "ev:deferred": "عقب‌افتاده", "ev:retry": "تلاش دوباره",
    "ev:claimed": "برداشته", "ev:recovered": "بازیابی", "ev:pending": "در انتظار", "ev:scheduled": "زمان‌بندی شده",
    "ev:sending": "در حال ارسال", "ev:unknown": "نامعلوم", "ev:waiting": "در انتظار",
    "ev:handed_off": "واگذار به فروش", "ev:won": "فروش", "ev:lost": "از دست رفت", "ev:follow_up_later": "پیگیری بعدی",
    "ev:active": "فعال", "ev:paused": "متوقف", "ev:completed": "تمام شده", "ev:converted": "خرید کرده",
    "ev:unsubscribed": "لغو اشتراک", "ev:exited": "خارج شده", "ev:primary": "اصلی", "ev:sms": "پیامک", "ev:email": "ایمیل",
    "ev:message": "پیام", "ev:event": "رویداد", "ev:purchase": "خرید", "ev:reply": "پاسخ",
    "ev:offer_expired": "مهلت پیشنهاد گذشته", "ev:sold_out": "موجودی تمام شده", "ev:requeued": "دوباره در صف",
    "ctl.heading": "وضعیت", "col.version": "نسخه", "col.active": "فعال", "col.due_24h": "موعد در ۲۴ ساعت",
    "col.next_due": "موعد بعدی", "col.actions": "کارها", "ctl.pause": "مکث", "ctl.resume": "ادامه",
    "ctl.stop": "پایان…", "ctl.unenroll": "خارج کن",
    "ctl.done.pause": "{name} در مکث است: پیام‌های موعدرسیده تا ادامه صبر می‌کنند.",
    "ctl.done.resume": "{name} دوباره فعال است؛ آنچه منتظر بود اکنون موعدش رسیده.",
    "ctl.done.stop": "{name} پایان یافت: ثبت‌نام‌هایش تمام شد و پیام‌های در انتظارش لغو شد.",
    "ctl.confirm_title": "پایان {name}؟",
    "ctl.confirm_text": "{active} ثبت‌نام فعال با وضعیت «پایان‌یافته» تمام می‌شود و پیام‌های در انتظارش لغو "
                        "می‌شود ({due} پیام با موعد در ۲۴ ساعت آینده). تا ادامه، مخاطب تازه‌ای نمی‌پذیرد.",
    "ctl.confirm": "پایان {name}", "ctl.cancel": "انصراف", "ctl.refused": "انجام نشد",
    "ev:stopped": "پایان‌یافته", "ev:orphaned": "بی‌فایل", "ev:unenrolled": "خارج‌شده",
    "seq.engagement": "{clicks} پیام کلیک شد ({rate}٪ ارسال‌ها) ← {conversions} خرید منتسب، درآمد {revenue} "
                      "({per_sent} به ازای هر پیام)",
    "col.clicks": "کلیک", "col.click_rate": "نرخ کلیک", "col.conversions": "خرید منتسب",
    "col.revenue": "درآمد", "col.revenue_per_sent": "درآمد / ارسال",
    "contact.credited": "منتسب به {touch} (با {by})", "contact.not_attributed": "منتسب به هیچ پیامی نیست",
    "ev:clicked": "کلیک کرده", "ev:clicked_bot": "کلیک (ربات)", "ev:opened": "باز کرده",
    "ev:opened_bot": "باز شده (ربات)", "ev:engagement": "تعامل", "ev:link": "پیوند کوتاه", "ev:pixel": "پیکسل باز شدن",
    "ab.heading": "آزمون A/B پیام {touch} ({metric})", "ab.running": "در جریان: هنوز ارسال کافی نیست",
    "ab.inconclusive": "بی‌نتیجه: هیچ نسخه‌ای آشکارا بهتر نیست", "ab.winner": "برنده: {variant}",
    "col.variant": "نسخه", "col.p_best": "احتمال برتری",
    "ev:click": "کلیک", "ev:send": "ارسال",
}

CATALOG: dict[str, dict[str, str]] = {"en": EN, "fa": FA}

#: an ISO-like timestamp inside a reason: ``2026-12-07T06:30:00+00:00``, ``2026-12-07 06:30 UTC``, ``...Z``
TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:\d{2}| UTC)?")
_TS = r"(\d{4}-\d{2}-\d{2}[T ][\d:.]+(?:Z|[+-]\d{2}:\d{2}| UTC)?)"

#: the engine's reasons in Persian (engine/plan.py, engine/dispatch.py); a reason none matches stays as it is
_FA_PHRASES = [
    (r"^offer_expired: ", "مهلت پیشنهاد گذشته: "),
    (r"^sold_out: no stock left for the offer", "موجودی تمام شده: از پیشنهاد چیزی نمانده"),
    (r"the offer ended at " + _TS, r"پیشنهاد در \1 تمام شد"),
    (r", and the offer ends at " + _TS + " before the next allowed moment",
     r"، و پیشنهاد پیش از نخستین زمان مجاز، در \1 تمام می‌شود"),
    (r"outside the send window (.+?) \(([\w/+-]+)\)", r"بیرون از بازهٔ ارسال \1 (\2)"),
    (r"frequency cap: (\d+) touches already sent on that local day", r"سقف ارسال: \1 پیام در همان روز فرستاده شده"),
    (r"; deferred to " + _TS, r"؛ عقب افتاد تا \1"),
    (r"; next attempt at " + _TS, r"؛ تلاش بعدی \1"),
    (r"; paused until " + _TS, r"؛ متوقف تا \1"),
    (r"^retries exhausted after (\d+) attempts: ", r"پس از \1 تلاش ناموفق: "),
    (r"^suppressed on sms: ", "پیامک مسدود: "), (r"^suppressed on email: ", "ایمیل مسدود: "),
    (r"^no phone number for this contact$", "این مخاطب شمارهٔ تلفن ندارد"),
    (r"^no email address for this contact$", "این مخاطب ایمیل ندارد"),
    (r"^the contact's phone is a landline.*$", "تلفن این مخاطب ثابت است (پیامک به آن نمی‌رسد)"),
    (r"^every touch done$", "همهٔ پیام‌ها فرستاده شد"),
    (r"^waits for the previous touch$", "در انتظار پیام قبلی"),
    (r"deferred by the send window ([^;]+)", r"عقب می‌افتد تا بازهٔ ارسال \1"),
    (r"^deferred: ", "عقب می‌افتد: "),
    (r" except (\w+) holidays and mourning days", r" جز تعطیلات \1 و روزهای عزا"),
    (r" except (\w+) holidays", r" جز تعطیلات \1"), (r" except mourning days", " جز روزهای عزا"),
    (r", then (holiday|mourning day): ", lambda m: "، سپس " + ("تعطیل: " if m[1] == "holiday" else "روز عزا: ")),
    (r"(^|: )holiday: ", r"\1تعطیل: "), (r"(^|: )mourning day: ", r"\1روز عزا: "),
    (r"then past the holiday: ", "سپس پس از تعطیل: "), (r"then past the mourning day: ", "سپس پس از روز عزا: "),
    (r"moved by the frequency cap \((\d+)/day\)", r"جابه‌جا با سقف ارسال (\1 در روز)"),
    (r"SKIPPED: the offer ends before this touch can go out", "رد می‌شود: پیشنهاد پیش از نوبت این پیام تمام می‌شود"),
    (r"^due " + _TS + r", (\w+) after (.+)$", lambda m: f"موعد {m[1]}، {_fa_duration(m[2])} پس از {m[3]}"),
    (r"^due " + _TS + "$", r"موعد \1"),
    (r"; ", "؛ "),
]


def duration_words(locale: str, text: str) -> str:
    """A duration as written in settings (``1d12h``) in the words of ``locale``; anything else as it is."""
    return _fa_duration(text) if locale == "fa" else text


def _fa_duration(text: str) -> str:
    try:
        return human_duration(parse_duration(text), "fa")
    except ValueError:
        return text


_EN_PHRASES = [(r"^offer_expired: ", "offer expired: "), (r"^sold_out: ", "sold out: ")]
PHRASES = {"fa": [(re.compile(a), b) for a, b in _FA_PHRASES], "en": [(re.compile(a), b) for a, b in _EN_PHRASES]}


def text(locale: str, key: str) -> str:
    """The unformatted text of ``key`` in ``locale`` (English where the locale lacks it)."""
    found = CATALOG.get(locale, EN).get(key)
    return EN[key] if found is None else found


def translate(locale: str, key: str, **values: object) -> str:
    """The text of ``key`` in ``locale``, formatted with ``values``."""
    return text(locale, key).format(**values)


def reason_phrases(locale: str, reason: str) -> str:
    """The engine's English reason in the words of ``locale``; the timestamps in it are left as they are."""
    for pattern, words in PHRASES.get(locale, ()):
        reason = pattern.sub(words, reason)
    return reason
