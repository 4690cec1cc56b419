"""Real-world shaped MIME mail, written the way Chinese mail clients write it.

Raw bytes, built by hand (not with the email package) so that the parser under test is fed
what Foxmail, Outlook, QQ mail and webmail clients really send: GB2312 labels over GBK bytes,
RFC 2047 words, base64 and quoted-printable bodies, HTML-only bodies, quoted history.
"""

from __future__ import annotations

import base64
import quopri
from collections.abc import Callable


def _b64(data: bytes) -> str:
    return base64.encodebytes(data).decode().replace("\n", "\r\n")  # SMTP lines end in CRLF


def _word(text: str, charset: str) -> str:
    return f"=?{charset}?B?{base64.b64encode(text.encode(charset if charset != 'GB2312' else 'gbk')).decode()}?="


# 堃 and 玥 are in GBK but not in GB2312: clients still label such mail "gb2312".
GBK_SUBJECT = "关于融通领先成长混合A赎回到账的咨询（王堃）"
GBK_BODY = "您好：\r\n我上周五赎回了融通领先成长混合A，基金代码161606，现在还没到账，请问什么时候能到？\r\n王玥\r\n"


def gbk_mail(
    message_id: str = "<20261123093000.1234@foxmail.example>", sender: str = "wangkun@example.com"
) -> bytes:
    return (
        f"Return-Path: <{sender}>\r\n"
        f"From: {_word('王堃', 'GB2312')} <{sender}>\r\n"
        "To: service@omnirouter.local\r\n"
        f"Subject: {_word(GBK_SUBJECT, 'GB2312')}\r\n"
        "Date: Mon, 23 Nov 2026 09:30:00 +0800\r\n"
        f"Message-ID: {message_id}\r\n"
        "X-Mailer: Foxmail 7.2.25.228[cn]\r\n"
        "Mime-Version: 1.0\r\n"
        'Content-Type: text/plain;\r\n\tcharset="gb2312"\r\n'
        "Content-Transfer-Encoding: base64\r\n"
        "\r\n" + _b64(GBK_BODY.encode("gbk"))
    ).encode("ascii")


HTML_BODY = (
    "<html><head><style>p{color:red}</style><title>t</title></head><body>"
    "<div>您好，</div><p>请问&nbsp;<b>定投</b>怎么设置？每月扣款日能改吗？</p>"
    "<p>谢谢&amp;祝好<br>张三</p><script>alert(1)</script></body></html>"
)


def html_only_mail(message_id: str = "<html-only-1@mail.example.cn>") -> bytes:
    qp = quopri.encodestring(HTML_BODY.encode("utf-8")).decode().replace("\n", "\r\n")
    return (
        "From: =?UTF-8?B?5byg5LiJ?= <zhangsan@example.cn>\r\n"
        "To: <service@omnirouter.local>\r\n"
        "Subject: =?UTF-8?Q?=E5=AE=9A=E6=8A=95=E8=AE=BE=E7=BD=AE?=\r\n"
        f"Message-ID: {message_id}\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: text/html; charset="utf-8"\r\n'
        "Content-Transfer-Encoding: quoted-printable\r\n"
        "\r\n" + qp
    ).encode("ascii")


REPLY_NEW = "还是没有到账，已经第五个工作日了，请尽快处理。"
REPLY_PLAIN = (
    f"{REPLY_NEW}\r\n\r\n"
    "李雷\r\n"
    "-- \r\n"
    "李雷 | 某某科技有限公司\r\n"
    "电话：138 0000 0001\r\n"
    "\r\n"
    "在 2026年11月20日 10:00，客服中心 <service@omnirouter.local> 写道：\r\n"
    "> 您好，赎回款一般T+1到T+3个工作日到账。\r\n"
    "> 融通基金客服中心\r\n"
)


def reply_mail(
    parent: str = "<r-1@omnirouter.local>", message_id: str = "<reply-2@mail.example.com>"
) -> bytes:
    html = (
        f"<div>{REPLY_NEW}</div><div>李雷</div><blockquote>您好，赎回款一般T+1到T+3个工作日到账。"
        "</blockquote>"
    )
    return (
        "From: Li Lei <li@example.com>\r\n"
        "To: =?UTF-8?B?5a6i5pyN5Lit5b+D?= <service@omnirouter.local>\r\n"
        "Subject: =?UTF-8?B?UmU6IOWFs+S6jui1juWbng==?=\r\n"
        f"Message-ID: {message_id}\r\n"
        f"In-Reply-To: {parent}\r\n"
        f"References: <first-0@mail.example.com>\r\n {parent}\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/alternative; boundary="----=_Part_1"\r\n'
        "\r\n"
        "------=_Part_1\r\n"
        "Content-Type: text/plain; charset=UTF-8\r\n"
        "Content-Transfer-Encoding: base64\r\n\r\n"
        + _b64(REPLY_PLAIN.encode())
        + "------=_Part_1\r\n"
        "Content-Type: text/html; charset=UTF-8\r\n"
        "Content-Transfer-Encoding: base64\r\n\r\n" + _b64(html.encode()) + "------=_Part_1--\r\n"
    ).encode("ascii")


PDF = b"%PDF-1.4\n" + bytes(range(256)) * 40 + b"\n%%EOF\n"


def attachment_mail(message_id: str = "<att-1@mail.example.com>", pdf: bytes = PDF) -> bytes:
    return (
        "From: li@example.com\r\n"
        "To: service@omnirouter.local\r\n"
        "Subject: =?GBK?B?" + base64.b64encode("对账单有误".encode("gbk")).decode() + "?=\r\n"
        f"Message-ID: {message_id}\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n'
        "--b1\r\n"
        'Content-Type: text/plain; charset="GB18030"\r\n'
        "Content-Transfer-Encoding: base64\r\n\r\n"
        + _b64("附件是我的对账单，份额和我看到的不一致。".encode("gb18030"))
        + "--b1\r\n"
        'Content-Type: application/pdf; name="=?UTF-8?B?'
        + base64.b64encode("对账单.pdf".encode()).decode()
        + '?="\r\n'
        'Content-Disposition: attachment; filename="=?UTF-8?B?'
        + base64.b64encode("对账单.pdf".encode()).decode()
        + '?="\r\n'
        "Content-Transfer-Encoding: base64\r\n\r\n" + _b64(pdf) + "--b1--\r\n"
    ).encode("ascii")


def oversized_mail(message_id: str, attachment_bytes: int) -> bytes:
    """A scanned statement attached at full resolution: well-formed, just too big."""
    return attachment_mail(message_id, pdf=PDF[:9] + b"\x00" * attachment_bytes)


BIG5_BODY = "請問基金淨值何時更新？"


def big5_mail(message_id: str = "<big5-1@mail.example.tw>") -> bytes:
    return (
        "From: =?Big5?B?"
        + base64.b64encode("陳小姐".encode("big5")).decode()
        + "?= <chen@example.tw>\r\n"
        "To: service@omnirouter.local\r\n"
        "Subject: =?Big5?B?" + base64.b64encode("淨值查詢".encode("big5")).decode() + "?=\r\n"
        f"Message-ID: {message_id}\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=big5\r\n"
        "Content-Transfer-Encoding: base64\r\n\r\n" + _b64(BIG5_BODY.encode("big5"))
    ).encode("ascii")


ALL: dict[str, Callable[[], bytes]] = {
    "gbk": gbk_mail,
    "html_only": html_only_mail,
    "reply": reply_mail,
    "attachment": attachment_mail,
    "big5": big5_mail,
}
