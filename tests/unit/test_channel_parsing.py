"""Pure channel-adapter logic: MIME parsing, webhook signatures, call event mapping."""

from __future__ import annotations

import base64
import re
from re import _constants as _c  # type: ignore[attr-defined]
from re import _parser  # type: ignore[attr-defined]
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from channels.app import webhook as app_webhook
from channels.email import parse as email_parse
from channels.email.parse import (
    MalformedMail,
    html_to_text,
    parse_email,
    strip_quotes_and_signature,
    unfold,
)
from channels.phone import telephony
from channels.settings import MailLimits
from schemas import models
from schemas.errors import SchemaError
from tests import mail_samples as samples


def test_gbk_labelled_gb2312_mail_decodes_subject_name_and_body() -> None:
    """GBK-only characters under a GB2312 label (as Foxmail sends) decode without loss."""
    msg = parse_email(samples.gbk_mail())
    assert msg["subject"] == samples.GBK_SUBJECT
    assert msg["from"] == {"email": "wangkun@example.com", "name": "王堃"}
    assert "161606" in msg["text"] and "王玥" in msg["text"]
    assert "\ufffd" not in msg["text"] + msg["subject"]
    assert msg["sent_at"] == "2026-11-23T01:30:00+00:00"
    assert models.parse_inbound("email", msg)["channel_message_id"] == msg["thread"]["message_id"]


def test_big5_mail_decodes() -> None:
    """Big5 subject, name and body (Taiwan / Hong Kong customers) decode cleanly."""
    msg = parse_email(samples.big5_mail())
    assert msg["text"] == samples.BIG5_BODY
    assert msg["subject"] == "淨值查詢"
    assert msg["from"]["name"] == "陳小姐"


def test_html_only_mail_becomes_clean_text() -> None:
    """An HTML-only, quoted-printable mail yields its words without tags, scripts or styles."""
    msg = parse_email(samples.html_only_mail())
    text = msg["text"]
    assert "定投怎么设置" in text and "谢谢&祝好" in text
    assert "<" not in text and "alert" not in text and "color" not in text
    assert msg["subject"] == "定投设置"


def test_reply_strips_quoted_history_and_signature_but_keeps_full_body() -> None:
    """The classifier sees only the new words; the agent still gets the whole body."""
    msg = parse_email(samples.reply_mail())
    assert samples.REPLY_NEW in msg["text"]
    assert "T+1到T+3" not in msg["text"] and "138 0000 0001" not in msg["text"]
    assert "T+1到T+3" in msg["body"] and "138 0000 0001" in msg["body"]
    assert msg["thread"] == {
        "message_id": "<reply-2@mail.example.com>",
        "in_reply_to": "<r-1@omnirouter.local>",
        "references": ["<first-0@mail.example.com>", "<r-1@omnirouter.local>"],
    }


def test_attachment_is_metadata_only() -> None:
    """An attachment is described by name, type, size and sha256; its bytes are not kept."""
    import hashlib

    msg = parse_email(samples.attachment_mail())
    assert msg["attachments"] == [
        {
            "name": "对账单.pdf",
            "content_type": "application/pdf",
            "size": len(samples.PDF),
            "sha256": hashlib.sha256(samples.PDF).hexdigest(),
        }
    ]
    assert msg["subject"] == "对账单有误"
    assert "对账单" in msg["text"]


def test_mail_without_sender_is_malformed_unless_envelope_has_one() -> None:
    """No From address is malformed; the SMTP envelope sender is used when present."""
    raw = b"Subject: hi\r\n\r\nhello\r\n"
    with pytest.raises(MalformedMail):
        parse_email(raw)
    assert parse_email(raw, envelope_from="x@example.com")["from"]["email"] == "x@example.com"
    with pytest.raises(MalformedMail):
        parse_email(b"")


