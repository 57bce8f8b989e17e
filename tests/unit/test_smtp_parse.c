/*
 * test_smtp_parse.c - unit tests for smtp/smtp_parse.c: one table of named
 * command lines with the condition each must give (or OK), then checks of
 * the fields filled in, the length limits, xtext and the verb names.
 */
#include "smtp_parse.h"

#include <stdlib.h>
#include <string.h>

#include "testing.h"

#define OK (-1)
#define ALL (SMTP_EXT_SIZE | SMTP_EXT_8BITMIME | SMTP_EXT_SMTPUTF8 | \
	     SMTP_EXT_DSN | SMTP_EXT_CHUNKING | SMTP_EXT_AUTH)

struct pcase {
	const char *name;
	const char *line;
	unsigned offered;
	int want;		/* OK or a COND_ */
	enum smtp_verb verb;
	const char *mailbox;	/* checked when not NULL and want == OK */
};

static const struct pcase cases[] = {
	/* verbs */
	{ "quit", "QUIT", ALL, OK, SMTP_VERB_QUIT, NULL },
	{ "quit lower", "quit", ALL, OK, SMTP_VERB_QUIT, NULL },
	{ "quit mixed", "QuIt", ALL, OK, SMTP_VERB_QUIT, NULL },
	{ "quit trailing space", "QUIT  ", ALL, OK, SMTP_VERB_QUIT, NULL },
	{ "quit with arg", "QUIT now", ALL, COND_SMTP_ARG_INVALID, SMTP_VERB_QUIT, NULL },
	{ "data", "DATA", ALL, OK, SMTP_VERB_DATA, NULL },
	{ "data with arg", "DATA x", ALL, COND_SMTP_ARG_INVALID, SMTP_VERB_DATA, NULL },
	{ "rset", "rset", ALL, OK, SMTP_VERB_RSET, NULL },
	{ "rset with arg", "RSET all", ALL, COND_SMTP_ARG_INVALID, SMTP_VERB_RSET, NULL },
	{ "starttls", "STARTTLS", ALL, OK, SMTP_VERB_STARTTLS, NULL },
	{ "starttls with arg", "STARTTLS now", ALL, COND_SMTP_ARG_INVALID, SMTP_VERB_STARTTLS, NULL },
	{ "turn", "TURN", ALL, OK, SMTP_VERB_TURN, NULL },
	{ "turn with arg", "TURN x", ALL, COND_SMTP_ARG_INVALID, SMTP_VERB_TURN, NULL },
	{ "noop", "NOOP", ALL, OK, SMTP_VERB_NOOP, NULL },
	{ "noop with args", "NOOP hello there", ALL, OK, SMTP_VERB_NOOP, NULL },
	{ "noop utf8", "NOOP caf\xc3\xa9", ALL, OK, SMTP_VERB_NOOP, NULL },
	{ "noop bad utf8", "NOOP \xff", ALL, COND_SMTP_ARG_SYNTAX, SMTP_VERB_NOOP, NULL },
	{ "help", "HELP", ALL, OK, SMTP_VERB_HELP, NULL },
	{ "help topic", "help MAIL", ALL, OK, SMTP_VERB_HELP, NULL },
	{ "vrfy no arg", "VRFY", ALL, COND_SMTP_ARG_INVALID, SMTP_VERB_VRFY, NULL },
	{ "vrfy only spaces", "VRFY   ", ALL, COND_SMTP_ARG_INVALID, SMTP_VERB_VRFY, NULL },
	{ "vrfy", "VRFY bob", ALL, OK, SMTP_VERB_VRFY, NULL },
	{ "vrfy utf8", "VRFY j\xc3\xb6rg", ALL, OK, SMTP_VERB_VRFY, NULL },
	{ "vrfy cut utf8", "VRFY j\xc3", ALL, COND_SMTP_ARG_SYNTAX, SMTP_VERB_VRFY, NULL },
	{ "expn no arg", "EXPN", ALL, COND_SMTP_ARG_INVALID, SMTP_VERB_EXPN, NULL },
	{ "expn", "EXPN staff", ALL, OK, SMTP_VERB_EXPN, NULL },
	{ "auth no arg", "AUTH", ALL, COND_SMTP_ARG_INVALID, SMTP_VERB_AUTH, NULL },
	{ "auth plain", "AUTH PLAIN AGJvYgBzZWNyZXQ=", ALL, OK, SMTP_VERB_AUTH, NULL },
	{ "auth 8bit", "AUTH PLAIN \xc3\xa9", ALL, COND_SMTP_ARG_SYNTAX, SMTP_VERB_AUTH, NULL },
	{ "etrn", "ETRN example.org", ALL, OK, SMTP_VERB_ETRN, NULL },
	{ "send", "SEND FROM:<a@b.example>", ALL, OK, SMTP_VERB_SEND, NULL },
	{ "soml", "SOML FROM:<a@b.example>", ALL, OK, SMTP_VERB_SOML, NULL },
	{ "saml", "SAML FROM:<a@b.example>", ALL, OK, SMTP_VERB_SAML, NULL },
	{ "atrn", "ATRN", ALL, OK, SMTP_VERB_ATRN, NULL },
	{ "unknown verb", "FOO", ALL, COND_SMTP_COMMAND_UNKNOWN, SMTP_VERB_UNKNOWN, NULL },
	{ "empty line", "", ALL, COND_SMTP_COMMAND_UNKNOWN, SMTP_VERB_UNKNOWN, NULL },
	{ "only spaces", "   ", ALL, COND_SMTP_COMMAND_UNKNOWN, SMTP_VERB_UNKNOWN, NULL },
	{ "leading space", " QUIT", ALL, COND_SMTP_COMMAND_UNKNOWN, SMTP_VERB_UNKNOWN, NULL },
	{ "verb prefix", "QUITX", ALL, COND_SMTP_COMMAND_UNKNOWN, SMTP_VERB_UNKNOWN, NULL },
	{ "verb glued", "MAILFROM:<a@b.example>", ALL, COND_SMTP_COMMAND_UNKNOWN, SMTP_VERB_UNKNOWN, NULL },
	{ "verb 8bit", "\xc3\xa9HLO x", ALL, COND_SMTP_COMMAND_UNKNOWN, SMTP_VERB_UNKNOWN, NULL },
	{ "unknown name", "UNKNOWN", ALL, COND_SMTP_COMMAND_UNKNOWN, SMTP_VERB_UNKNOWN, NULL },
	{ "http", "GET / HTTP/1.0", ALL, COND_SMTP_COMMAND_UNKNOWN, SMTP_VERB_UNKNOWN, NULL },
	{ "del byte", "HELO\x7f", ALL, COND_SMTP_COMMAND_NON_ASCII, SMTP_VERB_UNKNOWN, NULL },
	{ "tab", "HELO\tx.example", ALL, COND_SMTP_COMMAND_NON_ASCII, SMTP_VERB_UNKNOWN, NULL },
	{ "stray cr", "QUIT\r", ALL, COND_SMTP_COMMAND_NON_ASCII, SMTP_VERB_UNKNOWN, NULL },
	{ "escape in arg", "NOOP \x1b[2J", ALL, COND_SMTP_COMMAND_NON_ASCII, SMTP_VERB_UNKNOWN, NULL },
	{ "control in path", "RCPT TO:<a\x01@b.example>", ALL, COND_SMTP_COMMAND_NON_ASCII, SMTP_VERB_UNKNOWN, NULL },
	{ "two spaces after verb", "MAIL  FROM:<a@b.example>", ALL, OK, SMTP_VERB_MAIL, "a@b.example" },

	/* HELO / EHLO */
	{ "ehlo domain", "EHLO mail.example.org", ALL, OK, SMTP_VERB_EHLO, NULL },
	{ "helo domain", "HELO mail.example.org", ALL, OK, SMTP_VERB_HELO, NULL },
	{ "ehlo dotless", "ehlo localhost", ALL, OK, SMTP_VERB_EHLO, NULL },
	{ "ehlo trailing spaces", "EHLO mail.example.org   ", ALL, OK, SMTP_VERB_EHLO, NULL },
	{ "ehlo a-label", "EHLO xn--bcher-kva.example", ALL, OK, SMTP_VERB_EHLO, NULL },
	{ "ehlo digit first", "EHLO 3com.example", ALL, OK, SMTP_VERB_EHLO, NULL },
	{ "ehlo numeric (grammar allows)", "EHLO 192.0.2.1", ALL, OK, SMTP_VERB_EHLO, NULL },
	{ "ehlo ipv4 literal", "EHLO [192.0.2.1]", ALL, OK, SMTP_VERB_EHLO, NULL },
	{ "ehlo ipv6 literal", "EHLO [IPv6:2001:db8::1]", ALL, OK, SMTP_VERB_EHLO, NULL },
	{ "ehlo ipv6 lower tag", "EHLO [ipv6:::1]", ALL, OK, SMTP_VERB_EHLO, NULL },
	{ "ehlo ipv6v4", "EHLO [IPv6:::ffff:192.0.2.1]", ALL, OK, SMTP_VERB_EHLO, NULL },
	{ "ehlo missing", "EHLO", ALL, COND_SMTP_HELO_INVALID, SMTP_VERB_EHLO, NULL },
	{ "helo missing", "HELO ", ALL, COND_SMTP_HELO_INVALID, SMTP_VERB_HELO, NULL },
	{ "ehlo two words", "EHLO a.example b", ALL, COND_SMTP_HELO_INVALID, SMTP_VERB_EHLO, NULL },
	{ "ehlo leading hyphen", "EHLO -a.example", ALL, COND_SMTP_HELO_INVALID, SMTP_VERB_EHLO, NULL },
	{ "ehlo trailing hyphen", "EHLO a-.example", ALL, COND_SMTP_HELO_INVALID, SMTP_VERB_EHLO, NULL },
	{ "ehlo empty label", "EHLO a..example", ALL, COND_SMTP_HELO_INVALID, SMTP_VERB_EHLO, NULL },
	{ "ehlo leading dot", "EHLO .a.example", ALL, COND_SMTP_HELO_INVALID, SMTP_VERB_EHLO, NULL },
	{ "ehlo trailing dot", "EHLO a.example.", ALL, COND_SMTP_HELO_INVALID, SMTP_VERB_EHLO, NULL },
	{ "ehlo only dot", "EHLO .", ALL, COND_SMTP_HELO_INVALID, SMTP_VERB_EHLO, NULL },
	{ "ehlo underscore", "EHLO a_b.example", ALL, COND_SMTP_HELO_INVALID, SMTP_VERB_EHLO, NULL },
	{ "ehlo ipv4 out of range", "EHLO [192.0.2.256]", ALL, COND_SMTP_HELO_INVALID, SMTP_VERB_EHLO, NULL },
	{ "ehlo ipv4 short", "EHLO [192.0.2]", ALL, COND_SMTP_HELO_INVALID, SMTP_VERB_EHLO, NULL },
	{ "ehlo ipv4 long", "EHLO [1.2.3.4.5]", ALL, COND_SMTP_HELO_INVALID, SMTP_VERB_EHLO, NULL },
	{ "ehlo ipv4 unclosed", "EHLO [192.0.2.1", ALL, COND_SMTP_HELO_INVALID, SMTP_VERB_EHLO, NULL },
	{ "ehlo empty literal", "EHLO []", ALL, COND_SMTP_HELO_INVALID, SMTP_VERB_EHLO, NULL },
	{ "ehlo ipv6 bad hex", "EHLO [IPv6:2001:db8::g]", ALL, COND_SMTP_HELO_INVALID, SMTP_VERB_EHLO, NULL },
	{ "ehlo ipv6 without tag", "EHLO [2001:db8::1]", ALL, COND_SMTP_HELO_INVALID, SMTP_VERB_EHLO, NULL },
	{ "ehlo ipv6 tag v4", "EHLO [IPv6:1.2.3.4]", ALL, COND_SMTP_HELO_INVALID, SMTP_VERB_EHLO, NULL },
	{ "ehlo general literal", "EHLO [x-tag:foo]", ALL, COND_SMTP_HELO_INVALID, SMTP_VERB_EHLO, NULL },
	{ "ehlo utf8", "EHLO b\xc3\xbc" "cher.example", ALL, COND_SMTP_HELO_INVALID, SMTP_VERB_EHLO, NULL },
	{ "ehlo address", "EHLO user@example.org", ALL, COND_SMTP_HELO_INVALID, SMTP_VERB_EHLO, NULL },

	/* MAIL: command syntax */
	{ "mail", "MAIL FROM:<user@example.org>", ALL, OK, SMTP_VERB_MAIL, "user@example.org" },
	{ "mail lower", "mail from:<user@example.org>", ALL, OK, SMTP_VERB_MAIL, "user@example.org" },
	{ "mail space after colon", "MAIL FROM: <user@example.org>", ALL, OK, SMTP_VERB_MAIL, "user@example.org" },
	{ "mail two spaces after colon", "MAIL FROM:  <user@example.org>", ALL, COND_SMTP_ARG_SYNTAX, SMTP_VERB_MAIL, NULL },
	{ "mail no brackets", "MAIL FROM:user@example.org", ALL, COND_SMTP_ARG_SYNTAX, SMTP_VERB_MAIL, NULL },
	{ "mail no closing bracket", "MAIL FROM:<user@example.org", ALL, COND_SMTP_ARG_SYNTAX, SMTP_VERB_MAIL, NULL },
	{ "mail no colon", "MAIL FROM <user@example.org>", ALL, COND_SMTP_ARG_SYNTAX, SMTP_VERB_MAIL, NULL },
	{ "mail to", "MAIL TO:<user@example.org>", ALL, COND_SMTP_ARG_SYNTAX, SMTP_VERB_MAIL, NULL },
	{ "mail no arg", "MAIL", ALL, COND_SMTP_ARG_SYNTAX, SMTP_VERB_MAIL, NULL },
	{ "mail from only", "MAIL FROM:", ALL, COND_SMTP_ARG_SYNTAX, SMTP_VERB_MAIL, NULL },
	{ "mail junk after bracket", "MAIL FROM:<user@example.org>x", ALL, COND_SMTP_ARG_SYNTAX, SMTP_VERB_MAIL, NULL },
	{ "mail unterminated quote", "MAIL FROM:<\"user@example.org>", ALL, COND_SMTP_ARG_SYNTAX, SMTP_VERB_MAIL, NULL },

	/* MAIL: paths */
	{ "mail null", "MAIL FROM:<>", ALL, OK, SMTP_VERB_MAIL, "" },
	{ "mail null with size", "MAIL FROM:<> SIZE=100", ALL, OK, SMTP_VERB_MAIL, "" },
	{ "mail postmaster", "MAIL FROM:<postmaster>", ALL, COND_SMTP_SENDER_SYNTAX, SMTP_VERB_MAIL, NULL },
	{ "mail no domain", "MAIL FROM:<user>", ALL, COND_SMTP_SENDER_SYNTAX, SMTP_VERB_MAIL, NULL },
	{ "mail no local", "MAIL FROM:<@example.org>", ALL, COND_SMTP_SENDER_SYNTAX, SMTP_VERB_MAIL, NULL },
	{ "mail empty domain", "MAIL FROM:<user@>", ALL, COND_SMTP_SENDER_SYNTAX, SMTP_VERB_MAIL, NULL },
	{ "mail two at", "MAIL FROM:<a@b@example.org>", ALL, COND_SMTP_SENDER_SYNTAX, SMTP_VERB_MAIL, NULL },
	{ "mail leading dot", "MAIL FROM:<.user@example.org>", ALL, COND_SMTP_SENDER_SYNTAX, SMTP_VERB_MAIL, NULL },
	{ "mail trailing dot", "MAIL FROM:<user.@example.org>", ALL, COND_SMTP_SENDER_SYNTAX, SMTP_VERB_MAIL, NULL },
	{ "mail double dot", "MAIL FROM:<us..er@example.org>", ALL, COND_SMTP_SENDER_SYNTAX, SMTP_VERB_MAIL, NULL },
	{ "mail dotted local", "MAIL FROM:<first.last+tag@example.org>", ALL, OK, SMTP_VERB_MAIL, "first.last+tag@example.org" },
	{ "mail all atext", "MAIL FROM:<!#$%&'*+-/=?^_`{|}~@example.org>", ALL, OK, SMTP_VERB_MAIL, "!#$%&'*+-/=?^_`{|}~@example.org" },
	{ "mail percent bang", "MAIL FROM:<a%b!c@example.org>", ALL, OK, SMTP_VERB_MAIL, "a%b!c@example.org" },
	{ "mail quoted", "MAIL FROM:<\"john doe\"@example.org>", ALL, OK, SMTP_VERB_MAIL, "\"john doe\"@example.org" },
	{ "mail quoted pair", "MAIL FROM:<\"a\\\"b\"@example.org>", ALL, OK, SMTP_VERB_MAIL, "\"a\\\"b\"@example.org" },
	{ "mail quoted bracket", "MAIL FROM:<\"a>b\"@example.org>", ALL, OK, SMTP_VERB_MAIL, "\"a>b\"@example.org" },
	{ "mail quoted empty", "MAIL FROM:<\"\"@example.org>", ALL, OK, SMTP_VERB_MAIL, "\"\"@example.org" },
	{ "mail quoted then junk", "MAIL FROM:<\"a\"b@example.org>", ALL, COND_SMTP_SENDER_SYNTAX, SMTP_VERB_MAIL, NULL },
	{ "mail space in local", "MAIL FROM:<a b@example.org>", ALL, COND_SMTP_SENDER_SYNTAX, SMTP_VERB_MAIL, NULL },
	{ "mail paren in local", "MAIL FROM:<a(b)@example.org>", ALL, COND_SMTP_SENDER_SYNTAX, SMTP_VERB_MAIL, NULL },
	{ "mail ipv4 domain", "MAIL FROM:<user@[192.0.2.1]>", ALL, OK, SMTP_VERB_MAIL, "user@[192.0.2.1]" },
	{ "mail ipv6 domain", "MAIL FROM:<user@[IPv6:2001:db8::1]>", ALL, OK, SMTP_VERB_MAIL, "user@[IPv6:2001:db8::1]" },
	{ "mail bad ipv4 domain", "MAIL FROM:<user@[300.0.0.1]>", ALL, COND_SMTP_SENDER_SYNTAX, SMTP_VERB_MAIL, NULL },
	{ "mail bad domain", "MAIL FROM:<user@-bad.example>", ALL, COND_SMTP_SENDER_SYNTAX, SMTP_VERB_MAIL, NULL },
	{ "mail domain trailing dot", "MAIL FROM:<user@example.org.>", ALL, COND_SMTP_SENDER_SYNTAX, SMTP_VERB_MAIL, NULL },
	{ "mail route", "MAIL FROM:<@a.example,@b.example:user@c.example>", ALL, OK, SMTP_VERB_MAIL, "user@c.example" },
	{ "mail route one hop", "MAIL FROM:<@a.example:user@c.example>", ALL, OK, SMTP_VERB_MAIL, "user@c.example" },
	{ "mail route missing at", "MAIL FROM:<@a.example,b.example:user@c.example>", ALL, COND_SMTP_SENDER_SYNTAX, SMTP_VERB_MAIL, NULL },
	{ "mail route empty domain", "MAIL FROM:<@:user@c.example>", ALL, COND_SMTP_SENDER_SYNTAX, SMTP_VERB_MAIL, NULL },
	{ "mail route bad domain", "MAIL FROM:<@a..example:user@c.example>", ALL, COND_SMTP_SENDER_SYNTAX, SMTP_VERB_MAIL, NULL },
	{ "mail route no mailbox", "MAIL FROM:<@a.example:>", ALL, COND_SMTP_SENDER_SYNTAX, SMTP_VERB_MAIL, NULL },
	{ "mail utf8 local", "MAIL FROM:<j\xc3\xb6rg@example.org> SMTPUTF8", ALL, OK, SMTP_VERB_MAIL, "j\xc3\xb6rg@example.org" },
	{ "mail utf8 domain", "MAIL FROM:<user@b\xc3\xbc" "cher.example> SMTPUTF8", ALL, OK, SMTP_VERB_MAIL, "user@b\xc3\xbc" "cher.example" },
	{ "mail utf8 quoted", "MAIL FROM:<\"j\xc3\xb6rg m\"@example.org> SMTPUTF8", ALL, OK, SMTP_VERB_MAIL, NULL },
	{ "mail utf8 without SMTPUTF8", "MAIL FROM:<j\xc3\xb6rg@example.org>", ALL, COND_SMTP_UTF8_REQUIRED, SMTP_VERB_MAIL, NULL },
	{ "mail utf8 domain without SMTPUTF8", "MAIL FROM:<user@b\xc3\xbc" "cher.example> SIZE=1", ALL, COND_SMTP_UTF8_REQUIRED, SMTP_VERB_MAIL, NULL },
	{ "mail utf8 not offered", "MAIL FROM:<j\xc3\xb6rg@example.org> SMTPUTF8", ALL & ~SMTP_EXT_SMTPUTF8, COND_SMTP_PARAM_UNSUPPORTED, SMTP_VERB_MAIL, NULL },
	{ "mail cut utf8", "MAIL FROM:<j\xc3@example.org> SMTPUTF8", ALL, COND_SMTP_SENDER_SYNTAX, SMTP_VERB_MAIL, NULL },
	{ "mail overlong utf8", "MAIL FROM:<a\xc0\xaf@example.org> SMTPUTF8", ALL, COND_SMTP_SENDER_SYNTAX, SMTP_VERB_MAIL, NULL },
	{ "mail surrogate utf8", "MAIL FROM:<a\xed\xa0\x80@example.org> SMTPUTF8", ALL, COND_SMTP_SENDER_SYNTAX, SMTP_VERB_MAIL, NULL },
	{ "mail above U+10FFFF", "MAIL FROM:<a\xf4\x90\x80\x80@example.org> SMTPUTF8", ALL, COND_SMTP_SENDER_SYNTAX, SMTP_VERB_MAIL, NULL },
	{ "mail 4-byte utf8", "MAIL FROM:<a\xf0\x9f\x93\xa7@example.org> SMTPUTF8", ALL, OK, SMTP_VERB_MAIL, NULL },
	{ "mail bad utf8 domain", "MAIL FROM:<a@b\xff.example> SMTPUTF8", ALL, COND_SMTP_SENDER_SYNTAX, SMTP_VERB_MAIL, NULL },

	/* MAIL: parameters */
	{ "size", "MAIL FROM:<a@b.example> SIZE=12345", ALL, OK, SMTP_VERB_MAIL, "a@b.example" },
	{ "size lower", "MAIL FROM:<a@b.example> size=10", ALL, OK, SMTP_VERB_MAIL, NULL },
	{ "size zero", "MAIL FROM:<a@b.example> SIZE=0", ALL, OK, SMTP_VERB_MAIL, NULL },
	{ "size max", "MAIL FROM:<a@b.example> SIZE=18446744073709551615", ALL, OK, SMTP_VERB_MAIL, NULL },
	{ "size overflow", "MAIL FROM:<a@b.example> SIZE=18446744073709551616", ALL, COND_SMTP_PARAM_INVALID, SMTP_VERB_MAIL, NULL },
	{ "size 21 digits", "MAIL FROM:<a@b.example> SIZE=000000000000000000001", ALL, COND_SMTP_PARAM_INVALID, SMTP_VERB_MAIL, NULL },
	{ "size letters", "MAIL FROM:<a@b.example> SIZE=abc", ALL, COND_SMTP_PARAM_INVALID, SMTP_VERB_MAIL, NULL },
	{ "size negative", "MAIL FROM:<a@b.example> SIZE=-1", ALL, COND_SMTP_PARAM_INVALID, SMTP_VERB_MAIL, NULL },
	{ "size empty", "MAIL FROM:<a@b.example> SIZE=", ALL, COND_SMTP_PARAM_INVALID, SMTP_VERB_MAIL, NULL },
	{ "size no value", "MAIL FROM:<a@b.example> SIZE", ALL, COND_SMTP_PARAM_INVALID, SMTP_VERB_MAIL, NULL },
	{ "size twice", "MAIL FROM:<a@b.example> SIZE=1 SIZE=2", ALL, COND_SMTP_PARAM_INVALID, SMTP_VERB_MAIL, NULL },
	{ "size double equals", "MAIL FROM:<a@b.example> SIZE==10", ALL, COND_SMTP_PARAM_INVALID, SMTP_VERB_MAIL, NULL },
	{ "size not offered", "MAIL FROM:<a@b.example> SIZE=10", ALL & ~SMTP_EXT_SIZE, COND_SMTP_PARAM_UNSUPPORTED, SMTP_VERB_MAIL, NULL },
	{ "body 8bitmime", "MAIL FROM:<a@b.example> BODY=8BITMIME", ALL, OK, SMTP_VERB_MAIL, NULL },
	{ "body 7bit lower", "MAIL FROM:<a@b.example> body=7bit", ALL, OK, SMTP_VERB_MAIL, NULL },
	{ "body binarymime", "MAIL FROM:<a@b.example> BODY=BINARYMIME", ALL, COND_SMTP_PARAM_INVALID, SMTP_VERB_MAIL, NULL },
	{ "body empty", "MAIL FROM:<a@b.example> BODY=", ALL, COND_SMTP_PARAM_INVALID, SMTP_VERB_MAIL, NULL },
	{ "body no value", "MAIL FROM:<a@b.example> BODY", ALL, COND_SMTP_PARAM_INVALID, SMTP_VERB_MAIL, NULL },
	{ "body not offered", "MAIL FROM:<a@b.example> BODY=8BITMIME", ALL & ~SMTP_EXT_8BITMIME, COND_SMTP_PARAM_UNSUPPORTED, SMTP_VERB_MAIL, NULL },
	{ "smtputf8 ascii", "MAIL FROM:<a@b.example> SMTPUTF8", ALL, OK, SMTP_VERB_MAIL, NULL },
	{ "smtputf8 with value", "MAIL FROM:<a@b.example> SMTPUTF8=yes", ALL, COND_SMTP_PARAM_INVALID, SMTP_VERB_MAIL, NULL },
	{ "ret full", "MAIL FROM:<a@b.example> RET=FULL", ALL, OK, SMTP_VERB_MAIL, NULL },
	{ "ret hdrs lower", "MAIL FROM:<a@b.example> ret=hdrs", ALL, OK, SMTP_VERB_MAIL, NULL },
	{ "ret bad", "MAIL FROM:<a@b.example> RET=ALL", ALL, COND_SMTP_PARAM_INVALID, SMTP_VERB_MAIL, NULL },
	{ "ret not offered", "MAIL FROM:<a@b.example> RET=FULL", ALL & ~SMTP_EXT_DSN, COND_SMTP_PARAM_UNSUPPORTED, SMTP_VERB_MAIL, NULL },
	{ "envid", "MAIL FROM:<a@b.example> ENVID=QQ+2B1", ALL, OK, SMTP_VERB_MAIL, NULL },
	{ "envid lower hex", "MAIL FROM:<a@b.example> ENVID=a+2b", ALL, COND_SMTP_PARAM_INVALID, SMTP_VERB_MAIL, NULL },
	{ "envid cut hex", "MAIL FROM:<a@b.example> ENVID=a+2", ALL, COND_SMTP_PARAM_INVALID, SMTP_VERB_MAIL, NULL },
	{ "envid empty", "MAIL FROM:<a@b.example> ENVID=", ALL, COND_SMTP_PARAM_INVALID, SMTP_VERB_MAIL, NULL },
	{ "envid not offered", "MAIL FROM:<a@b.example> ENVID=x", ALL & ~SMTP_EXT_DSN, COND_SMTP_PARAM_UNSUPPORTED, SMTP_VERB_MAIL, NULL },
	{ "auth null", "MAIL FROM:<a@b.example> AUTH=<>", ALL, OK, SMTP_VERB_MAIL, NULL },
	{ "auth xtext", "MAIL FROM:<a@b.example> AUTH=user+40example.org", ALL, OK, SMTP_VERB_MAIL, NULL },
	{ "auth bad xtext", "MAIL FROM:<a@b.example> AUTH=a+", ALL, COND_SMTP_PARAM_INVALID, SMTP_VERB_MAIL, NULL },
	{ "auth not offered", "MAIL FROM:<a@b.example> AUTH=<>", ALL & ~SMTP_EXT_AUTH, COND_SMTP_PARAM_UNSUPPORTED, SMTP_VERB_MAIL, NULL },
	{ "unknown param", "MAIL FROM:<a@b.example> FOO=bar", ALL, COND_SMTP_PARAM_UNSUPPORTED, SMTP_VERB_MAIL, NULL },
	{ "unknown flag param", "MAIL FROM:<a@b.example> X-FOO", ALL, COND_SMTP_PARAM_UNSUPPORTED, SMTP_VERB_MAIL, NULL },
	{ "rcpt param on mail", "MAIL FROM:<a@b.example> NOTIFY=NEVER", ALL, COND_SMTP_PARAM_UNSUPPORTED, SMTP_VERB_MAIL, NULL },
	{ "param no keyword", "MAIL FROM:<a@b.example> =10", ALL, COND_SMTP_ARG_SYNTAX, SMTP_VERB_MAIL, NULL },
	{ "param hyphen first", "MAIL FROM:<a@b.example> -X=1", ALL, COND_SMTP_ARG_SYNTAX, SMTP_VERB_MAIL, NULL },
	{ "param bad keyword char", "MAIL FROM:<a@b.example> SI_ZE=1", ALL, COND_SMTP_ARG_SYNTAX, SMTP_VERB_MAIL, NULL },
	{ "param 8bit", "MAIL FROM:<a@b.example> SIZE=1\xc3\xa9", ALL, COND_SMTP_ARG_SYNTAX, SMTP_VERB_MAIL, NULL },
	{ "params many spaces", "MAIL FROM:<a@b.example>   SIZE=10    BODY=8BITMIME", ALL, OK, SMTP_VERB_MAIL, NULL },
	{ "params all", "MAIL FROM:<a@b.example> SIZE=10 ENVID=x RET=HDRS BODY=7BIT AUTH=<> SMTPUTF8", ALL, OK, SMTP_VERB_MAIL, NULL },
	{ "params none offered", "MAIL FROM:<a@b.example>", 0, OK, SMTP_VERB_MAIL, NULL },

	/* RCPT */
	{ "rcpt", "RCPT TO:<user@example.org>", ALL, OK, SMTP_VERB_RCPT, "user@example.org" },
	{ "rcpt lower", "rcpt to:<User@Example.ORG>", ALL, OK, SMTP_VERB_RCPT, "User@Example.ORG" },
	{ "rcpt space after colon", "RCPT TO: <user@example.org>", ALL, OK, SMTP_VERB_RCPT, "user@example.org" },
	{ "rcpt null", "RCPT TO:<>", ALL, COND_RCPT_SYNTAX, SMTP_VERB_RCPT, NULL },
	{ "rcpt postmaster", "RCPT TO:<postmaster>", ALL, OK, SMTP_VERB_RCPT, "postmaster" },
	{ "rcpt postmaster mixed", "RCPT TO:<PostMaster>", ALL, OK, SMTP_VERB_RCPT, "PostMaster" },
	{ "rcpt postmaster at domain", "RCPT TO:<postmaster@example.org>", ALL, OK, SMTP_VERB_RCPT, "postmaster@example.org" },
	{ "rcpt routed postmaster", "RCPT TO:<@a.example:postmaster>", ALL, COND_RCPT_SYNTAX, SMTP_VERB_RCPT, NULL },
	{ "rcpt no domain", "RCPT TO:<user>", ALL, COND_RCPT_SYNTAX, SMTP_VERB_RCPT, NULL },
	{ "rcpt bad local", "RCPT TO:<a..b@example.org>", ALL, COND_RCPT_SYNTAX, SMTP_VERB_RCPT, NULL },
	{ "rcpt no brackets", "RCPT TO:user@example.org", ALL, COND_SMTP_ARG_SYNTAX, SMTP_VERB_RCPT, NULL },
	{ "rcpt from", "RCPT FROM:<a@b.example>", ALL, COND_SMTP_ARG_SYNTAX, SMTP_VERB_RCPT, NULL },
	{ "rcpt no arg", "RCPT", ALL, COND_SMTP_ARG_SYNTAX, SMTP_VERB_RCPT, NULL },
	{ "rcpt utf8 no SMTPUTF8", "RCPT TO:<j\xc3\xb6rg@example.org>", ALL, OK, SMTP_VERB_RCPT, "j\xc3\xb6rg@example.org" },
	{ "rcpt route", "RCPT TO:<@a.example,@b.example:user@c.example>", ALL, OK, SMTP_VERB_RCPT, "user@c.example" },
	{ "notify list", "RCPT TO:<a@b.example> NOTIFY=SUCCESS,FAILURE", ALL, OK, SMTP_VERB_RCPT, NULL },
	{ "notify never", "RCPT TO:<a@b.example> NOTIFY=NEVER", ALL, OK, SMTP_VERB_RCPT, NULL },
	{ "notify never lower", "RCPT TO:<a@b.example> notify=never", ALL, OK, SMTP_VERB_RCPT, NULL },
	{ "notify delay", "RCPT TO:<a@b.example> NOTIFY=DELAY", ALL, OK, SMTP_VERB_RCPT, NULL },
	{ "notify all three", "RCPT TO:<a@b.example> NOTIFY=DELAY,SUCCESS,FAILURE", ALL, OK, SMTP_VERB_RCPT, NULL },
	{ "notify never in list", "RCPT TO:<a@b.example> NOTIFY=NEVER,SUCCESS", ALL, COND_SMTP_PARAM_INVALID, SMTP_VERB_RCPT, NULL },
	{ "notify never last", "RCPT TO:<a@b.example> NOTIFY=SUCCESS,NEVER", ALL, COND_SMTP_PARAM_INVALID, SMTP_VERB_RCPT, NULL },
	{ "notify empty item", "RCPT TO:<a@b.example> NOTIFY=SUCCESS,,DELAY", ALL, COND_SMTP_PARAM_INVALID, SMTP_VERB_RCPT, NULL },
	{ "notify trailing comma", "RCPT TO:<a@b.example> NOTIFY=SUCCESS,", ALL, COND_SMTP_PARAM_INVALID, SMTP_VERB_RCPT, NULL },
	{ "notify repeated item", "RCPT TO:<a@b.example> NOTIFY=SUCCESS,SUCCESS", ALL, COND_SMTP_PARAM_INVALID, SMTP_VERB_RCPT, NULL },
	{ "notify empty", "RCPT TO:<a@b.example> NOTIFY=", ALL, COND_SMTP_PARAM_INVALID, SMTP_VERB_RCPT, NULL },
	{ "notify junk", "RCPT TO:<a@b.example> NOTIFY=SOMETIMES", ALL, COND_SMTP_PARAM_INVALID, SMTP_VERB_RCPT, NULL },
	{ "notify twice", "RCPT TO:<a@b.example> NOTIFY=NEVER NOTIFY=DELAY", ALL, COND_SMTP_PARAM_INVALID, SMTP_VERB_RCPT, NULL },
	{ "notify not offered", "RCPT TO:<a@b.example> NOTIFY=NEVER", ALL & ~SMTP_EXT_DSN, COND_SMTP_PARAM_UNSUPPORTED, SMTP_VERB_RCPT, NULL },
	{ "orcpt", "RCPT TO:<a@b.example> ORCPT=rfc822;user+40example.org", ALL, OK, SMTP_VERB_RCPT, NULL },
	{ "orcpt utf-8 type", "RCPT TO:<a@b.example> ORCPT=utf-8;user@example.org", ALL, OK, SMTP_VERB_RCPT, NULL },
	{ "orcpt no type", "RCPT TO:<a@b.example> ORCPT=;a", ALL, COND_SMTP_PARAM_INVALID, SMTP_VERB_RCPT, NULL },
	{ "orcpt no semicolon", "RCPT TO:<a@b.example> ORCPT=rfc822", ALL, COND_SMTP_PARAM_INVALID, SMTP_VERB_RCPT, NULL },
	{ "orcpt no address", "RCPT TO:<a@b.example> ORCPT=rfc822;", ALL, COND_SMTP_PARAM_INVALID, SMTP_VERB_RCPT, NULL },
	{ "orcpt bad xtext", "RCPT TO:<a@b.example> ORCPT=rfc822;a+4", ALL, COND_SMTP_PARAM_INVALID, SMTP_VERB_RCPT, NULL },
	{ "orcpt control decoded", "RCPT TO:<a@b.example> ORCPT=rfc822;a+0A", ALL, COND_SMTP_PARAM_INVALID, SMTP_VERB_RCPT, NULL },
	{ "orcpt bad type", "RCPT TO:<a@b.example> ORCPT=rf(c;a", ALL, COND_SMTP_PARAM_INVALID, SMTP_VERB_RCPT, NULL },
	{ "orcpt not offered", "RCPT TO:<a@b.example> ORCPT=rfc822;a", ALL & ~SMTP_EXT_DSN, COND_SMTP_PARAM_UNSUPPORTED, SMTP_VERB_RCPT, NULL },
	{ "mail param on rcpt", "RCPT TO:<a@b.example> SIZE=10", ALL, COND_SMTP_PARAM_UNSUPPORTED, SMTP_VERB_RCPT, NULL },
	{ "rcpt notify and orcpt", "RCPT TO:<a@b.example> NOTIFY=FAILURE ORCPT=rfc822;a@b.example", ALL, OK, SMTP_VERB_RCPT, NULL },

	/* BDAT (RFC 3030) */
	{ "bdat", "BDAT 1000", ALL, OK, SMTP_VERB_BDAT, NULL },
	{ "bdat last", "BDAT 1000 LAST", ALL, OK, SMTP_VERB_BDAT, NULL },
	{ "bdat zero last lower", "bdat 0 last", ALL, OK, SMTP_VERB_BDAT, NULL },
	{ "bdat spaces", "BDAT 10   LAST", ALL, OK, SMTP_VERB_BDAT, NULL },
	{ "bdat max", "BDAT 18446744073709551615", ALL, OK, SMTP_VERB_BDAT, NULL },
	{ "bdat overflow", "BDAT 18446744073709551616", ALL, COND_SMTP_ARG_SYNTAX, SMTP_VERB_BDAT, NULL },
	{ "bdat 21 digits", "BDAT 000000000000000000001", ALL, COND_SMTP_ARG_SYNTAX, SMTP_VERB_BDAT, NULL },
	{ "bdat no size", "BDAT", ALL, COND_SMTP_ARG_INVALID, SMTP_VERB_BDAT, NULL },
	{ "bdat letters", "BDAT x", ALL, COND_SMTP_ARG_SYNTAX, SMTP_VERB_BDAT, NULL },
	{ "bdat negative", "BDAT -1", ALL, COND_SMTP_ARG_SYNTAX, SMTP_VERB_BDAT, NULL },
	{ "bdat first", "BDAT 10 FIRST", ALL, COND_SMTP_ARG_SYNTAX, SMTP_VERB_BDAT, NULL },
	{ "bdat extra", "BDAT 10 LAST x", ALL, COND_SMTP_ARG_SYNTAX, SMTP_VERB_BDAT, NULL },
	{ "bdat 8bit", "BDAT 1\xc3\xa9", ALL, COND_SMTP_ARG_SYNTAX, SMTP_VERB_BDAT, NULL },
};

