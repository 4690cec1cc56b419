"""Envelope codec and payload validation: every rejection names the field."""

from __future__ import annotations

import orjson
import pytest

from schemas import events
from schemas.envelope import Envelope, decode, encode
from schemas.errors import DecodeError, SchemaError
from schemas.models import parse_agent, parse_customer, parse_inbound


def test_envelope_round_trip_keeps_cloudevents_attributes() -> None:
    """encode/decode keeps id, type, source, subject and data; specversion is 1.0."""
    env = Envelope(type=events.MESSAGE_RECEIVED, source="s", subject="x", data={"a": "净值"})
    doc = orjson.loads(encode(env))
    assert doc["specversion"] == "1.0"
    back = decode(encode(env))
    assert (back.id, back.type, back.source, back.subject, back.data) == (
        env.id,
        env.type,
        "s",
        "x",
        {"a": "净值"},
    )


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (b"\xff\xfe", None),
        (b"[1]", None),
        (
            b'{"id": "1", "source": "s", "type": "t", "specversion": "0.3", "data": {}}',
            "specversion",
        ),
        (b'{"source": "s", "type": "t", "specversion": "1.0", "data": {}}', "id"),
        (b'{"id": "1", "source": "s", "type": "t", "specversion": "1.0", "data": []}', "data"),
    ],
)
def test_decode_rejects_bad_envelopes_naming_the_attribute(raw: bytes, field: str | None) -> None:
    with pytest.raises(SchemaError) as info:
        decode(raw)
    assert info.value.field == field
    if field is None:
        assert isinstance(info.value, DecodeError)


def test_inbound_keeps_only_known_sender_fields_and_normalizes_shape() -> None:
    msg = parse_inbound(
        "email",
        {
            "channel_message_id": "m",
            "from": {"email": "a@b.cn"},
            "text": "你好",
            "thread": {"in_reply_to": "<x@y>"},
        },
    )
    assert msg["from"] == {"email": "a@b.cn"}
    assert msg["thread"] == {"message_id": None, "in_reply_to": "<x@y>", "references": []}
    assert msg["attachments"] == []


def test_phone_call_started_needs_no_text_but_transcript_does() -> None:
    started = parse_inbound(
        "phone",
        {
            "channel_message_id": "c:0",
            "from": {"phone": "1"},
            "call": {"call_id": "c", "event": "started"},
        },
    )
    assert started["text"] == ""
    with pytest.raises(SchemaError) as info:
        parse_inbound(
            "phone",
            {
                "channel_message_id": "c:1",
                "from": {"phone": "1"},
                "call": {"call_id": "c", "event": "transcript"},
            },
        )
    assert info.value.field == "text"


def test_agent_profile_defaults_and_limits() -> None:
    a = parse_agent("a1", {"skills": {"product": 5}, "capacity": {"chat": 3}})
    assert a["languages"] == ["zh"] and a["name"] == "a1" and a["wrap_up_s"] == 0
    with pytest.raises(SchemaError) as info:
        parse_agent("a1", {"skills": {"product": 5}, "capacity": {"pigeon": 1}})
    assert info.value.field == "capacity.pigeon"


def test_customer_verified_contacts_are_validated() -> None:
    c = parse_customer("C1", {"segment": "hnw", "verified": {"phones": ["+8613800000001"]}})
    assert c["verified"]["phones"] == ["+8613800000001"]
    assert c["verified"]["emails"] == []
    with pytest.raises(SchemaError) as info:
        parse_customer("C1", {"verified": {"phones": [1]}})
    assert info.value.field == "verified.phones[0]"