@pytest.mark.parametrize(
    ("text", "kept", "dropped"),
    [
        ("请尽快处理\n\n-----原始邮件-----\n发件人: 客服\n旧内容", "请尽快处理", "旧内容"),
        ("Thanks\nOn Mon, 1 Jan 2026 at 10:00, Bob <b@x.com> wrote:\n> old", "Thanks", "old"),
        ("好的\n\n发自我的iPhone", "好的", "iPhone"),
        ("好的\n------------------ 原始邮件 ------------------\n旧", "好的", "旧"),
    ],
)
def test_quote_styles_of_common_clients_are_stripped(text: str, kept: str, dropped: str) -> None:
    """Outlook, Gmail, QQ mail and phone-client quote markers all end the new text."""
    out = strip_quotes_and_signature(text)
    assert kept in out and dropped not in out


def test_html_blockquote_becomes_quoted_lines() -> None:
    """Quoted HTML blocks turn into "> " lines, so the same stripping applies."""
    assert html_to_text("<p>new</p><blockquote><p>old</p></blockquote>") == "new\n\n> old"


def test_app_signature_accepts_signed_and_refuses_unsigned_stale_tampered() -> None:
    """Only a fresh request signed with the app's secret over timestamp and body passes."""
    secrets = {"ios": "s3cret"}
    body = b'{"text": "hi"}'
    headers = app_webhook.signed_headers("ios", "s3cret", body, now=1_000_000)
    assert app_webhook.verify(headers, body, secrets, 300, now=1_000_100) == "ios"
    cases = {
        "signature_missing": ({}, body, 1_000_000),
        "stale_timestamp": (headers, body, 1_000_301),
        "bad_signature": (headers, b'{"text": "hI"}', 1_000_000),
        "unknown_app": ({**headers, app_webhook.HEADER_APP: "android"}, body, 1_000_000),
    }
    for code, (h, b, now) in cases.items():
        with pytest.raises(app_webhook.SignatureError) as err:
            app_webhook.verify(h, b, secrets, 300, now=now)
        assert err.value.code == code


def test_twilio_signature_matches_twilios_documented_example() -> None:
    """The worked example of Twilio's webhook security guide verifies; a changed digit does not."""
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    params = [
        ("To", "+18005551212"),
        ("CallSid", "CA1234567890ABCDE"),
        ("Digits", "1234"),
        ("From", "+12349013030"),
        ("Caller", "+12349013030"),
    ]
    assert telephony.twilio_signature("12345", url, params) == "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
    tampered = [(k, "9" if k == "Digits" else v) for k, v in params]
    assert not telephony.twilio_valid("12345", url, tampered, "0/KCTR6DLpKmkAf8muzZqo1nDgQ=")


def test_twilio_form_maps_to_call_events() -> None:
    """Digits give an IVR hint, SpeechResult a final transcript, partials nothing, status ends."""
    menu = {"2": "transaction"}
    base = {
        "CallSid": "CA1",
        "From": "+8613800000001",
        "To": "+8610000",
        "CallStatus": "in-progress",
    }
    assert telephony.twilio_event(base, menu)["event"] == "started"
    ivr = telephony.twilio_event({**base, "Digits": "2"}, menu)
    assert ivr is not None and (ivr["event"], ivr["hint"]) == ("ivr", "transaction")
    speech = telephony.twilio_event({**base, "SpeechResult": "我要赎回"}, menu)
    assert speech is not None and speech["event"] == "transcript" and speech["text"] == "我要赎回"
    assert telephony.twilio_event({**base, "UnstableSpeechResult": "我要"}, menu) is None
    ended = telephony.twilio_event({**base, "CallStatus": "completed"}, menu)
    assert ended is not None and ended["event"] == "ended"
    anon = telephony.twilio_event({**base, "From": "anonymous"}, menu)
    assert anon is not None and anon["verified"] is False


def test_call_event_normalizes_with_verified_caller_and_hint() -> None:
    """A transcript carries the carrier-verified caller and the hint chosen earlier."""
    ev = telephony.generic_event(
        {"call_id": "c1", "event": "transcript", "text": "查净值", "seq": 3}, {}
    )
    assert ev is not None
    msg = models.parse_inbound(
        "phone",
        telephony.normalized(ev, {"caller": "+8613800000001", "verified": "1", "hint": "product"}),
    )
    assert msg["from"] == {"phone": "+8613800000001", "verified": ["phone"]}
    assert msg["call"] == {"call_id": "c1", "event": "transcript", "hint": "product"}
    assert msg["channel_message_id"] == "c1:transcript:3"
    assert (
        telephony.generic_event(
            {"call_id": "c1", "event": "transcript", "text": "查", "final": False}, {}
        )
        is None
    )
    with pytest.raises(SchemaError):
        telephony.generic_event({"call_id": "c1", "event": "dance"}, {})