static int
parse(const char *line, size_t len, unsigned offered, struct smtp_cmd *cmd)
{
	struct smtp_parse_opts opts = { .offered = offered };
	enum cond_id err = COND__COUNT;

	if (smtp_parse_command((const uint8_t *)line, len, &opts, cmd, &err) == 0)
		return OK;
	return (int)err;
}

static int
parse_s(const char *line, unsigned offered, struct smtp_cmd *cmd)
{
	return parse(line, strlen(line), offered, cmd);
}

static void
test_table(void)
{
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct pcase *c = &cases[i];
		struct smtp_cmd cmd;
		int got;

		TEST_CASE(c->name);
		got = parse_s(c->line, c->offered, &cmd);
		CHECK_INT(got, c->want);
		if (c->verb != SMTP_VERB_UNKNOWN || c->want != OK)
			CHECK_INT(cmd.verb, c->verb);
		if (c->want == OK && c->mailbox != NULL)
			CHECK_MEM(cmd.path.mailbox.p, cmd.path.mailbox.len,
				  c->mailbox);
	}
}

static void
test_fields(void)
{
	struct smtp_cmd cmd;
	static const char nul_line[] = "NOOP a\0b";

	TEST_CASE("nul byte");
	CHECK_INT(parse(nul_line, sizeof(nul_line) - 1, ALL, &cmd),
		  COND_SMTP_COMMAND_NON_ASCII);

	TEST_CASE("null line pointer");
	CHECK_INT(parse(NULL, 0, ALL, &cmd), COND_SMTP_COMMAND_UNKNOWN);

	TEST_CASE("verb text and arg");
	CHECK_INT(parse_s("noop  hi there  ", ALL, &cmd), OK);
	CHECK_MEM(cmd.verb_text.p, cmd.verb_text.len, "noop");
	CHECK_MEM(cmd.arg.p, cmd.arg.len, "hi there");

	TEST_CASE("helo slice");
	CHECK_INT(parse_s("EHLO mx.example.org ", ALL, &cmd), OK);
	CHECK_MEM(cmd.helo.p, cmd.helo.len, "mx.example.org");

	TEST_CASE("mail fields");
	CHECK_INT(parse_s("MAIL FROM:<u@example.org> SIZE=42 BODY=8BITMIME "
			  "RET=HDRS ENVID=id+2B1 AUTH=u+40example.org SMTPUTF8",
			  ALL, &cmd), OK);
	CHECK_INT(cmd.has_size, 1);
	CHECK_INT(cmd.size, 42);
	CHECK_INT(cmd.body, SMTP_BODY_8BITMIME);
	CHECK_INT(cmd.ret, SMTP_RET_HDRS);
	CHECK_INT(cmd.smtputf8, 1);
	CHECK_MEM(cmd.envid.p, cmd.envid.len, "id+2B1");
	CHECK_MEM(cmd.auth.p, cmd.auth.len, "u+40example.org");
	CHECK_MEM(cmd.path.local.p, cmd.path.local.len, "u");
	CHECK_MEM(cmd.path.domain.p, cmd.path.domain.len, "example.org");
	CHECK_INT(cmd.path.is_null, 0);
	CHECK_INT(cmd.path.non_ascii, 0);
	CHECK_INT(cmd.path.had_route, 0);
	CHECK_INT(cmd.bad_param.len, 0);

	TEST_CASE("mail defaults");
	CHECK_INT(parse_s("MAIL FROM:<u@example.org>", ALL, &cmd), OK);
	CHECK_INT(cmd.has_size, 0);
	CHECK_INT(cmd.body, SMTP_BODY_NONE);
	CHECK_INT(cmd.ret, SMTP_RET_NONE);
	CHECK_INT(cmd.smtputf8, 0);
	CHECK_INT(cmd.notify, 0);
	CHECK_INT(cmd.envid.len, 0);

	TEST_CASE("size max value");
	CHECK_INT(parse_s("MAIL FROM:<> SIZE=18446744073709551615", ALL, &cmd), OK);
	CHECK(cmd.size == UINT64_MAX);
	CHECK_INT(cmd.path.is_null, 1);
	CHECK_INT(cmd.path.mailbox.len, 0);

	TEST_CASE("body 7bit");
	CHECK_INT(parse_s("MAIL FROM:<> BODY=7BIT RET=FULL", ALL, &cmd), OK);
	CHECK_INT(cmd.body, SMTP_BODY_7BIT);
	CHECK_INT(cmd.ret, SMTP_RET_FULL);

	TEST_CASE("quoted local kept");
	CHECK_INT(parse_s("RCPT TO:<\"a b\"@example.org>", ALL, &cmd), OK);
	CHECK_MEM(cmd.path.local.p, cmd.path.local.len, "\"a b\"");

	TEST_CASE("route dropped");
	CHECK_INT(parse_s("RCPT TO:<@a.example,@b.example:user@c.example>", ALL, &cmd), OK);
	CHECK_INT(cmd.path.had_route, 1);
	CHECK_MEM(cmd.path.local.p, cmd.path.local.len, "user");
	CHECK_MEM(cmd.path.domain.p, cmd.path.domain.len, "c.example");

	TEST_CASE("postmaster fields");
	CHECK_INT(parse_s("RCPT TO:<Postmaster>", ALL, &cmd), OK);
	CHECK_INT(cmd.path.is_postmaster, 1);
	CHECK_INT(cmd.path.domain.len, 0);
	CHECK_INT(parse_s("RCPT TO:<postmaster@example.org>", ALL, &cmd), OK);
	CHECK_INT(cmd.path.is_postmaster, 0);

	TEST_CASE("rcpt non ascii flag");
	CHECK_INT(parse_s("RCPT TO:<j\xc3\xb6rg@example.org>", ALL, &cmd), OK);
	CHECK_INT(cmd.path.non_ascii, 1);
	CHECK_INT(parse_s("RCPT TO:<user@b\xc3\xbc" "cher.example>", 0, &cmd), OK);
	CHECK_INT(cmd.path.non_ascii, 1);

	TEST_CASE("address literal domain");
	CHECK_INT(parse_s("RCPT TO:<u@[IPv6:::1]>", ALL, &cmd), OK);
	CHECK_MEM(cmd.path.domain.p, cmd.path.domain.len, "[IPv6:::1]");

	TEST_CASE("notify bits");
	CHECK_INT(parse_s("RCPT TO:<a@b.example> NOTIFY=SUCCESS,DELAY", ALL, &cmd), OK);
	CHECK_INT(cmd.notify, SMTP_NOTIFY_SUCCESS | SMTP_NOTIFY_DELAY);
	CHECK_INT(parse_s("RCPT TO:<a@b.example> NOTIFY=failure", ALL, &cmd), OK);
	CHECK_INT(cmd.notify, SMTP_NOTIFY_FAILURE);
	CHECK_INT(parse_s("RCPT TO:<a@b.example> NOTIFY=NEVER", ALL, &cmd), OK);
	CHECK_INT(cmd.notify, SMTP_NOTIFY_NEVER);

	TEST_CASE("orcpt slice");
	CHECK_INT(parse_s("RCPT TO:<a@b.example> ORCPT=rfc822;x+2By@c.example", ALL, &cmd), OK);
	CHECK_MEM(cmd.orcpt.p, cmd.orcpt.len, "rfc822;x+2By@c.example");

	TEST_CASE("bad_param unsupported");
	CHECK_INT(parse_s("MAIL FROM:<a@b.example> SIZE=1 Foo=bar", ALL, &cmd),
		  COND_SMTP_PARAM_UNSUPPORTED);
	CHECK_MEM(cmd.bad_param.p, cmd.bad_param.len, "Foo");
	TEST_CASE("bad_param invalid");
	CHECK_INT(parse_s("MAIL FROM:<a@b.example> body=binarymime", ALL, &cmd),
		  COND_SMTP_PARAM_INVALID);
	CHECK_MEM(cmd.bad_param.p, cmd.bad_param.len, "body");
	TEST_CASE("bad_param duplicate");
	CHECK_INT(parse_s("MAIL FROM:<a@b.example> RET=FULL RET=FULL", ALL, &cmd),
		  COND_SMTP_PARAM_INVALID);
	CHECK_MEM(cmd.bad_param.p, cmd.bad_param.len, "RET");

	TEST_CASE("bdat fields");
	CHECK_INT(parse_s("BDAT 512 LAST", ALL, &cmd), OK);
	CHECK_INT(cmd.chunk_size, 512);
	CHECK_INT(cmd.last, 1);
	CHECK_INT(parse_s("BDAT 18446744073709551615", ALL, &cmd), OK);
	CHECK(cmd.chunk_size == UINT64_MAX);
	CHECK_INT(cmd.last, 0);

	TEST_CASE("verb kept on error");
	CHECK_INT(parse_s("MAIL FROM:x", ALL, &cmd), COND_SMTP_ARG_SYNTAX);
	CHECK_INT(cmd.verb, SMTP_VERB_MAIL);
	CHECK_MEM(cmd.verb_text.p, cmd.verb_text.len, "MAIL");

	TEST_CASE("null opts");
	{
		enum cond_id err;
		const char *l = "MAIL FROM:<a@b.example> SIZE=1";

		CHECK_INT(smtp_parse_command((const uint8_t *)l, strlen(l), NULL,
					     &cmd, &err), -1);
		CHECK_INT(err, COND_SMTP_PARAM_UNSUPPORTED);
	}
}

