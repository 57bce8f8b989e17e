"""
dsnmail.py - reading delivery status notifications (RFC 3464) out of a
Maildir with Python's email package, and sending with DSN parameters, for
the bounce tests (test_bounces.py) and any later outbound tests.
"""

import email
import email.policy


def send_dsn(srv, frm, rcpts, data, mail_opts=(), rcpt_opts=None):
    """One message with MAIL/RCPT parameters (RET=, ENVID=, NOTIFY=,
    ORCPT=); rcpt_opts maps a recipient to its options. Returns the
    (code, text) of DATA."""
    rcpt_opts = rcpt_opts or {}
    with srv.smtp() as s:
        code, msg = s.ehlo("client.example.org")
        assert code == 250 and s.has_extn("dsn"), (code, msg)
        code, msg = s.mail(frm, list(mail_opts))
        assert code == 250, (code, msg)
        for r in rcpts:
            code, msg = s.rcpt(r, list(rcpt_opts.get(r, ())))
            assert code == 250, (r, code, msg)
        return s.data(data)


class Dsn:
    """A parsed DSN: the message, its three parts, the per-message and the
    per-recipient fields of the delivery-status part."""

    def __init__(self, raw):
        self.raw = raw
        self.msg = email.message_from_bytes(raw, policy=email.policy.compat32)
        m = self.msg
        assert m.get_content_type() == "multipart/report", m.get_content_type()
        assert m.get_param("report-type") == "delivery-status", m["Content-Type"]
        parts = m.get_payload()
        assert len(parts) == 3, [p.get_content_type() for p in parts]
        self.text_part, self.status_part, self.original_part = parts
        assert self.text_part.get_content_type() == "text/plain"
        assert self.status_part.get_content_type() == "message/delivery-status"
        blocks = self.status_part.get_payload()
        assert len(blocks) >= 2, blocks
        self.per_message = blocks[0]
        self.per_rcpt = blocks[1:]
        self.text = self.text_part.get_payload(decode=True).decode("utf-8")

    def rcpt(self, addr):
        for b in self.per_rcpt:
            if b["Final-Recipient"].split(";", 1)[1].strip() == addr:
                return b
        raise AssertionError("no Final-Recipient %s in %r" % (addr, [
            b["Final-Recipient"] for b in self.per_rcpt]))

    @property
    def original_type(self):
        return self.original_part.get_content_type()

    def original_bytes(self):
        """The attached message (message/rfc822) or header section
        (text/rfc822-headers) as bytes, CRLF as stored."""
        raw = self.raw
        ctype = self.original_type
        i = raw.index(b"Content-Type: " + ctype.encode())
        j = raw.index(b"\r\n\r\n", i) + 4
        boundary = self.msg.get_boundary().encode()
        k = raw.rindex(b"\r\n--" + boundary + b"--")
        return raw[j:k]


def read_dsn(path):
    return Dsn(path.read_bytes())