def test_verified_must_name_a_present_contact() -> None:
    """from.verified may only vouch for contacts the message carries."""
    with pytest.raises(SchemaError) as err:
        models.parse_inbound(
            "app",
            {
                "channel_message_id": "m",
                "from": {"visitor_id": "v", "verified": ["phone"]},
                "text": "x",
            },
        )
    assert err.value.field == "from.verified[0]"


def test_reply_email_threads_under_the_customer_message_and_is_7bit() -> None:
    """An email reply names the customer's Message-ID in In-Reply-To and References, keeps
    their subject with Re:, and is 7-bit clean (UTF-8 in base64, RFC 2047 headers)."""
    import email
    import email.policy

    from channels.email.send import build_email

    msg = build_email(
        {
            "reply_id": "r9",
            "to": {"email": "li@example.com"},
            "subject": "关于赎回",
            "in_reply_to": "<c2@mail.example.com>",
            "references": ["<c1@mail.example.com>"],
            "text": "您好，已到账。",
            "conversation_id": "k1",
        },
        "客服中心 <service@omnirouter.local>",
        "omnirouter.local",
    )
    raw = msg.as_bytes()
    assert all(b < 0x80 for b in raw)
    back = email.message_from_bytes(raw, policy=email.policy.default)
    assert back["In-Reply-To"] == "<c2@mail.example.com>"
    assert back["References"] == "<c1@mail.example.com> <c2@mail.example.com>"
    assert back["Message-ID"] == "<r9@omnirouter.local>"
    assert str(back["Subject"]) == "Re: 关于赎回"
    assert back.get_content().strip() == "您好，已到账。"


def test_reply_email_can_be_gb18030_for_gb_only_clients() -> None:
    """With charset gb18030 the body is GB18030 in base64 and decodes back to the same text."""
    import email
    import email.policy

    from channels.email.send import build_email

    d = {"reply_id": "r1", "to": {"email": "a@example.com"}, "text": "您好，王堃。"}
    raw = build_email(d, "s@omnirouter.local", "omnirouter.local", "gb18030").as_bytes()
    back = email.message_from_bytes(raw, policy=email.policy.default)
    assert back.get_content_charset() == "gb18030"
    assert back.get_content().strip() == "您好，王堃。"
    assert all(b < 0x80 for b in raw)


@pytest.mark.parametrize(
    ("headers", "envelope_from", "machine"),
    [
        (b"From: a@example.com\r\nAuto-Submitted: auto-replied\r\n", "a@example.com", True),
        (b"From: a@example.com\r\nPrecedence: bulk\r\n", "a@example.com", True),
        (b"From: MAILER-DAEMON@mx.example.com\r\n", "<>", True),
        (
            b'From: postmaster@x\r\nContent-Type: multipart/report; report-type="delivery-status"'
            b"; boundary=b\r\n",
            "postmaster@x",
            True,
        ),
        (b"From: a@example.com\r\nAuto-Submitted: no\r\n", "a@example.com", False),
        (b"From: a@example.com\r\n", "a@example.com", False),
    ],
)
def test_machine_written_mail_is_recognised(
    headers: bytes, envelope_from: str, machine: bool
) -> None:
    """Bounces, out-of-office replies and list mail are recognised (RFC 3834), so they never
    open a conversation that would be answered: the start of a mail loop."""
    from channels.email.parse import auto_generated

    raw = headers + b"Subject: x\r\n\r\nbody\r\n"
    assert (auto_generated(raw, envelope_from) is not None) is machine


# -- hostile mail: linear parsing, bounded input, control characters refused -------------------


