// The port-25 decision (doc/behaviour.md §9), as a chain of asynchronous
// steps: the header is read and DKIM bodies hashed on a worker; iprev, SPF
// and the DKIM key lookups run in parallel on the loop; signatures are
// verified on a worker; then DMARC, the analysis, DNS blocklists and the
// first-time-sender delay (a timer), and finally the durable copies.
#include <unistd.h>

#include <ctime>
#include <filesystem>
#include <map>

#include <set>

#include "core/stats.h"
#include "inbound/delivery_rate.h"
#include "mailauth/publicsuffix.h"
#include "store/history.h"
#include "mailauth/auth_methods.h"
#include "mailauth/dnsbl.h"
#include "message/auth_results.h"
#include "message/dsn.h"
#include "message/headers.h"
#include "message/submission.h"
#include "server/dkim_sign.h"
#include "server/local_delivery.h"
#include "server/report_step.h"
#include "store/junk_counts.h"
#include "store/subject_pass.h"
#include "server/server.h"
#include "store/files.h"
#include "store/maildir.h"
#include "util/storage.h"
#include "server/session.h"
#include "server/suspend.h"
#include "util/log.h"
#include "util/strings.h"

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
		refuse_message(smtp::error_reply(550, se::net_routing_loop6, "loop detected, more than 100 Received headers"));
		return;
	}
	an->key_answers.resize(an->pending.size());
	std::vector<size_t> key_lookups;
	for (size_t i = 0; i < an->pending.size(); ++i)
		if (!an->pending[i].early) key_lookups.push_back(i);
	// Every lookup decrements the count; the last one moves on. Each
	// callback reaches the connection only through its handle.
	an->outstanding = 2 + static_cast<int>(key_lookups.size());
	std::function<void()> all_answered = suspend([an](Connection& c) { c.analysis_verify(an); });
	auto join = [an, all_answered] {
		if (--an->outstanding == 0) all_answered();
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

namespace {

inbound::SpfVerdict spf_verdict(mailauth::SpfStatus s) {
	switch (s) {
	case mailauth::SpfStatus::none: return inbound::SpfVerdict::none;
	case mailauth::SpfStatus::neutral: return inbound::SpfVerdict::neutral;
	case mailauth::SpfStatus::pass: return inbound::SpfVerdict::pass;
	case mailauth::SpfStatus::fail: return inbound::SpfVerdict::fail;
	case mailauth::SpfStatus::softfail: return inbound::SpfVerdict::softfail;
	case mailauth::SpfStatus::temperror: return inbound::SpfVerdict::temperror;
	case mailauth::SpfStatus::permerror: return inbound::SpfVerdict::permerror;
	}
	return inbound::SpfVerdict::none;
}

}  // namespace

// Everything inbound::analyze() and the history read about this message,
// in one place. The junk filter (facts.junk_filter), a kept DMARC or TLS
// report (facts.report_kept) and subject-pass (facts.subject_pass) stay at
// their "not known" values here; each of those features fills its field
// with one call before the per-account look-ups.
void gather_message_facts(InboundAnalysis& an, const IpAddr& remote_ip, const smtp::HelloArg& hello,
                          const std::optional<smtp::Address>& mail_from) {
	inbound::MessageFacts& f = an.facts;
	f.dmarc_used = an.dmarc.use;
	f.dmarc_reject = an.dmarc.reject;
	f.dmarc_pass = an.dmarc.status == mailauth::DmarcStatus::pass;
	// Only a result for the MAIL FROM identity counts (doc/behaviour.md §9).
	f.spf_mailfrom = an.spf.identity == mailauth::SpfReceived::Identity::mailfrom ? spf_verdict(an.spf.result)
	                                                                               : inbound::SpfVerdict::none;
	f.iprev_pass = an.iprev.status == mailauth::IprevStatus::pass;

	inbound::MessageIdentity& m = an.identity;
	m.from_localpart = an.from_localpart;
	m.from_domain = ascii_lower(an.from_domain);
	m.from_org_domain = m.from_domain.empty() ? "" : mailauth::organizational_domain(m.from_domain);
	// RFC 7489 3.1: a From domain aligned with a passing SPF or DKIM identity.
	m.from_validated = f.dmarc_pass || an.dmarc.aligned_dkim_pass || an.dmarc.aligned_spf_pass;
	std::set<std::string> dkim;
	for (const auto& r : an.dkim)
		if (r.status == mailauth::dkim::Status::pass && !r.domain().empty()) dkim.insert(ascii_lower(r.domain()));
	m.dkim_domains.assign(dkim.begin(), dkim.end());
	if (mail_from) {
		m.mailfrom_localpart = mail_from->localpart;
		m.mailfrom_domain = ascii_lower(mail_from->domain.ascii);
	}
	m.mailfrom_validated = an.spf.identity == mailauth::SpfReceived::Identity::mailfrom &&
	                       an.spf.result == mailauth::SpfStatus::pass;
	if (!hello.ip) m.ehlo_domain = ascii_lower(hello.domain.ascii);
	// The EHLO name is validated by an SPF pass for the HELO identity, or by
	// iprev verifying exactly that name (RFC 8601 2.7.3).
	m.ehlo_validated = !m.ehlo_domain.empty() &&
	                   ((an.spf.identity == mailauth::SpfReceived::Identity::helo &&
	                     an.spf.result == mailauth::SpfStatus::pass) ||
	                    (f.iprev_pass && ascii_lower(an.iprev.name) == m.ehlo_domain));
	auto masks = store::ip_masks(remote_ip.to_string());
	m.ip1 = masks[0];
	m.ip2 = masks[1];
	m.ip3 = masks[2];
}

void Connection::analysis_decide(std::shared_ptr<InboundAnalysis> an) {
	// Its four fields are built only when the line is written (every message).
	if (log::enabled(log::Level::debug))
		log::event(log::Level::debug, cid, "message analysis",
		           {{"iprev", mailauth::iprev_status_name(an->iprev.status)},
		            {"spf", mailauth::spf_status_name(an->spf.result)},
		            {"dkim_signatures", std::to_string(an->dkim.size())},
		            {"dmarc_reject", an->dmarc.use && an->dmarc.reject ? "yes" : "no"}});
	gather_message_facts(*an, remote_ip, *hello, tx.mail_from);
	// Zones that fail RFC 5782 5's test addresses are skipped.
	srv.dnsbl_health().healthy_zones(cid, listener().smtp.dnsbl_zones,
	                                 suspend([an](Connection& c, const std::vector<std::string>& zones) {
		                                 an->dnsbl_zones = zones;
		                                 c.analysis_dnsbl(an, 0);
	                                 }));
}

// DNS blocklists, zone by zone until one lists the client; the analysis
// decides later whether that matters (doc/behaviour.md §9).
void Connection::analysis_dnsbl(std::shared_ptr<InboundAnalysis> an, size_t zone) {
	const auto& zones = an->dnsbl_zones;
	if (zone < zones.size() && !(an->facts.dmarc_used && an->facts.dmarc_reject)) {
		mailauth::dnsbl_lookup(srv.resolver(), cid, remote_ip, zones[zone],
		                       suspend([an, zone](Connection& c, mailauth::DnsblStatus s) {
			                       if (s == mailauth::DnsblStatus::fail) {
				                       an->facts.dnsbl_listed_zone = an->dnsbl_zones[zone];
				                       c.analysis_history(an);
				                       return;
			                       }
			                       c.analysis_dnsbl(an, zone + 1);
		                       }));
		flush();
		return;
	}
	analysis_history(an);
}

// Per destination account, on a worker: reputation() over its history, the
// delivery-rate counts and its Rejects copies; and the message's size and
// hash for the history records.
void Connection::analysis_history(std::shared_ptr<InboundAnalysis> an) {
	// DMARC and TLS reports to report addresses are kept first (doc/behaviour.md
	// §9, step 3): whether one was kept is a fact of the verdict.
	keep_reports_then(*this, an, [an](Connection& c, bool) { c.analysis_accounts(an); });
}

// The rest of the facts, per destination account (reputation, rate counts,
// junk filter, subject-pass), then inbound::analyze(), on a worker.
void Connection::analysis_accounts(std::shared_ptr<InboundAnalysis> an) {
	std::set<std::string> accounts, report_accounts;
	for (const auto& r : tx.recipients) {
		if (!r.local) continue;
		accounts.insert(r.account);
		if (an->seen_recipients.count(r.display)) report_accounts.insert(r.account);
	}
	store::Env* env = srv.env();
	std::shared_ptr<const config::Config> config = cfg;
	srv.workers().submit(
	    [an, accounts, report_accounts, env, config] {
		    hash_inbound_message(*an);
		    int64_t now = std::time(nullptr);
		    for (const auto& account : accounts) {
			    InboundAnalysis::AccountDecision d;
			    inbound::MessageFacts facts = an->facts;
			    const config::Account& settings = config->accounts.at(account);
			    facts.report_kept = report_accounts.count(account) > 0;
			    facts.junk_filter = store::junk_probability(env, settings, an->path);
			    facts.subject_pass = store::subject_pass_facts(env, settings, an->path, now);
			    std::optional<std::string> rate_refusal;
			    if (env) {
				    store::MessageHistory history(*env);
				    try {
					    facts.reputation = history.reputation(account, an->identity, now);
					    const auto& limits = settings.delivery_rate_limits;
					    auto counts =
					        history.delivery_counts(account, {an->identity.ip1, an->identity.ip2, an->identity.ip3}, now);
					    rate_refusal = inbound::delivery_rate_refusal(counts, an->size, limits);
					    d.rejects = history.rejects(account);
				    } catch (const std::exception& e) {
					    log::error("reading message history", {{"account", account}, {"error", e.what()}});
					    facts.reputation.error = true;
					    d.history_error = true;
				    }
			    }
			    if (rate_refusal)
				    d.verdict = inbound::Verdict{false, 452, std::string(se::mailbox_full2), *rate_refusal,
				                                 "rate-limited", false};
			    else
				    d.verdict = inbound::analyze(facts);
			    an->decisions[account] = std::move(d);
		    }
	    },
	    suspend([an](Connection& c) { c.analysis_verdicts(an); }));
	flush();
}

void Connection::analysis_verdicts(std::shared_ptr<InboundAnalysis> an) {
	bool refused = false, delay = false;
	for (const auto& [account, d] : an->decisions) {
		const inbound::Verdict& v = d.verdict;
		if (!v.accept) {
			refused = true;
			log::event(log::Level::info, cid, "incoming message rejected",
			           {{"account", account},
			            {"reason", v.reason},
			            {"code", std::to_string(v.code)},
			            {"zone", an->facts.dnsbl_listed_zone}});
		}
		if (inbound::first_time_delay_applies(v)) delay = true;
	}
	// A refused sender (analysis or rate limit) is kept busy from now on.
	if (refused) flags.slow = true;
	// The seed holds a sender nothing is known about for a while before
	// storing (a timer here, never a sleep); known senders never wait.
	double seconds = static_cast<double>(listener().smtp.first_time_sender_delay_ms) / 1000.0;
	if (delay && seconds > 0) {
		stall_then(seconds, [an](Connection& c) { c.deliver_copies(an); });
		return;
	}
	deliver_copies(an);
}

// The copies of a port-25 message: one per recipient whose account
// accepted it, with the reason header first (doc/behaviour.md §7); for an
// account that refused it, the error and one copy in its Rejects mailbox
// (doc/behaviour.md §9 "Rejects").
void Connection::deliver_inbound_copies(std::shared_ptr<InboundAnalysis> an, const std::string& common,
                                        message::ReceivedInfo ri) {
	int64_t now = std::time(nullptr);
	auto copies = std::make_shared<std::vector<LocalCopy>>();
	std::vector<std::string> copy_rcpts;
	std::vector<DeliverError> errors;
	// When every account refused, unknown recipients share the refusal's code,
	// so the client gets one reply rather than a list (the seed's way).
	const inbound::Verdict* refusal_for_all = nullptr;
	for (const auto& [account, d] : an->decisions) {
		if (d.verdict.accept) {
			refusal_for_all = nullptr;
			break;
		}
		if (!refusal_for_all) refusal_for_all = &d.verdict;
	}
	std::set<std::string> rejects_done;
	for (const auto& r : tx.recipients) {
		if (!r.local) {
			core::stats().count_delivery("unknownuser", "");  // tern_smtpserver_delivery_total
			if (refusal_for_all)
				errors.push_back({r.display, refusal_for_all->code, refusal_for_all->secode,
				                  refusal_for_all->code >= 500, "no such user"});
			else
				errors.push_back({r.display, 550, std::string(se::addr_bad_dest_mailbox1), true, "no such user"});
			continue;
		}
		const config::Account& account = cfg->accounts.at(r.account);
		const InboundAnalysis::AccountDecision& d = an->decisions.at(r.account);
		const inbound::Verdict& v = d.verdict;
		std::string reason_header = "X-Tern-Reason: " + v.reason + "\r\n";
		message::ReceivedInfo shared = ri;  // one LMTP transaction, several recipients: no "for"
		ri.for_rcpt = r.display;
		if (v.accept) {
			// To the account's Maildir or its LMTP server (server/local_delivery).
			copies->push_back(local_copy(account, r.mailbox, r.display, reason_header + common + message::build_received(ri),
			                             reason_header + common + message::build_received(shared)));
			copies->back().maildir.seen = an->seen_recipients.count(r.display) > 0;  // a kept DMARC/TLS report
			copy_rcpts.push_back(r.display);
			an->copy_notes.push_back({r.account, v.reason, false});
			auto superseded = inbound::rejects_superseded(d.rejects, an->message_id);
			auto& remove = an->rejects_to_remove[r.account];
			remove.insert(remove.end(), superseded.begin(), superseded.end());
			continue;
		}
		core::stats().count_delivery("reject", v.reason);  // per recipient, as the seed
		errors.push_back({r.display, v.code, v.secode, v.code >= 500, v.text});
		// One Rejects copy per account, only when its history could be read
		// (otherwise the Rejects mailbox could not be kept tidy).
		if (d.history_error || !srv.env() || !rejects_done.insert(r.account).second) continue;
		inbound::RejectsPlan plan = inbound::plan_reject(d.rejects, an->message_id, an->sha256, account.keep_rejects, now);
		auto& remove = an->rejects_to_remove[r.account];
		remove.insert(remove.end(), plan.remove.begin(), plan.remove.end());
		if (!plan.store) continue;
		// The Rejects mailbox is always tern's own Maildir, also for an
		// account that takes its mail over LMTP.
		LocalCopy rejected;
		rejected.maildir.maildir = account.maildir;
		rejected.maildir.mailbox = account.rejects_mailbox;
		rejected.maildir.prefix = reason_header + common + message::build_received(ri);
		rejected.maildir.seen = true;
		copies->push_back(std::move(rejected));
		copy_rcpts.push_back("");  // not a recipient's delivery
		an->copy_notes.push_back({r.account, v.reason, true});
	}
	std::string path = std::move(message_path);
	message_path.clear();  // the worker owns the file now
	if (copies->empty()) {
		unlink(path.c_str());
		record_inbound_history(an, {}, std::move(errors));
		return;
	}
	// The reply waits for every copy (the Maildir batch, the LMTP servers)
	// and then for the history records.
	deliver_local_copies(
	    srv, path, std::move(*copies), local_envelope(),
	    suspend([an, copy_rcpts = std::move(copy_rcpts), errors = std::move(errors)](
	                Connection& c, std::vector<CopyOutcome> outcomes) mutable {
		    c.inbound_copies_written(an, copy_rcpts, outcomes, std::move(errors));
	    }));
	flush();
}

// The outcome of each copy of a port-25 message: the failures join the
// errors, and the Maildir copies that landed get their history records.
void Connection::inbound_copies_written(std::shared_ptr<InboundAnalysis> an, const std::vector<std::string>& copy_rcpts,
                                        const std::vector<CopyOutcome>& outcomes, std::vector<DeliverError> errors) {
	std::vector<store::MaildirCopy> written;
	std::vector<InboundAnalysis::CopyNote> notes;
	std::string storage_failure_text;
	for (size_t i = 0; i < outcomes.size() && i < an->copy_notes.size(); ++i) {
		const CopyOutcome& o = outcomes[i];
		const auto& note = an->copy_notes[i];
		if (o.delivered) {
			// A copy an LMTP server took has no file of ours: the scanner
			// cannot follow it, so it gets no history record.
			if (!o.final_path.empty()) {
				store::MaildirCopy w;
				w.maildir = cfg->accounts.at(note.account).maildir;
				w.final_path = o.final_path;
				written.push_back(std::move(w));
				notes.push_back(note);
			}
			continue;
		}
		if (note.rejects_copy) {
			log::error("storing a Rejects copy failed", {{"account", note.account}, {"error", o.storage_error}});
			continue;
		}
		if (!o.storage_error.empty()) {
			storage_failure_text = o.storage_error;
			bool disk_full = is_storage_full_error(o.storage_error);
			SmtpError e = storage_failure(disk_full, "error processing");
			core::stats().count_delivery("delivererror", note.reason);
			errors.push_back({copy_rcpts[i], e.code, e.secode, false, e.text});
			continue;
		}
		// The LMTP server's answer for this recipient, or 451 4.3.0 when it
		// could not be reached in time.
		core::stats().count_delivery("delivererror", "lmtp");
		errors.push_back({copy_rcpts[i], o.code, o.secode, o.permanent, o.text});
	}
	if (!storage_failure_text.empty()) {
		log::error("maildir delivery failed", {{"error", storage_failure_text}});
		if (is_storage_full_error(storage_failure_text)) srv.disk_space().report_full();
	}
	an->copy_notes = std::move(notes);
	record_inbound_history(an, std::move(written), std::move(errors));
}

namespace {

// The IMAP name of the folder a delivered file landed in
// (<maildir>/<.folder>/new/<file>).
std::string folder_of(const std::string& maildir, const std::string& final_path) {
	std::filesystem::path dir = std::filesystem::path(final_path).parent_path().parent_path();
	if (dir == std::filesystem::path(maildir)) return inbound::folder_name_from_dir("");
	return inbound::folder_name_from_dir(dir.filename().string());
}

// Removes the Rejects copies (by unique name) of an account's Rejects folder.
void remove_rejects_copies(const std::string& rejects_dir, const std::vector<std::string>& unique_names) {
	std::set<std::string> wanted(unique_names.begin(), unique_names.end());
	for (const char* sub : {"cur", "new"}) {
		std::error_code ec;
		for (const auto& entry : std::filesystem::directory_iterator(rejects_dir + "/" + sub, ec)) {
			std::string name = entry.path().filename().string();
			if (wanted.count(std::string(inbound::maildir_unique_name(name)))) std::filesystem::remove(entry.path(), ec);
		}
	}
}

}  // namespace

// One history record per written copy, and the Rejects copies this message
// makes obsolete removed, on a worker; then the reply.
void Connection::record_inbound_history(std::shared_ptr<InboundAnalysis> an, std::vector<store::MaildirCopy> written,
                                        std::vector<DeliverError> errors) {
	store::Env* env = srv.env();
	if (!env) {
		delivery_done(std::move(errors), an);
		return;
	}
	std::vector<store::HistoryRecord> records;
	int64_t now = std::time(nullptr);
	for (size_t i = 0; i < written.size() && i < an->copy_notes.size(); ++i) {
		const auto& note = an->copy_notes[i];
		store::HistoryRecord h;
		h.account = note.account;
		h.mailbox = folder_of(written[i].maildir, written[i].final_path);
		h.unique_name = std::string(
		    inbound::maildir_unique_name(std::filesystem::path(written[i].final_path).filename().string()));
		h.received = now;
		h.remote_ip = remote_ip.to_string();
		h.identity = an->identity;
		h.size = an->size;
		h.message_id = an->message_id;
		h.sha256 = an->sha256;
		h.rejected = note.rejects_copy;
		h.reason = note.reason;
		records.push_back(std::move(h));
	}
	std::map<std::string, std::string> rejects_dirs;
	for (const auto& [account, names] : an->rejects_to_remove) {
		const auto& a = cfg->accounts.at(account);
		if (!names.empty()) rejects_dirs[account] = store::mailbox_dir(a.maildir, a.rejects_mailbox);
	}
	srv.workers().submit(
	    [env, an, records = std::move(records), rejects_dirs]() mutable {
		    try {
			    store::MessageHistory history(*env);
			    for (const auto& [account, dir] : rejects_dirs) {
				    remove_rejects_copies(dir, an->rejects_to_remove[account]);
				    history.mark_expunged(account, an->rejects_to_remove[account]);
			    }
			    history.add(records);
		    } catch (const std::exception& e) {
			    // The copies are durable; only what the history learns is lost.
			    log::error("recording message history", {{"error", e.what()}});
		    }
	    },
	    suspend([an, errors = std::move(errors)](Connection& c) mutable { c.delivery_done(std::move(errors), an); }));
	flush();
}

std::string Connection::count_inbound_deliveries(const InboundAnalysis& an, const std::vector<DeliverError>& errors) const {
	std::set<std::string> failed;
	for (const auto& e : errors) failed.insert(e.rcpt);
	std::set<std::string> reasons;
	for (const auto& r : tx.recipients) {
		if (!r.local || failed.count(r.display)) continue;
		auto it = an.decisions.find(r.account);
		if (it == an.decisions.end()) continue;
		core::stats().count_delivery("delivered", it->second.verdict.reason);  // tern_smtpserver_delivery_total
		reasons.insert(it->second.verdict.reason);
	}
	std::string out;
	for (const auto& reason : reasons) out += (out.empty() ? "" : ",") + reason;
	return out;
}

// The DSN for recipients that failed while others were delivered (RFC 3464,
// doc/behaviour.md §13), and for delivered ones whose NOTIFY asked for
// SUCCESS (RFC 3461 4.1: Action "delivered"), queued to the MAIL FROM
// address with the null reverse path. Composing and writing it is disk
// work for a worker; its fate does not change the reply to the client.
void Connection::queue_incoming_dsn(const InboundAnalysis& an, const std::vector<DeliverError>& all_errors) {
	OutboundQueue* queue = srv.outbound();
	if (!queue) return;
	// RFC 3461 4.1: only the failures the sender's NOTIFY asks for.
	auto recipient_of = [this](const std::string& display) -> const Recipient* {
		for (const auto& rc : tx.recipients)
			if (rc.display == display) return &rc;
		return nullptr;
	};
	std::vector<DeliverError> errors;
	for (const auto& e : all_errors) {
		const Recipient* rc = recipient_of(e.rcpt);
		if (!rc || smtp::dsn_wanted(rc->notify, smtp::DsnEvent::failure)) errors.push_back(e);
	}
	std::vector<const Recipient*> delivered;
	for (const auto& rc : tx.recipients) {
		bool failed = false;
		for (const auto& e : all_errors) failed = failed || e.rcpt == rc.display;
		if (!failed && smtp::dsn_wanted(rc.notify, smtp::DsnEvent::success)) delivered.push_back(&rc);
	}
	if (errors.empty() && delivered.empty()) return;
	std::time_t now = std::time(nullptr);
	message::DsnMessage dsn;
	dsn.smtputf8 = tx.smtputf8;
	std::string first = errors.empty() ? delivered[0]->display : errors[0].rcpt;
	dsn.from = "postmaster@" + first.substr(first.rfind('@') + 1);
	dsn.to = address_text(*tx.mail_from);
	dsn.subject = errors.empty() ? message::subject_delivered : message::subject_incoming_failure;
	dsn.message_id = message::make_message_id(global_hostname());
	for (const auto& f : an.fields)
		if (f.lower_name == "message-id") dsn.references = f.unfolded_value();
	dsn.reporting_mta = global_hostname();
	dsn.envid = tx.envid;  // RFC 3464 2.2.1
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
		if (const Recipient* rc = recipient_of(e.rcpt)) r.original_recipient = rc->orcpt;  // RFC 3464 2.3.1
		r.action = "failed";
		r.status = smtp::enhanced_code(e.code, e.secode);
		r.last_attempt = now;
		dsn.recipients.push_back(std::move(r));
	}
	dsn.text_body = failures.empty() ? "" : message::incoming_failure_text(failures);
	for (const Recipient* rc : delivered) {
		message::DsnRecipient r;
		r.final_recipient = rc->display;
		r.original_recipient = rc->orcpt;
		r.action = "delivered";  // RFC 3464 2.3.3
		r.status = "2.0.0";
		r.last_attempt = now;
		dsn.recipients.push_back(std::move(r));
		dsn.text_body += message::success_dsn_text(rc->display, false, "");
	}
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