/* Builds "<prefix><n times ch><suffix>" into a static buffer. */
static const char *
rep(const char *prefix, char ch, size_t n, const char *suffix)
{
	static char line[2048];
	size_t pl = strlen(prefix), sl = strlen(suffix);

	if (pl + n + sl >= sizeof(line))
		abort();
	memcpy(line, prefix, pl);
	memset(line + pl, ch, n);
	memcpy(line + pl + n, suffix, sl + 1);
	return line;
}

/* A domain of total length len made of 49-octet labels ("a...a."). */
static const char *
long_domain(size_t len)
{
	static char d[400];
	size_t i;

	if (len >= sizeof(d))
		abort();
	for (i = 0; i < len; i++)
		d[i] = (i % 50 == 49) ? '.' : 'a';
	if (len > 0 && d[len - 1] == '.')
		d[len - 1] = 'b';
	d[len] = '\0';
	return d;
}

static void
test_limits(void)
{
	struct smtp_cmd cmd;
	char line[1024];
	int n;

	TEST_CASE("label 63");
	CHECK_INT(parse_s(rep("EHLO ", 'a', 63, ".example"), ALL, &cmd), OK);
	TEST_CASE("label 64");
	CHECK_INT(parse_s(rep("EHLO ", 'a', 64, ".example"), ALL, &cmd),
		  COND_SMTP_HELO_INVALID);
	TEST_CASE("domain 255");
	CHECK_INT((int)strlen(long_domain(255)), 255);
	CHECK_INT(smtp_domain_valid((const uint8_t *)long_domain(255), 255, 0), 1);
	TEST_CASE("domain 256");
	CHECK_INT(smtp_domain_valid((const uint8_t *)long_domain(256), 256, 0), 0);
	TEST_CASE("helo domain 256");
	n = snprintf(line, sizeof(line), "EHLO %s", long_domain(256));
	CHECK(n > 0 && (size_t)n < sizeof(line));
	CHECK_INT(parse_s(line, ALL, &cmd), COND_SMTP_HELO_INVALID);

	TEST_CASE("local 64");
	CHECK_INT(parse_s(rep("MAIL FROM:<", 'x', 64, "@example.org>"), ALL, &cmd), OK);
	TEST_CASE("local 65");
	CHECK_INT(parse_s(rep("MAIL FROM:<", 'x', 65, "@example.org>"), ALL, &cmd),
		  COND_SMTP_SENDER_SYNTAX);
	TEST_CASE("rcpt local 65");
	CHECK_INT(parse_s(rep("RCPT TO:<", 'x', 65, "@example.org>"), ALL, &cmd),
		  COND_RCPT_SYNTAX);

	/* mailbox = 60 + 1 + domain */
	TEST_CASE("mailbox 254");
	n = snprintf(line, sizeof(line), "RCPT TO:<%s@%s>",
		     rep("", 'u', 60, ""), long_domain(193));
	CHECK(n > 0 && (size_t)n < sizeof(line));
	CHECK_INT(parse_s(line, ALL, &cmd), OK);
	CHECK_INT(cmd.path.mailbox.len, 254);
	TEST_CASE("mailbox 255");
	n = snprintf(line, sizeof(line), "RCPT TO:<%s@%s>",
		     rep("", 'u', 60, ""), long_domain(194));
	CHECK(n > 0 && (size_t)n < sizeof(line));
	CHECK_INT(parse_s(line, ALL, &cmd), COND_RCPT_SYNTAX);

	TEST_CASE("envid 100");
	CHECK_INT(parse_s(rep("MAIL FROM:<> ENVID=", 'e', 100, ""), ALL, &cmd), OK);
	TEST_CASE("envid 101");
	CHECK_INT(parse_s(rep("MAIL FROM:<> ENVID=", 'e', 101, ""), ALL, &cmd),
		  COND_SMTP_PARAM_INVALID);
	TEST_CASE("orcpt 500");
	CHECK_INT(parse_s(rep("RCPT TO:<a@b.example> ORCPT=rfc822;", 'o', 493, ""),
			  ALL, &cmd), OK);
	TEST_CASE("orcpt 501");
	CHECK_INT(parse_s(rep("RCPT TO:<a@b.example> ORCPT=rfc822;", 'o', 494, ""),
			  ALL, &cmd), COND_SMTP_PARAM_INVALID);
}