def _repeats(pattern: re.Pattern[str]) -> list[tuple[int, int]]:
    """(min, max) of every repeat in a compiled regular expression."""
    found: list[tuple[int, int]] = []

    def walk(node: Any) -> None:
        items = node.data if hasattr(node, "data") else node
        if not isinstance(items, list | tuple):
            return
        for item in items:
            if isinstance(item, tuple) and len(item) == 2 and item[0] in _REPEAT_OPS:
                lo, hi, sub = item[1]
                found.append((lo, hi))
                walk(sub)
            else:
                walk(item)

    walk(_parser.parse(pattern.pattern, pattern.flags))
    return found


_REPEAT_OPS = (_c.MAX_REPEAT, _c.MIN_REPEAT, _c.POSSESSIVE_REPEAT)


def _subject_of_spaces(n: int) -> bytes:
    """The attack of issue 13: an RFC 2047 subject that decodes to n spaces, folded into
    encoded words of 45 spaces each (333 KB for 200,000)."""
    word = f"=?utf-8?b?{base64.b64encode(b' ' * 45).decode()}?="
    subject = "\r\n ".join([word] * (n // 45))
    return (
        "From: attacker@example.com\r\nTo: service@omnirouter.local\r\n"
        f"Subject: {subject}\r\nMessage-ID: <{n}@x>\r\n\r\nhello\r\n"
    ).encode()


def test_the_200k_space_subject_is_refused_by_the_header_limit() -> None:
    """The 333 KB mail whose subject decodes to 200,000 spaces (it held the gateway for six
    minutes) is refused before parsing, naming the limit; the same subject under limits
    raised to let it through decodes, so the refusal is the limit and nothing else."""
    raw = _subject_of_spaces(200_000)
    assert len(raw) > 330_000
    with pytest.raises(MalformedMail, match="OMNIROUTER_MAIL_MAX_HEADER_BYTES"):
        parse_email(raw)
    smaller = _subject_of_spaces(20_000)
    loose = MailLimits(max_header_bytes=len(smaller), max_field_bytes=len(smaller))
    with pytest.raises(MalformedMail, match="OMNIROUTER_MAIL_MAX_FIELD_BYTES"):
        parse_email(smaller, limits=MailLimits(max_header_bytes=len(smaller)))
    assert "subject" not in parse_email(smaller, limits=loose)  # all whitespace: no subject


@given(st.text(alphabet=" \t\r\nab\u3000", max_size=40))
@settings(max_examples=500, deadline=None)
def test_unfold_is_the_old_whitespace_collapse_in_linear_time(value: str) -> None:
    """The linear unfolding gives what the quadratic regex gave (for every mix of spaces,
    tabs, CR, LF and ideographic spaces)."""
    assert unfold(value) == re.sub(r"\s*\r?\n\s*", " ", value).strip()


def test_html_to_text_is_one_pass_of_a_bounded_pattern(monkeypatch: pytest.MonkeyPatch) -> None:
    """HTML becomes text in one scan by a pattern without unbounded repeats and constant work
    per token: linear (the stdlib HTMLParser took 45 s for 50,000 characters of "<a ")."""
    import html.parser

    assert all(hi != _c.MAXREPEAT for _, hi in _repeats(email_parse._HTML_TOKEN))
    scans: list[int] = []
    real = email_parse._HTML_TOKEN

    class Counting:
        def finditer(self, text: str) -> Any:
            scans.append(len(text))
            return real.finditer(text)

    monkeypatch.setattr(email_parse, "_HTML_TOKEN", Counting())
    monkeypatch.setattr(html.parser.HTMLParser, "feed", _never)
    hostile = "<a " * 100_000
    assert html_to_text(hostile).startswith("<a <a")  # an unclosed tag was text after all
    assert scans == [len(hostile)]


def _never(*_: Any) -> None:
    raise AssertionError("the stdlib HTMLParser is quadratic on unclosed tags; not used")


@pytest.mark.parametrize(
    ("markup", "text"),
    [
        ("<p>a</p><!-- secret --><p>b</p>", "a\n\nb"),
        ("<p>a<!-- never closed <p>b", "a"),
        ("<head><title>t</title><style>x{}</style></head><body>正文</body>", "正文"),
        ("<script>if (a<b) alert(1)</script>ok", "ok"),
        ("1 &lt; 2 &amp;&amp; 3 > 2", "1 < 2 && 3 > 2"),
        ("<!DOCTYPE html><p>x</p>", "x"),
        ('<a href="x">link</a> <br/>end', "link\nend"),
    ],
)
def test_html_tokenizer_handles_comments_scripts_entities_and_stray_brackets(
    markup: str, text: str
) -> None:
    """What HTMLParser did for real mail, the linear tokenizer does too."""
    assert html_to_text(markup) == text


@pytest.mark.parametrize(
    ("header", "field", "char"),
    [
        (
            "Subject: =?utf-8?b?" + base64.b64encode(b"hi\r\nBcc: x@evil").decode() + "?=",
            "Subject",
            "U+000D",
        ),
        ("Subject: hello\x00world", "Subject", "U+0000"),
        ("Subject: =?utf-8?q?a=1Bb?=", "Subject", "U+001B"),
        ("Message-ID: <a\x01b@x>", "Message-ID", "U+0001"),
        ("References: <a@x>\x7f", "References", "U+007F"),
    ],
)
def test_control_characters_in_header_values_are_refused_precisely(
    header: str, field: str, char: str
) -> None:
    """An encoded CR/LF (header injection into the reply), NUL, ESC or DEL in a header value
    is refused with the header, the character and its position."""
    raw = f"From: li@example.com\r\n{header}\r\n\r\nbody\r\n".encode("utf-8", "surrogateescape")
    with pytest.raises(
        MalformedMail,
        match=re.escape(f"header {field} contains control character {char} at position "),
    ):
        parse_email(raw)


def test_folded_headers_are_not_control_characters() -> None:
    """CRLF + space folding (RFC 5322) is what a long subject looks like, not an attack."""
    raw = b"From: li@example.com\r\nSubject: part one\r\n  part two\r\n\r\nbody\r\n"
    assert parse_email(raw)["subject"] == "part one part two"


def test_header_and_part_limits_are_enforced_with_their_settings_named() -> None:
    """Too many header fields, one field too long, too many MIME parts and a MIME part's
    header too long are each refused, naming the variable that sets the limit."""
    limits = MailLimits(
        max_header_bytes=4096, max_header_fields=10, max_field_bytes=200, max_parts=5
    )
    many = b"From: li@example.com\r\n" + b"X-A: b\r\n" * 10 + b"\r\nx"
    with pytest.raises(MalformedMail, match="OMNIROUTER_MAIL_MAX_HEADER_FIELDS"):
        parse_email(many, limits=limits)
    long = b"From: li@example.com\r\nSubject: " + b"a" * 150 + b"\r\n " + b"b" * 100 + b"\r\n\r\nx"
    with pytest.raises(MalformedMail, match="header Subject is longer than 200 bytes"):
        parse_email(long, limits=limits)
    part = b"--b\r\nContent-Type: text/plain\r\n\r\nx\r\n"
    head = b"From: li@example.com\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
    with pytest.raises(MalformedMail, match="OMNIROUTER_MAIL_MAX_PARTS"):
        parse_email(head + part * 5 + b"--b--\r\n", limits=limits)
    assert parse_email(head + part * 4 + b"--b--\r\n", limits=limits)["text"]
    wide = b"--b\r\nContent-Type: text/plain; name=" + b"n" * 300 + b"\r\n\r\nx\r\n"
    with pytest.raises(MalformedMail, match="of a MIME part is longer than 200"):
        parse_email(head + wide + b"--b--\r\n", limits=limits)
    deep = b"From: (" * 1 + b"(" * 5000 + b"\r\n\r\nx"
    with pytest.raises(MalformedMail):
        parse_email(deep, limits=MailLimits(max_field_bytes=10_000))


def test_a_non_ascii_signature_is_refused_not_a_500() -> None:
    """hmac.compare_digest refuses non-ASCII str with TypeError: that was a 500."""
    body = b'{"a": 1}'
    headers = app_webhook.signed_headers("ios", "s3cret", body, now=1_000_000)
    headers[app_webhook.HEADER_SIG] = "签名不对"
    with pytest.raises(app_webhook.SignatureError) as err:
        app_webhook.verify(headers, body, {"ios": "s3cret"}, 300, now=1_000_000)
    assert err.value.code == "bad_signature"
    assert not telephony.twilio_valid("token", "https://x/y", [], "签名")
