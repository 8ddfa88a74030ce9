// SMTP command handlers (RFC 5321 4.1.1), in the model's order of checks and
// with its replies (doc/behaviour.md §4). Each handler returns its Outcome
// (server/outcome.h): its reply and the state that follows, suspended on a
// job, or refused with one error reply; the session's apply() writes it.
#include <ctime>

#include "mailauth/mx.h"
#include "sasl/mechanism.h"
#include "mailauth/spf.h"
#include "server/localserve.h"
#include "server/milter.h"
#include "server/outcome.h"
#include "server/server.h"
#include "server/session.h"
#include "server/suspend.h"
#include "smtp/replies.h"
#include "util/log.h"
#include "util/strings.h"

namespace tern::server {

using smtp::SmtpError;
namespace se = smtp::se;

using smtp::error_reply;

namespace {
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

smtp::Status Connection::need_hello() const {
	if (!hello) return error_reply(503, se::proto_bad_cmd_or_seq1, "no ehlo/helo yet");
	return {};
}

smtp::Status Connection::mail_commands_allowed() const {
	if (smtp::Status s = need_hello(); !s) return s;
	// RFC 6409 4.3: submission requires authentication.
	if (submission() && username.empty()) return error_reply(530, se::pol_other0, "authentication required");
	const auto& l = listener();
	bool required = service == net::Service::smtp ? l.smtp.require_starttls
	    : service == net::Service::submission     ? l.submission.require_starttls
						      : false;
	// RFC 3207 4: a server may require TLS before mail commands.
	if (required && !tls) return error_reply(530, se::pol_other0, "STARTTLS required for mail delivery");
	return {};
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
	// RFC 7208 9.1 receiver= and 7.3 %{r} name the host doing the check: the
	// global hostname, as in Received's "by" (a listener's is for its greeting).
	spf.local_hostname = global_hostname();
	return spf;
}

std::string Connection::address_text(const smtp::Address& a) const {
	return tx.smtputf8 ? a.to_string() : a.to_ascii_string();
}

// RFC 5321 4.1.1.1
Outcome Connection::cmd_hello(std::string_view args, bool is_ehlo) {
	smtp::Result<smtp::HelloArg> h = smtp::parse_hello(args, is_ehlo, parse_mode());
	if (!h) return h.error();
	if (!is_ehlo && !submission() && localserve().checks_over_dns()) {
		// RFC 5321 2.3.5: the HELO name must be a real host; on port 25 it has
		// to resolve (A/AAAA). Temporary DNS errors let it pass.
		std::string name = h->domain.ascii;
		mailauth::lookup_ip_addr(
		    srv.resolver(), cid, name,
		    suspend([h = std::move(*h)](Connection& c, const mailauth::IpLookup& l) mutable -> Outcome {
			    if (l.status == mailauth::DnsStatus::nxdomain || l.status == mailauth::DnsStatus::nodata)
				    return error_reply(550, se::proto_other0,
				                       "your ehlo domain does not resolve to an IP address");
			    return c.hello_accepted(std::move(h), false);
		    }));
		return Outcome::suspended();
	}
	return hello_accepted(std::move(*h), is_ehlo);
}

Outcome Connection::hello_accepted(smtp::HelloArg h, bool is_ehlo) {
	// The Dovecot backend: before Dovecot ever listed its mechanisms (just
	// after start), EHLO waits for that answer, bounded by its deadline.
	if (is_ehlo && submission() && cfg->auth.backend == config::Config::AuthBackend::dovecot &&
	    srv.dovecot_mechanisms_pending()) {
		srv.after_dovecot_probe(suspend(
		    [h = std::move(h)](Connection& c) mutable { return c.hello_accepted(std::move(h), true); }));
		return Outcome::suspended();
	}
	// RFC 5321 4.1.4: HELO/EHLO reset the transaction, like RSET.
	rset();
	ehlo = is_ehlo;
	hello = std::move(h);
	milter_hello();
	// doc/behaviour.md D1: HELO gets one line (RFC 5321 4.1.1.1).
	if (!is_ehlo) return Outcome::reply(250, "", hostname());
	return Outcome::reply_lines(250, "", ehlo_lines());
}

std::vector<std::string> Connection::ehlo_lines() const {
	std::vector<std::string> lines{hostname()};
	lines.emplace_back("PIPELINING");                                           // RFC 2920
	lines.emplace_back("SIZE " + std::to_string(listener().max_message_size));  // RFC 1870
	if (!tls && srv.tls_context()) lines.emplace_back("STARTTLS");              // RFC 3207 4
	// doc/behaviour.md D6: AUTH only once it can be used (RFC 4954 4).
	if (submission() && (tls || !tls_required_for_auth())) lines.push_back("AUTH " + advertised_auth_mechanisms());
	lines.emplace_back("ENHANCEDSTATUSCODES");  // RFC 2034
	lines.emplace_back("8BITMIME");             // RFC 6152
	lines.emplace_back("CHUNKING");             // RFC 3030 2
	lines.emplace_back("DSN");                  // RFC 3461 4
	// RFC 8689 2: REQUIRETLS only where it can be used, inside TLS.
	if (tls) lines.emplace_back("REQUIRETLS");
	lines.push_back("LIMITS RCPTMAX=" + std::to_string(max_recipients) +  // RFC 9422 4
	                " MAILMAX=" + std::to_string(max_transactions));
	lines.emplace_back("SMTPUTF8");  // RFC 6531
	return lines;
}

bool Connection::tls_required_for_auth() const {
	return service == net::Service::submission && listener().submission.require_starttls;
}

// RFC 3207
Outcome Connection::cmd_starttls(std::string_view args) {
	if (smtp::Status s = need_hello(); !s) return s.error();
	if (smtp::Status s = smtp::parse_no_args(args, parse_mode()); !s) return s.error();
	// doc/behaviour.md D7: without a certificate STARTTLS is not
	// offered, and not accepted either.
	if (!srv.tls_context()) return error_reply(502, se::proto_bad_cmd_or_seq1, "starttls not available");
	if (tls) return error_reply(503, se::proto_bad_cmd_or_seq1, "already speaking tls");
	if (!username.empty())
		return error_reply(503, se::proto_bad_cmd_or_seq1, "cannot starttls after authentication");
	// The handshake starts once the 220 is on the wire.
	return Outcome::reply(220, se::other0, "go!").then(SessionState::tls_handshake);
}

// The checks of MAIL before its address is looked at; a refusal leaves no
// transaction (RFC 5321 4.1.1.2).
smtp::Result<smtp::MailArgs> Connection::mail_args(std::string_view args) const {
	smtp::Result<smtp::MailArgs> m = smtp::parse_mail(args, parse_mode(), listener().max_message_size);
	if (!m) return m;
	// RFC 8689 4.1: REQUIRETLS is only valid on a TLS session.
	if (m->requiretls && !tls)
		return error_reply(530, se::pol_encryption_needed10, "REQUIRETLS only on a TLS-protected connection");
	return m;
}

// RFC 5321 4.1.1.2
Outcome Connection::cmd_mail(std::string_view args) {
	// RFC 5321 7.9: a client guessing addresses gets cut off.
	if (tx_bad > 10 && tx_good == 0)
		return error_reply(550, se::addr_other0, "too many failures").without_id().then_close();
	if (smtp::Status s = mail_commands_allowed(); !s) return s.error();
	if (tx.has_mail) return smtp::replies::already_have_mail();
	// RFC 9422 4.2: past MAILMAX the client has to start a new connection.
	if (transactions >= max_transactions)
		return error_reply(421, se::proto_too_many_rcpts3, "too many transactions on this connection")
		    .then_close();
	smtp::Result<smtp::MailArgs> m = mail_args(args);
	if (!m) {
		rset();  // RFC 5321 4.1.1.2: a failed MAIL leaves no transaction
		return m.error();
	}
	if (!submission() && m->from && !m->from->ip && localserve().checks_over_dns()) {
		// RFC 7505 4.2: refuse senders whose domain cannot take replies
		// (null MX, or no MX and no address).
		std::string domain = m->from->domain.ascii;  // copied before m moves into the continuation
		mailauth::check_mx_records(
		    srv.resolver(), cid, domain,
		    suspend([m = std::move(*m)](Connection& c, mailauth::MxVerdict v) mutable -> Outcome {
			    if (v == mailauth::MxVerdict::temporary_error)
				    return error_reply(451, se::net_other0,
				                       "cannot verify mx records for mailfrom domain");
			    if (v == mailauth::MxVerdict::no_mail)
				    return error_reply(550, se::pol_null_mx27,
				                       "mailfrom domain not configured for mail");
			    return c.mail_accepted(std::move(m));
		    }));
		return Outcome::suspended();
	}
	return mail_accepted(std::move(*m));
}

// RFC 6409 4.1 / 8.1: a submitter sends only as itself (the null sender is
// allowed); localserve lets its one account use any address.
smtp::Status Connection::sender_allowed(const smtp::MailArgs& m) {
	if (m.from && m.from->ip) {
		if (submission()) return error_reply(550, se::pol_delivery_not_auth1, "must match authenticated user");
		return error_reply(550, se::pol_other0, "domain name required");
	}
	if (!submission() || localserve().any_sender()) return {};
	// A login without a tern account (a Dovecot user tern does not host)
	// sends as nobody, not even with the null sender.
	bool allowed = cfg->accounts.count(username) != 0;
	if (allowed && m.from) {
		const config::Account* acc = cfg->account_for_address(m.from->localpart, m.from->domain.ascii);
		allowed = acc && acc->name == username;
	}
	if (!allowed) {
		rset();
		return error_reply(550, se::pol_delivery_not_auth1, "must match authenticated user");
	}
	return {};
}

Outcome Connection::mail_accepted(smtp::MailArgs m) {
	if (smtp::Status s = sender_allowed(m); !s) return s.error();
	if (m.from)
		if (auto failure = localserve_command_failure("mailfrom", m.from->localpart))
			return std::move(*failure);
	if (milter_check(MilterStage::mail, "<" + (m.from ? address_text(*m.from) : "") + ">",
	                 [m](Connection& c) { return c.mail_accepted(m); }))
		return Outcome::suspended();
	tx.has_mail = true;
	tx.mail_from = std::move(m.from);
	tx.smtputf8 = m.smtputf8;
	tx.body_8bitmime = m.body_8bitmime;
	tx.dsn_ret = m.ret;
	tx.envid = m.envid.value_or("");
	tx.requiretls = m.requiretls;
	++transactions;
	// SPF depends only on the client, HELO and MAIL FROM (RFC 7208 4.1), all
	// known now: evaluated while RCPT and DATA arrive. So is the MAIL FROM
	// domain's DMARC record, which the analysis uses when the From header
	// names the same domain (doc/design.md "Early lookups").
	if (!submission() && localserve().checks_over_dns()) {
		tx.early_spf = std::make_shared<EarlySpf>();
		tx.early_spf->args = spf_args();
		mailauth::spf_verify(
		    srv.resolver(), cid, tx.early_spf->args,
		    [early = tx.early_spf](mailauth::SpfReceived received, std::string explanation, bool) {
			    early->lookup.set({std::move(received), std::move(explanation)});
		    });
		if (tx.mail_from) look_up_dmarc_early(tx.mail_from->domain.ascii);
	}
	return Outcome::reply(smtp::replies::mail_accepted());
}

// RFC 5321 4.1.1.3
Outcome Connection::cmd_rcpt(std::string_view args) {
	if (smtp::Status s = mail_commands_allowed(); !s) return s.error();
	if (!tx.has_mail) return smtp::replies::missing_mail();
	smtp::Result<smtp::RcptArgs> r = smtp::parse_rcpt(args, parse_mode());
	if (!r) return r.error();
	// RFC 5321 4.5.3.1.8: at least 100 recipients must be accepted.
	if (tx.recipients.size() >= max_recipients)
		return error_reply(452, se::proto_too_many_rcpts3,
		                   "max of " + std::to_string(max_recipients) + " recipients reached");
	// A null reverse path is for notifications, which go to one recipient.
	if (!submission() && !tx.recipients.empty() && !tx.mail_from)
		return error_reply(452, se::proto_too_many_rcpts3,
		                   "only one recipient allowed with null reverse address");

	// Several recipients only for senders that pass SPF: a DSN for a failed
	// recipient must not become backscatter to a forged sender (RFC 5321
	// 3.6.3; doc/behaviour.md §4 RCPT step 5). Asked once, at the second.
	if (!submission() && tx.recipients.size() == 1 && localserve().checks_over_dns()) {
		mailauth::spf_verify(srv.resolver(), cid, spf_args(),
		                     suspend([r = std::move(*r)](Connection& c, const mailauth::SpfReceived& received,
		                                                 const std::string&, bool) mutable -> Outcome {
					     if (received.identity != mailauth::SpfReceived::Identity::mailfrom ||
			                         received.result != mailauth::SpfStatus::pass)
						     return error_reply(452, se::proto_too_many_rcpts3,
				                                        "only one recipient allowed without spf pass");
					     return c.rcpt_accepted(std::move(r));
				     }));
		return Outcome::suspended();
	}
	return rcpt_accepted(std::move(*r));
}

Outcome Connection::rcpt_accepted(smtp::RcptArgs r) {
	decide::RecipientDecision d = decide::resolve_recipient(*cfg, r, {hostname(), submission(), tx.smtputf8});
	if (auto failure = localserve_command_failure("rcptto", d.recipient.address.localpart))
		return std::move(*failure);
	if (d.refused) return error_reply(d.code, d.secode, std::move(d.text));
	if (milter_check(MilterStage::rcpt, "<" + d.recipient.display + ">",
	                 [r](Connection& c) { return c.rcpt_accepted(r); }))
		return Outcome::suspended();
	tx.recipients.push_back(std::move(d.recipient));
	return Outcome::reply(smtp::replies::recipient_accepted());
}

// Localserve's special localparts at MAIL and RCPT (doc/behaviour.md
// "localserve"): a refusal with the code asked for, or a stall of an hour.
std::optional<Outcome> Connection::localserve_command_failure(std::string_view prefix, std::string_view localpart) {
	LocalserveFailure f = localserve().command_failure(prefix, localpart);
	if (f.timeout) {
		log::event(log::Level::info, cid, "timing out due to special localpart");
		stall_localserve_timeout("command", se::sys_other0);
		return Outcome::suspended();
	}
	if (f.code != 0) return Outcome(error_reply(f.code, se::other0, f.failure_text()));
	return std::nullopt;
}

// The "timeout" localpart: no answer for an hour, then the model's 451
// naming the step that timed out.
void Connection::stall_localserve_timeout(std::string_view step, std::string_view secode) {
	stall_then_reply(3600,
	                 error_reply(451, secode, "timing out " + std::string(step) + " due to special localpart"));
}

Outcome Connection::cmd_rset(std::string_view args) {
	if (smtp::Status s = smtp::parse_no_args(args, parse_mode()); !s) return s.error();
	rset();
	return Outcome::reply(smtp::replies::reset_done());
}

Outcome Connection::cmd_vrfy(std::string_view args, bool expn) {
	if (smtp::Result<std::string> s = smtp::parse_vrfy(args, parse_mode()); !s) return s.error();
	return smtp::replies::will_not_verify(expn);
}

Outcome Connection::cmd_help(std::string_view) { return Outcome::reply(smtp::replies::help()); }

Outcome Connection::cmd_noop(std::string_view args) {
	if (smtp::Status s = smtp::parse_noop(args, parse_mode()); !s) return s.error();
	return Outcome::reply(smtp::replies::noop_done());
}

Outcome Connection::cmd_quit(std::string_view args) {
	if (smtp::Status s = smtp::parse_no_args(args, parse_mode()); !s) return s.error();
	return Outcome::reply(smtp::replies::goodbye()).then(SessionState::closing);
}

}  // namespace tern::server