static void
test_domain(void)
{
	static const struct {
		const char *name, *d;
		int utf8, want;
	} dc[] = {
		{ "plain", "example.org", 0, 1 },
		{ "single label", "localhost", 0, 1 },
		{ "hyphen inside", "a-b.example", 0, 1 },
		{ "empty", "", 0, 0 },
		{ "ulabel off", "b\xc3\xbc" "cher.example", 0, 0 },
		{ "ulabel on", "b\xc3\xbc" "cher.example", 1, 1 },
		{ "ulabel bad utf8", "b\xc3.example", 1, 0 },
		{ "ulabel hyphen first", "-\xc3\xbc.example", 1, 0 },
		{ "v4", "[10.0.0.1]", 0, 1 },
		{ "v4 leading zero", "[10.0.0.01]", 0, 0 },
		{ "v4 with space", "[10.0.0. 1]", 0, 0 },
		{ "v6", "[IPv6:fe80::1]", 0, 1 },
		{ "v6 full", "[IPv6:2001:db8:0:0:0:0:0:1]", 0, 1 },
		{ "v6 too many groups", "[IPv6:1:2:3:4:5:6:7:8:9]", 0, 0 },
		{ "v6 empty", "[IPv6:]", 0, 0 },
		{ "bracket only", "[", 0, 0 },
		{ "v6 too long", "[IPv6:0000:0000:0000:0000:0000:0000:0000:0000:0000:0000:0000:0000]", 0, 0 },
	};

	for (size_t i = 0; i < sizeof(dc) / sizeof(dc[0]); i++) {
		TEST_CASE(dc[i].name);
		CHECK_INT(smtp_domain_valid((const uint8_t *)dc[i].d,
					    strlen(dc[i].d), dc[i].utf8),
			  dc[i].want);
	}
	TEST_CASE("null domain");
	CHECK_INT(smtp_domain_valid(NULL, 0, 1), 0);
}

