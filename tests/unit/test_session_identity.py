"""Evidence rules, anonymous ids and thread references: the pure part of continuity."""

from __future__ import annotations

import hashlib

import pytest

from channels.email.authres import verified_sender
from schemas.errors import SchemaError
from schemas.models import parse_inbound
from session import keys
from session import settings as session_settings
from session.continuity import continuity_args, message_id, thread_refs
from session.identity import anonymous_id, anonymous_key, evidence_of, merge_candidates


def sender(channel: str, **frm: object) -> dict[str, object]:
    body = {"channel_message_id": "m", "from": frm, "text": "你好"}
    return dict(parse_inbound(channel, body)["from"])


def test_typed_contacts_in_chat_are_claims_not_evidence() -> None:
    """A phone, email or app user id typed into web chat identifies nobody."""
    frm = sender(
        "chat", visitor_id="v1", phone="13800000001", email="li@example.com", app_user_id="u"
    )
    assert evidence_of("chat", frm) == []


def test_channels_vouch_only_for_what_they_can_verify() -> None:
    """The phone adapter vouches for a caller number, the app backend for its user id by
    default; an email's From is a claim until the mail system vouches for it (DKIM/SPF)."""
    phone = evidence_of("phone", sender("phone", phone="138 0000 0001", verified=["phone"]))
    assert [(e.kind, e.value, e.evidence) for e in phone] == [
        ("phone", "+8613800000001", "verified_phone")
    ]
    assert evidence_of("phone", sender("phone", phone="13800000001")) == []
    app = evidence_of("app", sender("app", app_user_id="u-7", phone="13800000001"))
    assert [(e.kind, e.evidence) for e in app] == [("app_user_id", "authenticated_app_user")]
    assert evidence_of("email", sender("email", email="Li@Example.com")) == []
    mail = evidence_of("email", sender("email", email="Li@Example.com", verified=["email"]))
    assert [(e.value, e.evidence) for e in mail] == [("li@example.com", "dkim_email")]


@pytest.mark.parametrize(
    ("channel", "frm", "field"),
    [
        ("chat", {"visitor_id": "v", "phone": "1", "verified": ["phone"]}, "from.verified[0]"),
        ("phone", {"phone": "1", "verified": ["app_user_id"]}, "from.verified[0]"),
        ("phone", {"email": "a@b.cn", "verified": ["phone"]}, "from.verified[0]"),
        ("app", {"app_user_id": "u", "verified": "app_user_id"}, "from.verified"),
    ],
)
def test_verified_list_is_checked_against_the_channel(
    channel: str, frm: dict[str, object], field: str
) -> None:
    """An adapter may vouch only for contacts its channel can verify and that it sent."""
    with pytest.raises(SchemaError) as err:
        parse_inbound(channel, {"channel_message_id": "m", "from": frm, "text": "x"})
    assert err.value.field == field


def test_anonymous_id_keeps_typed_numbers_apart_from_verified_callers() -> None:
    """An anonymous chat is keyed by its visitor cookie; a verified caller and an unverified
    one with the same number get different anonymous ids."""
    kind, value, verified = anonymous_key("chat", sender("chat", visitor_id="v9", phone="1380000"))
    assert (kind, value, verified) == ("visitor_id", "v9", False)
    assert anonymous_id("phone", "13800000001", True) != anonymous_id("phone", "13800000001", False)
    assert anonymous_id("phone", "138 0000 0001", True) == anonymous_id(
        "phone", "+8613800000001", True
    )


def test_anonymous_ids_are_keyed_so_a_dictionary_of_numbers_cannot_reverse_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An anonymous id is an HMAC under OMNIROUTER_ID_KEY, not a plain hash of the number:
    hashing every phone number finds nothing, and another key gives other ids."""
    phone = "+8613800000001"
    plain = "anon-" + hashlib.sha256(f"phone:{phone}:v".encode()).hexdigest()[:16]
    ours = anonymous_id("phone", phone, True)
    assert ours.startswith("anon-") and ours != plain
    session_settings.id_key.cache_clear()
    monkeypatch.setenv("OMNIROUTER_ID_KEY", "another-key-of-at-least-16-chars")
    try:
        assert anonymous_id("phone", phone, True) != ours
        monkeypatch.setenv("OMNIROUTER_ID_KEY", "short")
        session_settings.id_key.cache_clear()
        with pytest.raises(session_settings.MissingIdKey):
            anonymous_id("phone", phone, True)
    finally:
        session_settings.id_key.cache_clear()


@pytest.mark.parametrize(
    ("headers", "address", "method"),
    [
        (["mx.ours; dkim=pass header.d=example.com header.s=s1"], "li@example.com", "dkim"),
        (["mx.ours; dkim=pass (good) header.i=@mail.example.com"], "li@example.com", "dkim"),
        (["mx.ours; spf=pass smtp.mailfrom=bounce@example.com"], "li@example.com", "spf"),
        (
            ["MX.OURS 1; dkim=fail header.d=example.com; spf=pass smtp.mailfrom=example.com"],
            "li@Example.com",
            "spf",
        ),
        (["mx.ours; dkim=pass header.d=attacker.net"], "li@example.com", None),
        (["evil.example; dkim=pass header.d=example.com"], "li@example.com", None),
        (["mx.ours; dkim=none; spf=softfail smtp.mailfrom=example.com"], "li@example.com", None),
        (["mx.ours (dkim=pass header.d=example.com); dmarc=none"], "li@example.com", None),
        ([], "li@example.com", None),
    ],
)
def test_only_a_trusted_authserv_pass_aligned_with_from_vouches_for_an_address(
    headers: list[str], address: str, method: str | None
) -> None:
    """DKIM or SPF pass, from our own authserv-id, for a domain aligned with From; a header
    from anyone else, a pass for another domain or a pass inside a comment vouches nothing."""
    assert verified_sender(headers, ("mx.ours",), address) == method
    assert verified_sender(headers, (), address) is None


def test_merge_candidates_come_from_proof_and_the_cookie_only() -> None:
    """Logging in folds the visitor's anonymous chat in; a typed phone number folds nothing."""
    frm = sender(
        "chat", visitor_id="v9", app_user_id="u1", phone="13800000001", verified=["app_user_id"]
    )
    got = merge_candidates("chat", frm)
    assert anonymous_id("visitor_id", "v9", False) in got
    assert anonymous_id("app_user_id", "u1", True) in got
    assert anonymous_id("phone", "13800000001", False) not in got
    assert anonymous_id("phone", "13800000001", True) not in got


def test_thread_refs_most_recent_first_without_brackets() -> None:
    """In-Reply-To first, then References from the newest; brackets and repeats dropped."""
    refs = thread_refs(
        {"in_reply_to": "<c@x>", "references": ["<a@x> <b@x>", "<c@x>"], "message_id": "<d@x>"}
    )
    assert refs == ["c@x", "b@x", "a@x"]
    assert message_id(" <d@x> ") == "d@x"
    args = continuity_args(
        {
            "channel": "email",
            "channel_message_id": "m1",
            "thread": {"message_id": "<d@x>", "in_reply_to": "<c@x>", "references": []},
            "customer": {"id": "anon-1", "identified": False},
        }
    )
    assert args["message_id"] == "d@x" and args["thread_refs"] == ["c@x"]
    assert args["anonymous"] is True and args["ref_keys"] == [keys.dedupe("email", "m1")]
