// The port-25 decision (doc/behaviour.md §9), as a chain of asynchronous
// steps: the header is read and DKIM bodies hashed on a worker; iprev, SPF
// and the DKIM key lookups run in parallel on the loop; signatures are
// verified on a worker; then DMARC, the analysis, DNS blocklists and the
// first-time-sender delay (a timer), and finally the durable copies.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <ctime>
#include <filesystem>
#include <map>

#include <set>

#include "core/stats.h"
#include "decide/incoming_dsn.h"
#include "inbound/delivery_rate.h"
#include "store/history.h"
#include "mailauth/dnsbl.h"
#include "message/auth_results.h"
#include "message/dsn.h"
#include "message/headers.h"
#include "message/submission.h"
#include "server/message_file.h"
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
	an->path = received.path;
	if (received.spool.fd) an->spool_fd.reset(fcntl(received.spool.fd.get(), F_DUPFD_CLOEXEC, 0));
	an->spf_args = tx.early_spf ? tx.early_spf->args : spf_args();
	// The header section parsed while DATA streamed in: a message without
	// a signature to hash needs no worker before its lookups (its size and
	// hash for the history are taken by the accounts' worker step).
	bool header_known = received.header.has_value();
	if (header_known) {
		take_header_facts(*an, *std::exchange(received.header, std::nullopt));
		if (!needs_body_hashes(*an)) {
			analysis_lookups(an);
			return;
		}
	}
	srv.workers().submit(
	    [an, header_known] { header_known ? hash_inbound_bodies(*an) : read_inbound_message(*an); },
	    suspend([an](Connection& c) { c.analysis_lookups(an); }));
	flush();
}

void Connection::analysis_lookups(std::shared_ptr<InboundAnalysis> an) {
	// RFC 5321 6.3: a message that went round more than 100 hops loops.
	if (an->received_headers > 100) {
		refuse_message(
		    smtp::error_reply(550, se::net_routing_loop6, "loop detected, more than 100 Received headers"));
		return;
	}
	// Every address unknown at RCPT: answered after the loop check, as the
	// model does; nothing the lookups find could change that answer, so
	// none is made.
	if (std::none_of(tx.recipients.begin(), tx.recipients.end(), [](const auto& r) { return r.local; })) {
		refuse_unknown_recipients();
		return;
	}
	an->key_answers.resize(an->pending.size());
	std::vector<size_t> key_lookups;
	for (size_t i = 0; i < an->pending.size(); ++i)
		if (!an->pending[i].early) key_lookups.push_back(i);
	// Every lookup decrements the count; the last one moves on. iprev and
	// SPF, started early (server/early_lookup.h), have usually answered
	// already: with no DKIM key to ask for, the analysis then goes on at
	// once. Each callback reaches the connection only through its handle.
	auto start_lookups = [this, an, key_lookups](std::function<void()> all_answered) {
		an->outstanding = 2 + static_cast<int>(key_lookups.size());
		auto join = [an, all_answered] {
			if (--an->outstanding == 0) all_answered();
		};
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
	};
	continue_when<>(start_lookups, [an](Connection& c) { c.analysis_verify(an); });
}

