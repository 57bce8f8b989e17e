"""
test_mailboxes.py - issue 3 points 1 and 2 against the real daemon:
aliases (one, many, remote, nested), distribution lists and their sender
rules, catch-all, forwarding, plus-addressing, loops and dangling aliases
refused at RCPT time, disabled account / alias / list / domain, spam traps,
and SIGHUP picking up an edited aliases file.

Each refusal is checked by its full reply line (code, enhanced code, text,
[ID]) and its logged event; each acceptance by the messages landing in the
Maildirs (<mail_root>/<domain>/<local>/new/).
"""

import signal

import pytest

from conftest import ACCOUNTS, DOMAIN, make_message

ALIASES = """\
# aliases of example.test
sales@example.test: alice, bob
info@example.test: alice
mixed@example.test: alice, partner@example.org
team@example.test: sales, alice
cyc1@example.test: cyc2
cyc2@example.test: cyc1
dang@example.test: ghost
!old@example.test: alice
trap@example.test: :spamtrap
tostaff@example.test: staff
"""

LISTS = """\
[staff@example.test]
members = alice, bob
senders = members

[board@example.test]
members = alice
senders = boss@example.org, @partner.example

[open@example.test]
members = alice, bob

[empty@example.test]

[closed@example.test]
members = alice
disabled = yes
"""

EXTRA = {
    "carol": "disabled=yes",
    "trapper": "spamtrap=yes",
}
# the suite's accounts plus a spam-trap account
ACCTS = dict(ACCOUNTS, trapper=ACCOUNTS["alice"])


def files(srv, aliases=ALIASES, lists=LISTS):
    (srv.dir / "aliases").write_text(aliases, encoding="utf-8")
    (srv.dir / "lists").write_text(lists, encoding="utf-8")


def conf(**local):
    c = {"local": {"domains": DOMAIN + ", off.example",
                   "disabled_domains": "off.example",
                   "aliases": "aliases", "lists": "lists"}}
    c["local"].update(local)
    return c


@pytest.fixture
def srv(make_server):
    s = make_server(conf=conf(), start=False, accounts=ACCTS, account_extra=EXTRA)
    files(s)
    s.write_config()
    return s.start()


def rcpt(srv, to, frm="sender@example.org"):
    """MAIL + one RCPT on a raw connection; returns the RCPT reply."""
    with srv.raw() as c:
        assert c.cmd("EHLO client.example.org").code == 250
        r = c.cmd("MAIL FROM:<%s>" % frm)
        assert r.code == 250, r
        out = c.cmd("RCPT TO:<%s>" % to)
        c.cmd("QUIT")
        return out


def deliver(srv, to, frm="sender@example.org", token="m"):
    code, msg = srv.send_mail(frm=frm, rcpts=to, data=make_message(token))
    assert code == 250, (code, msg)


def count(srv, user):
    return len(srv.maildir(user))


def settle(srv):
    srv.wait_queue_empty()


# ----------------------------------------------------------- point 1: addresses

def test_alias_to_one(srv):
    deliver(srv, ["info@example.test"], token="info")
    srv.wait_mail("alice")
    settle(srv)
    assert count(srv, "alice") == 1
    assert not (srv.mail / DOMAIN / "info").exists()


def test_alias_to_many(srv):
    deliver(srv, ["sales@example.test"], token="sales")
    srv.wait_mail("alice")
    srv.wait_mail("bob")
    settle(srv)
    assert count(srv, "alice") == 1 and count(srv, "bob") == 1
    body = srv.maildir("bob")[0].read_bytes()
    assert b"Subject: test sales" in body


def test_alias_local_and_remote(srv):
    r = rcpt(srv, "mixed@example.test")
    assert r.code == 250, r
    deliver(srv, ["mixed@example.test"], token="mixed")
    srv.wait_mail("alice")


def test_nested_alias_delivers_once(srv):
    # team -> sales (alice, bob) + alice: alice gets one copy
    deliver(srv, ["team@example.test", "sales@example.test"], token="team")
    srv.wait_mail("alice")
    srv.wait_mail("bob")
    # the spool file goes only once every recipient of the message is
    # delivered: once the queue is empty no second copy can come
    settle(srv)
    assert count(srv, "bob") == 1
    assert count(srv, "alice") == 1


def test_alias_case_insensitive(srv):
    r = rcpt(srv, "SALES@Example.Test")
    assert r.code == 250, r


def test_alias_loop_refused_at_rcpt(srv):
    mark = srv.mark()
    r = rcpt(srv, "cyc1@example.test")
    assert r.last == ("451 4.4.6 <cyc1@example.test>: Alias expansion loop "
                      "[RCPT-ALIAS-LOOP]"), r
    ev = srv.wait_event("RCPT-ALIAS-LOOP", after=mark)[0]
    assert "cyc2@example.test" in ev.get("chain", ""), ev
    settle(srv)
    assert srv.maildir("alice") == []


