// SMTP command handlers (RFC 5321 4.1.1), in the seed's order of checks and
// with its replies (doc/behaviour.md §4). Each handler either replies at
// once or throws smtp::SmtpError, which dispatch turns into one reply.
#include <ctime>

#include "mailauth/mx.h"
#include "sasl/mechanism.h"
#include "mailauth/spf.h"
#include "server/localserve.h"
#include "server/milter.h"
#include "server/server.h"
#include "server/session.h"
#include "server/suspend.h"
#include "util/log.h"
#include "util/strings.h"

namespace tern::server {

using smtp::SmtpError;
namespace se = smtp::se;

namespace {
SmtpError user_error(int code, std::string_view secode, std::string text) {
	return SmtpError{code, std::string(secode), std::move(text)};
}
constexpr int64_t default_max_message_size = 104857600;  // 100 MiB, the seed's default
// RFC 5321 4.5.3.1.8: at least 100 recipients must be accepted; also
// advertised as LIMITS RCPTMAX (RFC 9422 4.1).
constexpr size_t max_recipients = 100;
// Mail transactions on one connection, advertised as LIMITS MAILMAX (RFC
// 9422 4.2): a client with more to send reconnects.
constexpr uint32_t max_transactions = 1000;
}  // namespace

smtp::ParseMode Connection::parse_mode() const {
	smtp::ParseMode m;
	m.submission = submission();
	m.smtputf8 = tx.smtputf8;
	m.authenticated = !username.empty();
	return m;
}

void Connection::need_hello() const {
	if (!hello) throw user_error(503, se::proto_bad_cmd_or_seq1, "no ehlo/helo yet");
}

void Connection::check_auth() const {
	// RFC 6409 4.3: submission requires authentication.
	if (submission() && username.empty()) throw user_error(530, se::pol_other0, "authentication required");
}

void Connection::need_tls_for_delivery() const {
	const auto& l = listener();
	bool required = service == net::Service::smtp ? l.smtp.require_starttls
	                : service == net::Service::submission ? l.submission.require_starttls
	                                                      : false;
	// RFC 3207 4: a server may require TLS before mail commands.
	if (required && !tls) throw user_error(530, se::pol_other0, "STARTTLS required for mail delivery");
}

void Connection::rset() {
	tx = Transaction{};
	// RFC 3030 3: a reset drops the BDAT chunks received so far.
	if (data && data->chunked) abort_data_file();
}

mailauth::SpfArgs Connection::spf_args() const {
	mailauth::SpfArgs spf;
	spf.remote_ip = remote_ip;
	if (tx.mail_from) {
		spf.mailfrom_localpart = tx.mail_from->localpart;
		spf.mailfrom_domain = tx.mail_from->domain.ascii;
	}
	if (hello->ip)
		spf.helo_ip = hello->ip;
	else
		spf.helo_domain = hello->domain.ascii;
	spf.local_ip_text = local_ip.to_string();
	spf.local_hostname = hostname();
	return spf;
}

std::string Connection::address_text(const smtp::Address& a) const {
	return tx.smtputf8 ? a.to_string() : a.to_ascii_string();
}

// RFC 5321 4.1.1.1
void Connection::cmd_hello(std::string_view args, bool is_ehlo) {
	smtp::HelloArg h = smtp::parse_hello(args, is_ehlo, parse_mode());
	if (!is_ehlo && !submission() && !cfg->localserve) {
		// RFC 5321 2.3.5: the HELO name must be a real host; on port 25 it has
		// to resolve (A/AAAA). Temporary DNS errors let it pass.
		std::string name = h.domain.ascii;
		mailauth::lookup_ip_addr(srv.resolver(), cid, name,
		                         suspend([h = std::move(h)](Connection& c, const mailauth::IpLookup& l) mutable {
			                         if (l.status == mailauth::DnsStatus::nxdomain ||
			                             l.status == mailauth::DnsStatus::nodata)
				                         throw user_error(550, se::proto_other0,
				                                          "your ehlo domain does not resolve to an IP address");
			                         c.hello_accepted(std::move(h), false);
		                         }));
		return;
	}
	hello_accepted(std::move(h), is_ehlo);
}

void Connection::hello_accepted(smtp::HelloArg h, bool is_ehlo) {
	// The Dovecot backend: before Dovecot ever listed its mechanisms (just
	// after start), EHLO waits for that answer, bounded by its deadline.
	if (is_ehlo && submission() && cfg->auth.backend == config::Config::AuthBackend::dovecot &&
	    srv.dovecot_mechanisms_pending()) {
		srv.after_dovecot_probe(suspend([h = std::move(h)](Connection& c) mutable { c.hello_accepted(std::move(h), true); }));
		return;
	}
	// RFC 5321 4.1.4: HELO/EHLO reset the transaction, like RSET.
	rset();
	ehlo = is_ehlo;
	hello = std::move(h);
	milter_hello();
	if (!is_ehlo) {
		// doc/behaviour.md D1: HELO gets one line (RFC 5321 4.1.1.1).
		reply(250, "", hostname());
		return;
	}
	write_raw("250-" + hostname());
	write_raw("250-PIPELINING");                                                    // RFC 2920
	write_raw("250-SIZE " + std::to_string(listener().max_message_size));          // RFC 1870
	if (!tls && srv.tls_context()) write_raw("250-STARTTLS");                      // RFC 3207 4
	// doc/behaviour.md D6: AUTH only once it can be used (RFC 4954 4).
	if (submission() && (tls || !tls_required_for_auth())) write_raw("250-AUTH " + advertised_auth_mechanisms());
	write_raw("250-ENHANCEDSTATUSCODES");                                           // RFC 2034
	write_raw("250-8BITMIME");                                                      // RFC 6152
	write_raw("250-CHUNKING");                                                      // RFC 3030 2
	write_raw("250-DSN");                                                           // RFC 3461 4
	// RFC 8689 2: REQUIRETLS only where it can be used, inside TLS.
	if (tls) write_raw("250-REQUIRETLS");
	write_raw("250-LIMITS RCPTMAX=" + std::to_string(max_recipients) +            // RFC 9422 4
	          " MAILMAX=" + std::to_string(max_transactions));
	reply(250, "", "SMTPUTF8");                                                     // RFC 6531
}

bool Connection::tls_required_for_auth() const {
	return service == net::Service::submission && listener().submission.require_starttls;
}

// RFC 3207
void Connection::cmd_starttls(std::string_view args) {
	need_hello();
	smtp::parse_no_args(args, parse_mode());
	// doc/behaviour.md D7: without a certificate STARTTLS is not
	// offered, and not accepted either.
	if (!srv.tls_context()) throw user_error(502, se::proto_bad_cmd_or_seq1, "starttls not available");
	if (tls) throw user_error(503, se::proto_bad_cmd_or_seq1, "already speaking tls");
	if (!username.empty()) throw user_error(503, se::proto_bad_cmd_or_seq1, "cannot starttls after authentication");
	reply(220, se::other0, "go!");
	// The handshake starts once the 220 is on the wire (flush does it).
	tls_pending_start = true;
	flush();
}


// RFC 5321 4.1.1.2
void Connection::cmd_mail(std::string_view args) {
	// RFC 5321 7.9: a client guessing addresses gets cut off.
	if (tx_bad > 10 && tx_good == 0)
		throw SmtpError{550, std::string(se::addr_other0), "too many failures", false, true};
	need_hello();
	check_auth();
	need_tls_for_delivery();
	if (tx.has_mail) throw user_error(503, se::proto_bad_cmd_or_seq1, "already have MAIL");
	// RFC 9422 4.2: past MAILMAX the client has to start a new connection.
	if (transactions >= max_transactions)
		throw SmtpError{421, std::string(se::proto_too_many_rcpts3), "too many transactions on this connection",
		                true, true};
	smtp::MailArgs m;
	try {
		m = smtp::parse_mail(args, parse_mode());
		if (m.size && *m.size > listener().max_message_size) {
			// RFC 1870 6.1, RFC 3463 5.3.4 / 5.2.3
			throw user_error(552, *m.size < default_max_message_size ? se::mailbox_msg_too_large3 : se::sys_msg_limit_exceeded4,
			                 "message too large");
		}
		// RFC 8689 4.1: REQUIRETLS is only valid on a TLS session.
		if (m.requiretls && !tls)
			throw user_error(530, se::pol_encryption_needed10, "REQUIRETLS only on a TLS-protected connection");
	} catch (...) {
		rset();  // RFC 5321 4.1.1.2: a failed MAIL leaves no transaction
		throw;
	}
	if (!submission() && m.from && !m.from->ip && !cfg->localserve) {
		// RFC 7505 4.2: refuse senders whose domain cannot take replies
		// (null MX, or no MX and no address).
		std::string domain = m.from->domain.ascii;  // copied before m moves into the continuation
		mailauth::check_mx_records(srv.resolver(), cid, domain,
		                           suspend([m = std::move(m)](Connection& c, mailauth::MxVerdict v) mutable {
			                           if (v == mailauth::MxVerdict::temporary_error)
				                           throw user_error(451, se::net_other0, "cannot verify mx records for mailfrom domain");
			                           if (v == mailauth::MxVerdict::no_mail)
				                           throw user_error(550, se::pol_null_mx27, "mailfrom domain not configured for mail");
			                           c.mail_accepted(std::move(m));
		                           }));
		return;
	}
	mail_accepted(std::move(m));
}

void Connection::mail_accepted(smtp::MailArgs m) {
	if (m.from && m.from->ip) {
		if (submission()) throw user_error(550, se::pol_delivery_not_auth1, "must match authenticated user");
		throw user_error(550, se::pol_other0, "domain name required");
	}
	// RFC 6409 4.1 / 8.1: a submitter sends only as itself (the null sender
	// is allowed); localserve lets its one account use any address.
	if (submission() && !cfg->localserve && !cfg->accounts.count(username)) {
		// A login without a tern account (a Dovecot user tern does not
		// host) sends as nobody, not even with the null sender.
		rset();
		throw user_error(550, se::pol_delivery_not_auth1, "must match authenticated user");
	}
	if (submission() && m.from && !cfg->localserve) {
		const config::Account* acc = cfg->account_for_address(m.from->localpart, m.from->domain.ascii);
		if (!acc || acc->name != username) {
			rset();
			throw user_error(550, se::pol_delivery_not_auth1, "must match authenticated user");
		}
	}
	if (cfg->localserve && m.from && m.from->localpart.starts_with("mailfrom") &&
	    localserve_command_failure(m.from->localpart))
		return;  // stalled: the reply comes from the timer
	if (milter_check(MilterStage::mail, "<" + (m.from ? address_text(*m.from) : "") + ">", [m](Connection& c) { c.mail_accepted(m); })) return;
	tx.has_mail = true;
	tx.mail_from = std::move(m.from);
	tx.smtputf8 = m.smtputf8;
	tx.body_8bitmime = m.body_8bitmime;
	tx.dsn_ret = m.ret;
	tx.envid = m.envid.value_or("");
	tx.requiretls = m.requiretls;
	++transactions;
	// SPF depends only on the client, HELO and MAIL FROM (RFC 7208 4.1), all
	// known now: evaluated while RCPT and DATA arrive.
	if (!submission() && !cfg->localserve) {
		tx.early_spf = std::make_shared<EarlySpf>();
		tx.early_spf->args = spf_args();
		mailauth::spf_verify(srv.resolver(), cid, tx.early_spf->args,
		                     [early = tx.early_spf](mailauth::SpfReceived received, std::string explanation, bool) {
			                     early->lookup.set({std::move(received), std::move(explanation)});
		                     });
	}
	reply(250, se::addr_other0, "looking good");
}

// RFC 5321 4.1.1.3
void Connection::cmd_rcpt(std::string_view args) {
	need_hello();
	check_auth();
	need_tls_for_delivery();
	if (!tx.has_mail) throw user_error(503, se::proto_bad_cmd_or_seq1, "missing MAIL FROM");
	smtp::RcptArgs r = smtp::parse_rcpt(args, parse_mode());
	// RFC 5321 4.5.3.1.8: at least 100 recipients must be accepted.
	if (tx.recipients.size() >= max_recipients)
		throw user_error(452, se::proto_too_many_rcpts3, "max of " + std::to_string(max_recipients) + " recipients reached");
	// A null reverse path is for notifications, which go to one recipient.
	if (!submission() && !tx.recipients.empty() && !tx.mail_from)
		throw user_error(452, se::proto_too_many_rcpts3, "only one recipient allowed with null reverse address");

	// Several recipients only for senders that pass SPF: a DSN for a failed
	// recipient must not become backscatter to a forged sender (RFC 5321
	// 3.6.3; doc/behaviour.md §4 RCPT step 5). Asked once, at the second.
	if (!submission() && tx.recipients.size() == 1 && !cfg->localserve) {
		mailauth::spf_verify(srv.resolver(), cid, spf_args(),
		                     suspend([r = std::move(r)](Connection& c, const mailauth::SpfReceived& received,
		                                                const std::string&, bool) mutable {
			                     if (received.identity != mailauth::SpfReceived::Identity::mailfrom ||
			                         received.result != mailauth::SpfStatus::pass)
				                     throw user_error(452, se::proto_too_many_rcpts3,
				                                      "only one recipient allowed without spf pass");
			                     c.rcpt_accepted(std::move(r));
		                     }));
		return;
	}
	rcpt_accepted(std::move(r));
}

void Connection::rcpt_accepted(smtp::RcptArgs r) {
	decide::RecipientDecision d = decide::resolve_recipient(*cfg, r, {hostname(), submission(), tx.smtputf8});
	if (cfg->localserve && d.recipient.address.localpart.starts_with("rcptto") &&
	    localserve_command_failure(d.recipient.address.localpart))
		return;  // stalled: the reply comes from the timer
	if (d.refused) throw user_error(d.code, d.secode, std::move(d.text));
	if (milter_check(MilterStage::rcpt, "<" + d.recipient.display + ">", [r](Connection& c) { c.rcpt_accepted(r); })) return;
	tx.recipients.push_back(std::move(d.recipient));
	reply(250, se::addr_other0, "now on the list");
}

bool Connection::localserve_command_failure(const std::string& localpart) {
	LocalserveFailure f = localserve_failure(localpart);
	if (f.timeout) {
		log::event(log::Level::info, cid, "timing out due to special localpart");
		stall_then_reply(3600, SmtpError{451, std::string(se::sys_other0), "timing out command due to special localpart"});
		return true;
	}
	if (f.code != 0)
		throw SmtpError{f.code, std::string(se::other0),
		                "failure with code " + std::to_string(f.code) + " due to special localpart"};
	return false;
}

void Connection::cmd_rset(std::string_view args) {
	smtp::parse_no_args(args, parse_mode());
	rset();
	reply(250, se::other0, "all clear");
}

void Connection::cmd_vrfy(std::string_view args, bool expn) {
	smtp::parse_vrfy(args, parse_mode());
	// RFC 5321 3.5.3: 252 when we will not say whether the address exists.
	throw user_error(252, se::pol_other0, expn ? "no expand but will try delivery" : "no verify but will try delivery");
}

void Connection::cmd_help(std::string_view) { reply(214, se::other0, "see rfc 5321 (smtp)"); }

void Connection::cmd_noop(std::string_view args) {
	smtp::parse_noop(args, parse_mode());
	reply(250, se::other0, "alrighty");
}

void Connection::cmd_quit(std::string_view args) {
	smtp::parse_no_args(args, parse_mode());
	reply(221, se::other0, "okay thanks bye");
	close_after_flush();
}

}  // namespace tern::server