static void
test_xtext(void)
{
	static const struct {
		const char *name, *in, *want;	/* want NULL: -1 */
	} xc[] = {
		{ "plain", "abc", "abc" },
		{ "plus", "a+2Bb", "a+b" },
		{ "two hex", "+41+42", "AB" },
		{ "empty", "", "" },
		{ "lower hex", "a+2b", NULL },
		{ "cut hex", "a+4", NULL },
		{ "lone plus", "a+", NULL },
		{ "equals", "a=b", NULL },
		{ "space", "a b", NULL },
		{ "8bit", "a\xc3\xa9", NULL },
		{ "non hex", "+G0", NULL },
	};
	struct buf out;

	for (size_t i = 0; i < sizeof(xc) / sizeof(xc[0]); i++) {
		int rc;

		TEST_CASE(xc[i].name);
		buf_init(&out, 64);
		rc = smtp_xtext_decode(slice_from_cstr(xc[i].in), &out);
		if (xc[i].want == NULL) {
			CHECK_INT(rc, -1);
			CHECK_INT(out.len, 0);
		} else {
			CHECK_INT(rc, 0);
			CHECK_MEM(out.data ? out.data : (const uint8_t *)"",
				  out.len, xc[i].want);
		}
		buf_fini(&out);
	}

	TEST_CASE("xtext overflow");
	buf_init(&out, 2);
	CHECK_INT(smtp_xtext_decode(SLICE_LIT("abc"), &out), -1);
	CHECK_INT(out.len, 0);
	buf_fini(&out);

	TEST_CASE("xtext appends");
	buf_init(&out, 16);
	CHECK_INT(buf_append(&out, "x:", 2), 0);
	CHECK_INT(smtp_xtext_decode(SLICE_LIT("a+3Db"), &out), 0);
	CHECK_MEM(out.data, out.len, "x:a=b");
	CHECK_INT(smtp_xtext_decode(SLICE_LIT("q+"), &out), -1);
	CHECK_MEM(out.data, out.len, "x:a=b");
	buf_fini(&out);
}