def test_alias_dangling(srv):
    mark = srv.mark()
    r = rcpt(srv, "dang@example.test")
    assert r.last == ("451 4.3.5 <dang@example.test>: Recipient misconfigured "
                      "on this system [RCPT-ALIAS-DANGLING]"), r
    srv.wait_event("RCPT-ALIAS-DANGLING", after=mark)


def test_unknown_user_still_refused(srv):
    r = rcpt(srv, "nobody@example.test")
    assert r.code == 550 and "[RCPT-UNKNOWN-USER]" in r.last, r


def test_list_members_only(srv):
    r = rcpt(srv, "staff@example.test", frm="alice@example.test")
    assert r.code == 250, r
    deliver(srv, ["staff@example.test"], frm="bob@example.test", token="staff")
    srv.wait_mail("alice")
    srv.wait_mail("bob")
    mark = srv.mark()
    r = rcpt(srv, "staff@example.test", frm="stranger@example.org")
    assert r.last == ("550 5.7.2 <staff@example.test>: Mailing list expansion "
                      "prohibited [RCPT-LIST-NOT-AUTHORIZED]"), r
    srv.wait_event("RCPT-LIST-NOT-AUTHORIZED", after=mark)
    r = rcpt(srv, "staff@example.test", frm="")
    assert r.code == 550 and "[RCPT-LIST-NOT-AUTHORIZED]" in r.last, r


def test_list_listed_senders(srv):
    assert rcpt(srv, "board@example.test", frm="boss@example.org").code == 250
    assert rcpt(srv, "board@example.test", frm="anyone@partner.example").code == 250
    r = rcpt(srv, "board@example.test", frm="alice@example.test")
    assert r.code == 550 and "[RCPT-LIST-NOT-AUTHORIZED]" in r.last, r


def test_list_anyone(srv):
    deliver(srv, ["open@example.test"], frm="whoever@example.org", token="open")
    srv.wait_mail("alice")
    srv.wait_mail("bob")
    # an alias pointing at a list keeps the list's sender rule
    r = rcpt(srv, "tostaff@example.test", frm="stranger@example.org")
    assert r.code == 550 and "[RCPT-LIST-NOT-AUTHORIZED]" in r.last, r


def test_list_empty(srv):
    r = rcpt(srv, "empty@example.test")
    assert r.last == ("550 5.2.4 <empty@example.test>: Mailing list expansion "
                      "problem [RCPT-LIST-EMPTY]"), r


def test_catch_all(make_server):
    s = make_server(conf=conf(), start=False)
    files(s, aliases="@example.test: bob\n", lists="")
    s.write_config()
    s.start()
    deliver(s, ["whatever@example.test"], token="catchall")
    s.wait_mail("bob")
    # an existing account is not caught
    deliver(s, ["alice@example.test"], token="direct")
    s.wait_mail("alice")
    s.wait_queue_empty()
    assert count(s, "bob") == 1


def test_catch_all_dangling(make_server):
    s = make_server(conf=conf(), start=False)
    files(s, aliases="@example.test: ghost\n", lists="")
    s.write_config()
    s.start()
    r = rcpt(s, "whatever@example.test")
    assert r.code == 451 and "[RCPT-ALIAS-DANGLING]" in r.last, r


def test_forward(make_server):
    extra = {"carol": "forward=alice", "bob": "forward=alice forward_keep=yes"}
    s = make_server(conf=conf(), start=False, account_extra=extra)
    files(s, aliases="", lists="")
    s.write_config()
    s.start()
    deliver(s, ["carol@example.test"], token="fwd")
    s.wait_mail("alice")
    deliver(s, ["bob@example.test"], token="keep")
    s.wait_mail("bob")
    s.wait_mail("alice", count=2)
    s.wait_queue_empty()
    assert count(s, "carol") == 0


def test_forward_loop(make_server):
    extra = {"carol": "forward=bob", "bob": "forward=carol"}
    s = make_server(conf=conf(), start=False, account_extra=extra)
    files(s, aliases="", lists="")
    s.write_config()
    s.start()
    r = rcpt(s, "carol@example.test")
    assert r.code == 451 and "[RCPT-ALIAS-LOOP]" in r.last, r


def test_plus_addressing(make_server):
    s = make_server(conf=conf(plus_addressing="yes"), start=False)
    files(s)
    s.write_config()
    s.start()
    deliver(s, ["alice+news@example.test"], token="plus")
    s.wait_mail("alice")
    assert rcpt(s, "sales+x@example.test").code == 250


def test_plus_addressing_off(srv):
    r = rcpt(srv, "alice+news@example.test")
    assert r.code == 550 and "[RCPT-UNKNOWN-USER]" in r.last, r


def test_expansion_too_large(make_server):
    lists = "".join("[big%d@example.test]\n" % k + "".join(
        "members = m%d.%d@example.org\n" % (k, i) for i in range(600))
        for k in range(2))
    lists += "[huge@example.test]\nmembers = big0, big1\n"
    s = make_server(conf=conf(), start=False)
    files(s, aliases="", lists=lists)
    s.write_config()
    s.start()
    r = rcpt(s, "huge@example.test")
    assert r.last == ("451 4.5.3 <huge@example.test>: Alias expansion too large "
                      "[RCPT-EXPANSION-TOO-LARGE]"), r


