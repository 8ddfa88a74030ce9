// The port-25 decision (doc/behaviour.md §9), as a chain of asynchronous
// steps: the header is read and DKIM bodies hashed on a worker; iprev, SPF
// and the DKIM key lookups run in parallel on the loop; signatures are
// verified on a worker; then DMARC, the analysis, DNS blocklists and the
// first-time-sender delay (a timer), and finally the durable copies.
#include <ctime>

#include "core/stats.h"
#include "mailauth/auth_methods.h"
#include "mailauth/dnsbl.h"
#include "message/auth_results.h"
#include "message/dsn.h"
#include "message/headers.h"
#include "message/submission.h"
#include "server/dkim_sign.h"
#include "server/server.h"
#include "store/files.h"
#include "server/session.h"
#include "server/suspend.h"
#include "util/log.h"

namespace tern::server {

using smtp::SmtpError;
namespace se = smtp::se;

void Connection::analyze_inbound() {
	auto an = std::make_shared<InboundAnalysis>();
	an->path = message_path;
	an->spf_args = tx.early_spf ? tx.early_spf->args : spf_args();
	srv.workers().submit([an] { read_inbound_message(*an); },
	                     suspend([an](Connection& c) { c.analysis_lookups(an); }));
	flush();
}

void Connection::analysis_lookups(std::shared_ptr<InboundAnalysis> an) {
	// RFC 5321 6.3: a message that went round more than 100 hops loops.
	if (an->received_headers > 100) {
		abort_data_file();
		rset();
		throw SmtpError{550, std::string(se::net_routing_loop6), "loop detected, more than 100 Received headers"};
	}
	an->key_answers.resize(an->pending.size());
	std::vector<size_t> key_lookups;
	for (size_t i = 0; i < an->pending.size(); ++i)
		if (!an->pending[i].early) key_lookups.push_back(i);
	// Every lookup decrements the count; the last one moves on. Each
	// callback reaches the connection only through its handle.
	an->outstanding = 2 + static_cast<int>(key_lookups.size());
	state = SessionState::waiting;
	async_pending = true;
	arm_deadline();
	auto join = [server = &srv, h = self, an] {
		if (--an->outstanding != 0) return;
		server->with_conn(h, [&](Connection& c) {
			c.async_pending = false;
			c.resume([&] { c.analysis_verify(an); });
		});
	};
	// iprev and SPF were started early (server/early_lookup.h); they are
	// joined here, or started now when they were not.
	auto on_iprev = [an, join](const mailauth::IprevResult& r) {
		an->iprev = r;
		join();
	};
	if (early_iprev)
		early_iprev->get(on_iprev);
	else
		mailauth::iprev_lookup(srv.resolver(), cid, remote_ip, on_iprev);
	auto on_spf = [an, join](const SpfOutcome& outcome) {
		an->spf = outcome.received;
		an->spf_explanation = outcome.explanation;
		join();
	};
	if (tx.early_spf)
		tx.early_spf->lookup.get(on_spf);
	else
		mailauth::spf_verify(srv.resolver(), cid, an->spf_args,
		                     [on_spf](mailauth::SpfReceived received, std::string explanation, bool) {
			                     on_spf(SpfOutcome{std::move(received), std::move(explanation)});
		                     });
	for (size_t i : key_lookups) {
		srv.resolver().query(cid, an->pending[i].dns_name, mailauth::RrType::TXT,
		                     [an, join, i](const mailauth::DnsAnswer& a) {
			                     an->key_answers[i] = a;
			                     join();
		                     });
	}
}

void Connection::analysis_verify(std::shared_ptr<InboundAnalysis> an) {
	auto after_dkim = [an](Connection& c) {
		if (an->from_domain.empty()) {  // no From: DMARC says none
			c.analysis_decide(an);
			return;
		}
		mailauth::dmarc_verify(c.srv.resolver(), c.cid, an->from_domain, an->dkim, an->spf.result, an->spf_domain(),
		                       c.suspend([an](Connection& c2, mailauth::DmarcResult r) {
			                       an->dmarc = std::move(r);
			                       c2.analysis_decide(an);
		                       }));
	};
	// Signature checks are public-key crypto: a worker does them. A message
	// without signatures has nothing to check, and skips the round trip.
	if (an->pending.empty()) {
		finish_dkim(*an);
		after_dkim(*this);
		return;
	}
	srv.workers().submit([an] { finish_dkim(*an); }, suspend(after_dkim));
	flush();
}

std::string Connection::authentication_results(const InboundAnalysis& an) const {
	std::vector<message::AuthMethod> methods;
	methods.push_back(mailauth::iprev_auth_method(an.iprev.status, remote_ip));
	for (auto& m : mailauth::dkim_auth_methods(an.dkim)) methods.push_back(std::move(m));
	methods.push_back(mailauth::spf_auth_method(an.spf.result, an.spf.identity, an.spf_domain()));
	methods.push_back(mailauth::dmarc_auth_method(an.dmarc));
	return message::build_authentication_results(global_hostname(), "", methods);
}

// doc/behaviour.md §9 "analyze()": without reputation data or a junk
// filter, the decisive signals are DMARC reject, an SPF fail/softfail for
// the MAIL FROM domain, and DNS blocklists. Rejections are deliberately
// vague and temporary (451 error processing), except DMARC's.
void Connection::analysis_decide(std::shared_ptr<InboundAnalysis> an) {
	// Its four fields are built only when the line is written (every message).
	if (log::enabled(log::Level::debug))
		log::event(log::Level::debug, cid, "message analysis",
		           {{"iprev", mailauth::iprev_status_name(an->iprev.status)},
		            {"spf", mailauth::spf_status_name(an->spf.result)},
		            {"dkim_signatures", std::to_string(an->dkim.size())},
		            {"dmarc_reject", an->dmarc.use && an->dmarc.reject ? "yes" : "no"}});
	auto reject = [&](int code, std::string_view secode, const std::string& text, const char* reason) {
		log::event(log::Level::info, cid, "incoming message rejected", {{"reason", reason}});
		slow = true;  // a refused sender is kept busy (slow mode) from now on
		for (const auto& r : tx.recipients) if (r.local) core::stats().count_delivery("reject", reason);  // per recipient, as the seed
		std::vector<DeliverError> errors;
		for (const auto& r : tx.recipients)
			errors.push_back({r.display, code, std::string(secode), code >= 500, r.local ? text : "no such user"});
		deliver_copies(an, std::move(errors));
	};
	if (an->dmarc.use && an->dmarc.reject) {
		reject(550, se::pol_dmarc26, "rejecting per dmarc policy", "dmarc-policy");
		return;
	}
	if (an->spf.identity == mailauth::SpfReceived::Identity::mailfrom &&
	    (an->spf.result == mailauth::SpfStatus::fail || an->spf.result == mailauth::SpfStatus::softfail)) {
		reject(451, se::sys_other0, "error processing", "spf-policy");
		return;
	}
	analysis_dnsbl(an, 0);
}

void Connection::analysis_dnsbl(std::shared_ptr<InboundAnalysis> an, size_t zone) {
	const auto& zones = listener().smtp.dnsbl_zones;
	if (zone < zones.size()) {
		mailauth::dnsbl_lookup(srv.resolver(), cid, remote_ip, zones[zone],
		                       suspend([an, zone](Connection& c, mailauth::DnsblStatus s) {
			                       if (s == mailauth::DnsblStatus::fail) {
				                       log::event(log::Level::info, c.cid, "incoming message rejected",
				                                  {{"reason", "dns-blocklisted"}, {"zone", c.listener().smtp.dnsbl_zones[zone]}});
				                       c.slow = true;  // as for any refusal by analysis
				                       for (const auto& r : c.tx.recipients) if (r.local) core::stats().count_delivery("reject", "dns-blocklisted");
				                       std::vector<DeliverError> errors;
				                       for (const auto& r : c.tx.recipients)
					                       errors.push_back({r.display, 451, std::string(se::sys_other0), false,
					                                         r.local ? "error processing" : "no such user"});
				                       c.deliver_copies(an, std::move(errors));
				                       return;
			                       }
			                       c.analysis_dnsbl(an, zone + 1);
		                       }));
		flush();
		return;
	}
	// Accepted with no bad signals. The seed holds a first-time sender for a
	// while before storing (a timer here, never a sleep).
	double delay = static_cast<double>(listener().smtp.first_time_sender_delay_ms) / 1000.0;
	if (delay > 0) {
		stall_then(delay, [an](Connection& c) { c.deliver_copies(an); });
		return;
	}
	deliver_copies(an);
}

// The DSN for recipients that failed while others were delivered (RFC 3464,
// doc/behaviour.md §13), queued to the MAIL FROM address with the null
// reverse path. Composing and writing it is disk work for a worker; its
// fate does not change the reply to the client.
void Connection::queue_incoming_dsn(const InboundAnalysis& an, const std::vector<DeliverError>& errors) {
	OutboundQueue* queue = srv.outbound();
	if (!queue) return;
	std::time_t now = std::time(nullptr);
	message::DsnMessage dsn;
	dsn.smtputf8 = tx.smtputf8;
	std::string first = errors[0].rcpt;
	dsn.from = "postmaster@" + first.substr(first.rfind('@') + 1);
	dsn.to = address_text(*tx.mail_from);
	dsn.subject = message::subject_incoming_failure;
	dsn.message_id = message::make_message_id(global_hostname());
	for (const auto& f : an.fields)
		if (f.lower_name == "message-id") dsn.references = f.unfolded_value();
	dsn.reporting_mta = global_hostname();
	dsn.received_from_mta = message::received_from_mta_value(
	    hello->ip ? hello->ip->to_literal() : hello->domain.ascii, remote_ip.to_literal());
	dsn.arrival = now;
	dsn.date = now;
	dsn.tz_offset_s = message::local_utc_offset(now);
	std::vector<message::IncomingFailure> failures;
	for (const auto& e : errors) {
		failures.push_back({e.rcpt, e.text, e.code >= 500});
		message::DsnRecipient r;
		r.final_recipient = e.rcpt;
		r.action = "failed";
		r.status = smtp::enhanced_code(e.code, e.secode);
		r.last_attempt = now;
		dsn.recipients.push_back(std::move(r));
	}
	dsn.text_body = message::incoming_failure_text(failures);
	for (const auto& f : an.fields) dsn.original_headers += f.raw;

	std::string domain = dsn.to.substr(dsn.to.rfind('@') + 1);
	std::string path = cfg->data_dir + "/tmp/dsn-" + std::to_string(cid) + "-" + std::to_string(now);
	auto error = std::make_shared<std::string>();
	auto msg = std::make_shared<OutboundMessage>();
	msg->from = "";
	msg->message_id = dsn.message_id;
	msg->recipients.push_back({dsn.to, domain, ""});
	msg->message_path = path;
	msg->smtputf8 = false;
	std::shared_ptr<const config::Config> config = cfg;
	std::string sign_domain = dsn.from.substr(dsn.from.rfind('@') + 1);
	srv.workers().submit(
	    [dsn, path, msg, error, config, sign_domain, now] {
		    try {
			    std::string text = message::compose_dsn(dsn, false);
			    // RFC 6376: signed like any mail of that domain, when it has keys.
			    text = dkim_sign_text(*config, sign_domain, text, now) + text;
			    if (dsn.smtputf8) msg->dsn_utf8 = message::compose_dsn(dsn, true);
			    store::write_new_file(path, text);
			    msg->message_size = static_cast<int64_t>(text.size());
		    } catch (const std::exception& e) {
			    *error = e.what();
		    }
	    },
	    [queue, msg, error] {
		    if (!error->empty()) {
			    log::error("composing dsn for incoming delivery, no dsn sent", {{"error", *error}});
			    core::stats().count_error("queuedsn");  // tern_smtpserver_errors_total
			    return;
		    }
		    // The queue outlives every connection; no handle is needed here.
		    queue->enqueue(std::move(*msg), [](const std::string& err) {
			    if (!err.empty()) log::error("queueing dsn for incoming delivery, no dsn sent", {{"error", err}});
			    if (!err.empty()) core::stats().count_error("queuedsn");  // tern_smtpserver_errors_total
		    });
	    });
}

}  // namespace tern::server