static void
test_verb_names(void)
{
	static const char *const want[] = {
		"UNKNOWN", "HELO", "EHLO", "MAIL", "RCPT", "DATA", "BDAT",
		"RSET", "NOOP", "QUIT", "HELP", "VRFY", "EXPN", "TURN",
		"STARTTLS", "AUTH", "ETRN", "SEND", "SOML", "SAML", "ATRN",
	};

	TEST_CASE("verb names");
	CHECK_INT(sizeof(want) / sizeof(want[0]), SMTP_VERB__COUNT);
	for (int v = 0; v < SMTP_VERB__COUNT; v++)
		CHECK_STR(smtp_verb_name((enum smtp_verb)v), want[v]);
	CHECK_STR(smtp_verb_name(SMTP_VERB__COUNT), "UNKNOWN");
	CHECK_STR(smtp_verb_name((enum smtp_verb)-1), "UNKNOWN");

	/* every name parses back to its verb */
	for (int v = 1; v < SMTP_VERB__COUNT; v++) {
		struct smtp_cmd cmd;

		(void)parse_s(smtp_verb_name((enum smtp_verb)v), ALL, &cmd);
		CHECK_INT(cmd.verb, v);
	}
}

int
main(void)
{
	test_table();
	test_fields();
	test_limits();
	test_domain();
	test_xtext();
	test_verb_names();
	return TEST_DONE();
}