# ----------------------------------------------------------- point 2: states

def test_disabled_account(srv):
    mark = srv.mark()
    r = rcpt(srv, "carol@example.test")
    assert r.last == ("550 5.2.1 <carol@example.test>: Mailbox disabled, not "
                      "accepting messages [RCPT-MAILBOX-DISABLED]"), r
    srv.wait_event("RCPT-MAILBOX-DISABLED", after=mark)


def test_disabled_alias(srv):
    mark = srv.mark()
    r = rcpt(srv, "old@example.test")
    assert r.last == ("550 5.2.1 <old@example.test>: Mailbox disabled, not "
                      "accepting messages [RCPT-ALIAS-DISABLED]"), r
    ev = srv.wait_event("RCPT-ALIAS-DISABLED", after=mark)[0]
    assert ev.get("kind") == "alias", ev


def test_disabled_list(srv):
    mark = srv.mark()
    r = rcpt(srv, "closed@example.test")
    assert r.last == ("550 5.2.1 <closed@example.test>: Mailbox disabled, not "
                      "accepting messages [RCPT-ALIAS-DISABLED]"), r
    ev = srv.wait_event("RCPT-ALIAS-DISABLED", after=mark)[0]
    assert ev.get("kind") == "list", ev


def test_disabled_domain(srv):
    mark = srv.mark()
    for addr in ("someone@off.example", "postmaster@off.example"):
        r = rcpt(srv, addr)
        assert r.last == ("550 5.2.1 <%s>: Mailbox disabled (domain disabled) "
                          "[RCPT-DOMAIN-DISABLED]" % addr), r
    ev = srv.wait_event("RCPT-DOMAIN-DISABLED", after=mark)[0]
    assert ev.get("domain") == "off.example", ev


def test_spamtrap_account(srv):
    mark = srv.mark()
    r = rcpt(srv, "trapper@example.test")
    assert r.code == 550 and r.text.startswith("5.2.1"), r
    assert r.last.endswith("Mailbox disabled [RCPT-SPAMTRAP]"), r
    ev = srv.wait_event("RCPT-SPAMTRAP", after=mark)[0]
    assert ev.get("client") == "127.0.0.1", ev
    settle(srv)
    assert srv.maildir("trapper") == []


def test_spamtrap_alias(srv):
    mark = srv.mark()
    r = rcpt(srv, "trap@example.test")
    assert r.last == "550 5.2.1 <trap@example.test>: Mailbox disabled [RCPT-SPAMTRAP]", r
    ev = srv.wait_event("RCPT-SPAMTRAP", after=mark)[0]
    assert ev.get("client") == "127.0.0.1", ev


def test_other_recipients_unaffected(srv):
    """A refused recipient does not spoil the transaction's good ones."""
    with srv.smtp() as c:
        c.ehlo("client.example.org")
        assert c.mail("sender@example.org")[0] == 250
        assert c.rcpt("carol@example.test")[0] == 550
        assert c.rcpt("cyc1@example.test")[0] == 451
        assert c.rcpt("info@example.test")[0] == 250
        code, _ = c.data(make_message("mixed-rcpts"))
        assert code == 250
    srv.wait_mail("alice")


# ----------------------------------------------------------- reload

def test_sighup_reloads_aliases(srv):
    assert rcpt(srv, "new@example.test").code == 550
    files(srv, aliases=ALIASES + "new@example.test: bob\ninfo2@example.test: bob\n")
    mark = srv.mark()
    srv.signal(signal.SIGHUP)
    srv.wait_event("CONFIG-RELOADED", after=mark)
    deliver(srv, ["new@example.test"], token="hup")
    srv.wait_mail("bob")

    # a broken aliases file: reported with its line, the old one stays
    files(srv, aliases="new@example.test alice\n")
    mark = srv.mark()
    srv.signal(signal.SIGHUP)
    srv.wait_event("CONFIG-RELOAD-FAILED", after=mark)
    ev = srv.wait_event("CONFIG-INVALID", after=mark)[0]
    assert ev.get("path", "").endswith("aliases") and ev.get("line") == "1", ev
    assert rcpt(srv, "info2@example.test").code == 250


def test_check_reports_alias_errors(make_server):
    from conftest import run_cli
    s = make_server(conf=conf(), start=False)
    files(s, aliases="ok@example.test: alice\nbad@example.test: a..b\n",
          lists="[staff@example.test]\ncolour = blue\n")
    s.write_config()
    p = run_cli("check", "-c", str(s.config))
    assert p.returncode == 78, p
    assert "aliases:2: bad target \"a..b\"" in p.stderr + p.stdout, p
    assert "lists:2: unknown key \"colour\"" in p.stderr + p.stdout, p