void Connection::analysis_verify(std::shared_ptr<InboundAnalysis> an) {
	auto after_dkim = [an](Connection& c) {
		if (an->from_domain.empty()) {  // no From: DMARC says none
			c.analysis_decide(an);
			return;
		}
		// The record asked for while DATA streamed in, when the stored
		// message's From names the same domain (server/early_lookup.h).
		std::shared_ptr<EarlyDmarc> early = c.tx.early_dmarc;
		if (early && early->domain == ascii_lower(an->from_domain)) {
			c.continue_when<mailauth::DmarcLookup>(
			    [early](auto answer) { early->lookup.get(std::move(answer)); },
			    [an](Connection& c2, const mailauth::DmarcLookup& lookup) {
				    an->dmarc = mailauth::dmarc_evaluate(lookup, an->from_domain, an->dkim,
				                                         an->spf.result, an->spf_domain());
				    c2.analysis_decide(an);
			    });
			return;
		}
		mailauth::dmarc_verify(c.srv.resolver(), c.cid, an->from_domain, an->dkim, an->spf.result,
		                       an->spf_domain(), c.suspend([an](Connection& c2, mailauth::DmarcResult r) {
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

void Connection::analysis_decide(std::shared_ptr<InboundAnalysis> an) {
	// Its four fields are built only when the line is written (every message).
	if (log::enabled(log::Level::debug))
		log::event(log::Level::debug, cid, "message analysis",
		           {{"iprev", mailauth::iprev_status_name(an->iprev.status)},
		            {"spf", mailauth::spf_status_name(an->spf.result)},
		            {"dkim_signatures", std::to_string(an->dkim.size())},
		            {"dmarc_reject", an->dmarc.use && an->dmarc.reject ? "yes" : "no"}});
	decide::SenderFacts sender = decide::gather_sender_facts(*an, store::ip_masks(remote_ip.to_string()), *hello,
	                                                         tx.mail_from);
	an->facts = std::move(sender.facts);
	an->identity = std::move(sender.identity);
	// Zones that fail RFC 5782 5's test addresses are skipped; the health
	// of each is known already but every few hours.
	continue_when<std::vector<std::string>>(
	    [this](auto healthy) {
		    srv.dnsbl_health().healthy_zones(cid, listener().smtp.dnsbl_zones, std::move(healthy));
	    },
	    [an](Connection& c, const std::vector<std::string>& zones) {
		    an->dnsbl_zones = zones;
		    c.analysis_dnsbl(an, 0);
	    });
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

namespace {

// One destination account's facts (reputation, rate counts, junk filter,
// subject-pass) and its verdict for its `recipients`; a worker step, it
// reads the history.
decide::AccountDecision decide_for_account(const InboundAnalysis& an, const store::ReadableFile& message,
                                           const config::Account& settings, size_t recipients, store::Env* env,
                                           bool report_kept, int64_t now) {
	decide::AccountDecision d;
	inbound::MessageFacts facts = an.facts;
	facts.report_kept = report_kept;
	facts.junk_filter = store::junk_probability(env, settings, message);
	facts.subject_pass = store::subject_pass_facts(env, settings, message, now);
	std::optional<std::array<inbound::NetworkHistoryCount, 3>> counts;
	if (env) {
		store::MessageHistory history(*env);
		try {
			// One read transaction for both lookups.
			auto lookups = history.reputation_and_rejects(settings.name, an.identity, now);
			facts.reputation = std::move(lookups.reputation);
			counts = history.delivery_counts(settings.name,
			                                 {an.identity.ip1, an.identity.ip2, an.identity.ip3}, now);
			d.rejects = std::move(lookups.rejects);
		} catch (const std::exception& e) {
			log::error("reading message history", {{"account", settings.name}, {"error", e.what()}});
			facts.reputation.error = true;
			d.history_error = true;
		}
	}
	d.verdict = inbound::analyze(facts);
	if (env) decide::settle_rejects(d, an.message_id, an.sha256, settings.keep_rejects, now);
	if (counts) {
		std::optional<inbound::RateRefusalAt> limited = inbound::first_rate_refusal(
		    *counts, an.size, settings.delivery_rate_limits, recipients, d.copies_counted());
		if (limited) {
			d.rate_refusal = decide::rate_limit_verdict(std::move(limited->text));
			d.rate_limited_from = limited->first;
		}
	}
	return d;
}

}  // namespace

// Slows down address guessers (delays_ms.unknown_recipients) without
// blocking the loop.
void Connection::refuse_unknown_recipients() {
	log::event(log::Level::info, cid, "deliver attempt to unknown user(s)");
	SmtpError e{550, std::string(se::addr_bad_dest_mailbox1), "no such user(s)"};
	double delay = static_cast<double>(cfg->delays_ms.unknown_recipients) / 1000.0;
	if (delay <= 0) {
		refuse_message(e);
		return;
	}
	abort_data_file(FileRemoval::on_worker);
	rset();
	stall_then_reply(delay, e);
}

// The rest of the facts and the verdict, per destination account, on a worker.
void Connection::analysis_accounts(std::shared_ptr<InboundAnalysis> an) {
	std::map<std::string, size_t> accounts;  // and their recipients
	std::set<std::string> report_accounts;
	for (const auto& r : tx.recipients) {
		if (!r.local) continue;
		++accounts[r.account];
		if (an->seen_recipients.count(r.display)) report_accounts.insert(r.account);
	}
	store::Env* env = srv.env();
	std::shared_ptr<const config::Config> config = cfg;
	// The junk filter and subject-pass read the message again: through a
	// duplicate of the session's descriptor, as the first read
	// (InboundAnalysis::spool_fd), closed by this job on the worker.
	auto message_fd = std::make_shared<UniqueFd>();
	bool reads_message = std::any_of(accounts.begin(), accounts.end(), [&](const auto& account) {
		const config::Account& a = cfg->accounts.at(account.first);
		return a.junk_filter || a.subject_pass_period_s > 0;
	});
	if (reads_message && received.spool.fd) message_fd->reset(fcntl(received.spool.fd.get(), F_DUPFD_CLOEXEC, 0));
	srv.workers().submit(
	    [an, accounts, report_accounts, env, config, message_fd] {
		    hash_inbound_message(*an);
		    int64_t now = std::time(nullptr);
		    store::ReadableFile message(an->path, message_fd->get());
		    for (const auto& [account, recipients] : accounts)
			    an->decisions[account] = decide_for_account(*an, message, config->accounts.at(account),
			                                                recipients, env,
			                                                report_accounts.count(account) > 0, now);
		    message_fd->reset();
	    },
	    suspend([an](Connection& c) { c.analysis_verdicts(an); }));
	flush();
}

void Connection::analysis_verdicts(std::shared_ptr<InboundAnalysis> an) {
	decide::VerdictSummary summary = decide::summarize_verdicts(an->decisions);
	for (const auto& account : summary.refused_accounts) {
		const inbound::Verdict& v = an->decisions.at(account).first_refusal();
		log::event(log::Level::info, cid, "incoming message rejected",
		           {{"account", account},
		            {"reason", v.reason},
		            {"code", std::to_string(v.code)},
		            {"zone", an->facts.dnsbl_listed_zone}});
	}
	// A refused sender (analysis or rate limit) is kept busy from now on.
	if (!summary.refused_accounts.empty()) flags.slow = true;
	// The model holds a sender nothing is known about for a while before
	// storing (a timer here, never a sleep); known senders never wait.
	double seconds = static_cast<double>(listener().smtp.first_time_sender_delay_ms) / 1000.0;
	if (summary.first_time_delay && seconds > 0) {
		stall_then(seconds, [an](Connection& c) { c.deliver_copies(an); });
		return;
	}
	deliver_copies(an);
}

// The copies of a port-25 message as decide::plan_inbound_copies lays them
// out (doc/behaviour.md §7, §9 "Rejects"), each with the reason header first.
void Connection::deliver_inbound_copies(std::shared_ptr<InboundAnalysis> an, const std::string& checks,
                                        message::ReceivedInfo ri) {
	decide::CopyPlanInput in;
	in.message_id = an->message_id;
	in.seen_recipients = an->seen_recipients;
	decide::InboundCopyPlan plan = decide::plan_inbound_copies(tx.recipients, an->decisions, in);
	if (plan.unknown_users)
		core::stats().count_delivery("unknownuser", "", plan.unknown_users);  // tern_smtpserver_delivery_total
	for (const auto& reason : plan.refusal_reasons)
		core::stats().count_delivery("reject", reason);  // per recipient, as the model does
	an->rejects_expired = std::move(plan.rejects_expired);
	an->rejects_superseded = std::move(plan.rejects_superseded);
	// One LMTP transaction, several recipients: no "for" (RFC 5321 4.4);
	// the LMTP server, the final delivery, adds Return-Path (4.4 too).
	std::string shared = received_field(ri);
	std::string return_path = return_path_field();
	auto copies = std::make_shared<std::vector<LocalCopy>>();
	std::vector<std::string> copy_rcpts;
	for (const auto& planned : plan.copies) {
		const Recipient& r = tx.recipients[planned.recipient];
		const config::Account& account = cfg->accounts.at(planned.account);
		std::string reason_header = "X-Tern-Reason: " + planned.reason + "\r\n";
		ri.for_rcpt = r.ascii_address();
		std::string received_for = checks + received_field(ri);
		std::string prefix = reason_header + return_path + received_for;
		if (planned.rejects_copy) {
			// The Rejects mailbox is always tern's own Maildir, also for an
			// account that takes its mail over LMTP.
			LocalCopy rejected;
			rejected.maildir.maildir = account.maildir;
			rejected.maildir.mailbox = account.rejects_mailbox;
			rejected.maildir.prefix = std::move(prefix);
			copies->push_back(std::move(rejected));
			copy_rcpts.push_back("");  // not a recipient's delivery
		} else {
			// To the account's Maildir or its LMTP server (server/local_delivery).
			copies->push_back(local_copy(
			    account, r.mailbox, r.display,
			    {std::move(prefix), reason_header + received_for, reason_header + checks + shared}));
			copy_rcpts.push_back(r.display);
		}
		copies->back().maildir.seen = planned.seen;
	}
	an->copy_notes = std::move(plan.copies);
	// The writer owns the file now.
	ReceivedMessage taken = std::exchange(received, {});
	std::string path = std::move(taken.path);
	core::SpoolFile body = std::move(taken.spool);
	if (copies->empty()) {
		remove_spool_file(body.fd, path, FileRemoval::on_worker);
		await_history_records(an, std::move(plan.errors));
		return;
	}
	CopiesRenamed on_renamed = history_beside_sync(an);
	// The reply waits for every copy (the Maildir batch, the LMTP servers)
	// and for the history records.
	deliver_local_copies(srv, path, std::move(body), std::move(*copies), local_envelope(),
	                     suspend([an, copy_rcpts = std::move(copy_rcpts), errors = std::move(plan.errors)](
					 Connection& c, CopiesDelivered delivered) mutable {
				     c.inbound_copies_written(an, copy_rcpts, delivered, std::move(errors));
			     }),
	                     std::move(on_renamed));
	flush();
}

// The outcome of each copy of a port-25 message: the failures join the
// errors, but for LMTP copies to retry from the queue (lmtp_copies_to_retry).
void Connection::inbound_copies_written(std::shared_ptr<InboundAnalysis> an, const std::vector<std::string>& copy_rcpts,
                                        const CopiesDelivered& delivered, std::vector<DeliverError> errors) {
	std::vector<size_t> to_retry = delivered.message ? lmtp_copies_to_retry(delivered.outcomes, copy_rcpts)
							 : std::vector<size_t>{};
	std::vector<OutboundRecipient> retries;
	std::vector<DeliverError> if_not_queued;
	for (const FailedCopy& f : failed_copies(srv, delivered.outcomes, copy_rcpts)) {
		const auto& note = an->copy_notes.at(f.index);
		if (note.rejects_copy) {
			log::error("storing a Rejects copy failed",
			           {{"account", note.account}, {"error", delivered.outcomes[f.index].storage_error}});
			continue;
		}
		const Recipient& r = tx.recipients.at(note.recipient);
		if (srv.outbound() && !r.postmaster &&
		    std::find(to_retry.begin(), to_retry.end(), f.index) != to_retry.end()) {
			// The queue's RCPT TO is the address as the transaction wrote it.
			retries.push_back({r.display, r.address.lookup_domain(),
			                   delivered.outcomes[f.index].lmtp_prefix, r.notify, r.orcpt});
			if_not_queued.push_back(f.error);
			continue;
		}
		// The LMTP server's answer counts as "lmtp", a storage failure by its reason.
		core::stats().count_delivery("delivererror", f.storage ? note.reason : "lmtp");
		errors.push_back(f.error);
	}
	if (retries.empty()) {
		close_on_worker(srv.workers(), delivered.message);
		await_history_records(an, std::move(errors));
		return;
	}
	queue_lmtp_retries(an, std::move(retries), delivered.message, std::move(errors), std::move(if_not_queued));
}

// Queues the LMTP copies to retry (inbound_copies_written), from a copy of
// the message made on a worker, before the client's 250: once it is
// queued the copy is the queue's to deliver, with retries; a copy that
// cannot be queued is that recipient's error, with a DSN, as before.
void Connection::queue_lmtp_retries(std::shared_ptr<InboundAnalysis> an, std::vector<OutboundRecipient> retries,
                                    std::shared_ptr<UniqueFd> message, std::vector<DeliverError> errors,
                                    std::vector<DeliverError> if_not_queued) {
	auto msg = std::make_shared<OutboundMessage>();
	msg->from = tx.mail_from ? address_text(*tx.mail_from) : std::string();
	msg->has_8bit = tx.body_8bit();
	msg->smtputf8 = tx.smtputf8;
	msg->message_id = an->message_id;
	msg->envid = tx.envid;
	msg->recipients = std::move(retries);
	msg->message_path = queue_transfer_path("lmtp-retry");
	auto error = std::make_shared<std::string>();
	// The session gone or timed out: nobody queues the copy.
	auto cont = suspend_owning_file(
	    msg->message_path,
	    [an, msg, error, errors = std::move(errors),
	     if_not_queued = std::move(if_not_queued)](Connection& c) mutable {
		    if (!error->empty())
			    return c.lmtp_retries_queued(an, std::move(errors), std::move(if_not_queued), *error);
		    std::vector<std::string> queued;
		    for (const OutboundRecipient& r : msg->recipients) {
			    log::event(log::Level::info, c.cid, "lmtp delivery queued for a retry", {{"rcpt", r.to}});
			    queued.push_back(r.to);
		    }
		    c.srv.outbound()->enqueue(
			std::move(*msg),
			c.suspend(
			    [an, queued = std::move(queued), errors = std::move(errors),
		             if_not_queued = std::move(if_not_queued)](Connection& c, const std::string& err) mutable {
				    // Neither failed nor delivered yet: no notice of either now.
				    if (err.empty()) an->retried_recipients = std::move(queued);
				    c.lmtp_retries_queued(an, std::move(errors), std::move(if_not_queued), err);
			    }));
	    });
	srv.workers().submit(
	    [message, msg, error] {
		    try {
			    UniqueFd out(
				::open(msg->message_path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
			    if (!out) throw store::file_error("creating", msg->message_path, errno);
			    TempFile copy(msg->message_path);  // removed unless whole
			    struct stat st {};
			    if (::fstat(message->get(), &st) != 0)
				    throw store::file_error("stat", "the received message", errno);
			    uint64_t size = static_cast<uint64_t>(st.st_size);
			    if (store::copy_file_bytes(message->get(), "the received message", out.get(),
			                               msg->message_path, 0, size) != size)
				    throw std::runtime_error("the received message ended early");
			    msg->message_size = static_cast<int64_t>(size);
			    copy.commit();  // the queue takes it over, or the loop removes it
		    } catch (const std::exception& e) {
			    *error = e.what();
		    }
		    message->reset();  // the last of the received file, closed here, off the loop
	    },
	    std::move(cont));
	flush();
}

// The retries are queued (`error` empty) or are their recipients' errors.
void Connection::lmtp_retries_queued(std::shared_ptr<InboundAnalysis> an, std::vector<DeliverError> errors,
                                     std::vector<DeliverError> if_not_queued, const std::string& error) {
	if (!error.empty()) {
		log::event(log::Level::error, cid, "queueing lmtp copies for a retry failed", {{"error", error}});
		for (DeliverError& e : if_not_queued) {
			core::stats().count_delivery("delivererror", "lmtp");
			errors.push_back(std::move(e));
		}
	}
	await_history_records(an, std::move(errors));
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
// Returns the unique names whose files it removed: a copy the user moved out
// of Rejects is not there, and its record is no Rejects copy's to expunge.
// A copy in a directory that cannot be listed stays, its record too, until
// a later message's clean-up removes it.
std::vector<std::string> remove_rejects_copies(const std::string& rejects_dir,
                                               const std::vector<std::string>& unique_names) {
	std::set<std::string> wanted(unique_names.begin(), unique_names.end());
	std::vector<std::string> removed;
	auto unlisted = store::for_each_message_file(rejects_dir, [&](const store::MessageFile& file) {
		std::string unique(file.unique_name);
		std::error_code ec;
		if (wanted.count(unique) && std::filesystem::remove(file.path, ec))
			removed.push_back(std::move(unique));
	});
	// A Rejects folder the user deleted holds no copies to remove: not
	// worth a line for every later message of the account.
	if (unlisted && unlisted->error != std::errc::no_such_file_or_directory)
		log::error("removing obsolete rejects copies", {{"error", unlisted->text()}});
	return removed;
}

// Where a copy landed, in its history record: the folder and the file's
// unique name (`maildir` is its account's Maildir root).
void place_history_record(store::HistoryRecord& h, const std::string& maildir, const std::string& final_path) {
	h.mailbox = folder_of(maildir, final_path);
	h.unique_name = std::string(
	    inbound::maildir_unique_name(std::filesystem::path(final_path).filename().string()));
}

}  // namespace

// The history records of a message's Maildir copies are added by a worker
// while the disk thread syncs the copies' directories (doc/design.md
// "Message history"): a renamed copy is in its folder whether or not the
// sync then fails, so its record need not wait for the sync. The disk
// thread submits the job once the copies are renamed; its answer and the
// copies' come back to the loop in either order, and the reply waits for
// both.
struct HistoryBesideSync {
	// Per copy, its record but for where it lands, and its account's Maildir.
	std::vector<store::HistoryRecord> drafts;
	std::vector<std::string> maildirs;
	store::Env* env = nullptr;
	core::WorkerPool* workers = nullptr;
	bool submitted = false;  // by the disk thread, before the copies' answer
	// Set on the loop when the worker's job is done: the records it added
	// (0 when the write failed, logged there).
	EarlyLookup<size_t> recorded;
};

// The Maildir writer's hook that starts the history records; none without
// a message history.
CopiesRenamed Connection::history_beside_sync(std::shared_ptr<InboundAnalysis> an) {
	if (!srv.env()) return nullptr;
	auto state = std::make_shared<HistoryBesideSync>();
	for (const auto& note : an->copy_notes) {
		store::HistoryRecord h;
		h.account = note.account;
		h.remote_ip = remote_ip.to_string();
		h.identity = an->identity;
		h.size = an->size;
		h.message_id = an->message_id;
		h.sha256 = an->sha256;
		h.rejected = note.rejects_copy;
		h.reason = note.reason;
		state->drafts.push_back(std::move(h));
		state->maildirs.push_back(cfg->accounts.at(note.account).maildir);
	}
	state->env = srv.env();
	state->workers = &srv.workers();
	an->history_beside_sync = state;
	// On the disk thread. Only Maildir copies come here: a copy an LMTP
	// server took has no file of ours, the scanner cannot follow it, so it
	// gets no history record.
	return [state](const std::vector<RenamedCopy>& renamed) {
		std::vector<store::HistoryRecord> records;
		int64_t now = std::time(nullptr);
		for (const RenamedCopy& r : renamed) {
			if (r.index >= state->drafts.size()) continue;
			records.push_back(state->drafts[r.index]);
			records.back().received = now;
			place_history_record(records.back(), state->maildirs[r.index], r.final_path);
		}
		state->submitted = true;
		auto added = std::make_shared<size_t>(0);
		state->workers->submit(
		    [env = state->env, records = std::move(records), added]() mutable {
			    try {
				    store::MessageHistory(*env).add(records);
				    *added = records.size();
			    } catch (const std::exception& e) {
				    // The copies are stored; only what the history learns is lost.
				    log::error("recording message history", {{"error", e.what()}});
			    }
		    },
		    [state, added] { state->recorded.set(*added); });
	};
}

// The reply waits for the history records added beside the directory sync,
// and for the Rejects copies this message makes obsolete to be removed (on
// a worker, once the message is stored).
void Connection::await_history_records(std::shared_ptr<InboundAnalysis> an, std::vector<DeliverError> errors) {
	std::shared_ptr<HistoryBesideSync> beside = an->history_beside_sync;
	if (!beside || !beside->submitted) {
		remove_obsolete_rejects(an, std::move(errors));
		return;
	}
	// Records already in go on in this frame; later ones resume through the handle.
	continue_when<size_t>([beside](auto answer) { beside->recorded.get(std::move(answer)); },
	                      [an, errors = std::move(errors)](Connection& c, size_t) mutable {
				      c.remove_obsolete_rejects(an, std::move(errors));
			      });
}

void Connection::remove_obsolete_rejects(std::shared_ptr<InboundAnalysis> an, std::vector<DeliverError> errors) {
	store::Env* env = srv.env();
	// Only where the message is stored now (doc/behaviour.md §9 "Rejects").
	decide::RejectsRemovals removals = decide::rejects_to_remove(an->rejects_expired, an->rejects_superseded,
	                                                             tx.recipients, errors);
	struct InRejects {
		std::string dir;                 // the account's Rejects mailbox
		std::vector<std::string> names;  // the unique names to remove there
	};
	std::map<std::string, InRejects> work;  // by account
	for (auto& [account, names] : removals) {
		const auto& a = cfg->accounts.at(account);
		if (!names.empty())
			work[account] = {store::mailbox_dir(a.maildir, a.rejects_mailbox), std::move(names)};
	}
	if (!env || work.empty()) {
		delivery_done(std::move(errors), an);
		return;
	}
	srv.workers().submit(
	    [env, work = std::move(work)]() {
		    try {
			    store::MessageHistory history(*env);
			    for (const auto& [account, in_rejects] : work) {
				    history.mark_expunged(account,
				                          remove_rejects_copies(in_rejects.dir, in_rejects.names));
			    }
		    } catch (const std::exception& e) {
			    log::error("recording message history", {{"error", e.what()}});
		    }
	    },
	    suspend(
		[an, errors = std::move(errors)](Connection& c) mutable { c.delivery_done(std::move(errors), an); }));
	flush();
}

std::string Connection::count_inbound_deliveries(const InboundAnalysis& an,
                                                 const std::vector<DeliverError>& errors) const {
	std::vector<std::string> reasons = decide::delivered_reasons(tx.recipients, an.decisions, errors);
	for (const auto& reason : reasons)
		core::stats().count_delivery("delivered", reason);  // tern_smtpserver_delivery_total
	return decide::join_reasons(reasons);
}

// The DSN for recipients that failed while others were delivered (RFC 3464,
// doc/behaviour.md §13), and for delivered ones whose NOTIFY asked for
// SUCCESS (RFC 3461 4.1: Action "delivered"), to the MAIL FROM address with
// the null reverse path. None without a queue or without such recipients.
std::optional<Connection::Notice> Connection::incoming_dsn(const InboundAnalysis& an,
                                                           const std::vector<DeliverError>& all_errors) const {
	if (!srv.outbound()) return std::nullopt;
	decide::IncomingDsnFacts facts;
	facts.recipients = tx.recipients;
	facts.errors = all_errors;
	facts.queued = an.retried_recipients;
	facts.mail_from = address_text(*tx.mail_from);
	facts.smtputf8 = tx.smtputf8;
	facts.envid = tx.envid;
	facts.hostname = global_hostname();
	// An address literal's address goes bare after "dns;", as the model
	// writes it (doc/behaviour.md §13); the bracketed literal of the
	// connection's address follows in the comment.
	facts.hello = hello->ip ? hello->ip->to_string() : hello->domain.ascii;
	facts.remote_ip_literal = remote_ip.to_literal();
	facts.fields = an.fields;
	facts.now = std::time(nullptr);
	std::optional<message::DsnMessage> composed = decide::incoming_dsn(facts);
	if (!composed) return std::nullopt;
	// The envelope recipient in its ASCII form: the queue asks DNS about
	// its domain, and the notice's plain variant goes without SMTPUTF8.
	Notice notice{std::move(*composed), {}};
	notice.to.to = tx.mail_from->to_ascii_string();
	notice.to.domain = tx.mail_from->lookup_domain();
	return notice;
}

std::string Connection::queue_transfer_path(std::string_view kind) const {
	static uint64_t transfers = 0;  // the loop's only
	return cfg->data_dir + "/tmp/data-" + std::string(kind) + "-" + std::to_string(cid) + "-" +
	    std::to_string(++transfers);
}

// Signs, writes and queues a DSN (to the MAIL FROM address, with the null
// reverse path): disk work for a worker. Its fate does not change the reply,
// but the reply waits for it (`queued`), so that a notice the 250 promised
// is in the queue, durable, before the 250 goes out (as the model does).
void Connection::queue_dsn(message::DsnMessage dsn, OutboundRecipient to, std::function<void()> queued) {
	OutboundQueue* queue = srv.outbound();  // there is one: incoming_dsn gives no notice without it
	std::time_t now = dsn.date;
	std::string path = queue_transfer_path("dsn");
	auto error = std::make_shared<std::string>();
	auto msg = std::make_shared<OutboundMessage>();
	msg->from = "";
	msg->message_id = dsn.message_id;
	msg->recipients.push_back(std::move(to));
	msg->message_path = path;
	msg->smtputf8 = false;
	std::shared_ptr<const config::Config> config = cfg;
	srv.workers().submit(
	    [dsn, path, msg, error, config, now] {
		    try {
			    // RFC 6376: signed as its From address (postmaster@…) would
			    // be, when that domain has keys; the UTF-8 form too.
			    std::string text = signed_dsn_text(*config, dsn, false, now);
			    if (dsn.smtputf8) msg->dsn_utf8 = signed_dsn_text(*config, dsn, true, now);
			    store::write_new_file(path, text);
			    msg->message_size = static_cast<int64_t>(text.size());
		    } catch (const std::exception& e) {
			    *error = e.what();
			    ::unlink(path.c_str());  // a part written before the failure
		    }
	    },
	    [queue, msg, error, queued = std::move(queued)]() mutable {
		    if (!error->empty()) {
			    log::error("composing dsn for incoming delivery, no dsn sent", {{"error", *error}});
			    core::stats().count_error("queuedsn");  // tern_smtpserver_errors_total
			    queued();
			    return;
		    }
		    // The queue outlives every connection; `queued` is the session's
		    // handle-checked continuation.
		    queue->enqueue(std::move(*msg), [queued = std::move(queued)](const std::string& err) {
			    if (!err.empty()) {
				    log::error("queueing dsn for incoming delivery, no dsn sent", {{"error", err}});
				    core::stats().count_error("queuedsn");  // tern_smtpserver_errors_total
			    }
			    queued();
		    });
	    });
}

}  // namespace tern::server
