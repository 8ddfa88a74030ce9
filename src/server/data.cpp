// DATA: streaming the message to a temp file through the decoder, then the
// local delivery decision and the durable Maildir write on the worker pool.
// The 250 is sent only from the worker's completion, after every copy and
// its directory are fsync'd (doc/behaviour.md "Durability and safety promises").
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>

#include "core/stats.h"
#include "message/auth_results.h"
#include "mailauth/dmarc.h"
#include "message/headers.h"
#include "message/submission.h"
#include "server/inbound.h"
#include "server/localserve.h"
#include "server/message_file.h"
#include "server/milter.h"
#include "server/outbound.h"
#include "server/submit.h"
#include "server/server.h"
#include "server/session.h"
#include "server/suspend.h"
#include "smtp/replies.h"
#include "store/maildir.h"
#include "util/log.h"
#include "util/storage.h"
#include "util/strings.h"

namespace tern::server {

using smtp::error_reply;
using smtp::SmtpError;
namespace se = smtp::se;
using smtp::replies::storage_failure;

// How much of a header section the session keeps to find the From domain
// early; a longer one (rare: many trace fields) is looked up after the
// analysis parsed the stored message.
constexpr size_t early_header_max_bytes = 64 * 1024;

void Connection::remove_spool_file(UniqueFd& fd, std::string path, FileRemoval how) {
	fd.reset();  // closed before the unlink, so the unlink frees no blocks
	if (path.empty()) return;
	if (how == FileRemoval::now)
		unlink(path.c_str());
	else
		remove_file_on_worker(srv.workers(), std::move(path), cid);
}

void Connection::abort_data_file(FileRemoval how) {
	ReceivedMessage gone = std::exchange(received, {});
	remove_spool_file(gone.spool.fd, std::move(gone.path), how);
	if (!data) return;
	remove_spool_file(data->fd, std::move(data->path), how);
	data.reset();
}

// RFC 5321 4.1.1.4
Outcome Connection::cmd_data(std::string_view args) {
	if (smtp::Status s = data_commands_allowed(); !s) return s.error();
	// RFC 3030 3: DATA and BDAT do not mix in one transaction; the client
	// has to RSET.
	if (data && data->chunked)
		return error_reply(503, se::proto_bad_cmd_or_seq1, "DATA not allowed after BDAT, send RSET");
	if (smtp::Status s = smtp::parse_no_args(args, parse_mode()); !s) return s.error();
	// Below the disk reserve no new message data is taken: the space left
	// is for the database and queue records of messages already accepted.
	if (srv.disk_space().low()) return smtp::replies::below_disk_reserve();

	smtp::Result<std::unique_ptr<DataInProgress>> opened = open_data_file(smtp::Framing::dot_stuffed);
	if (!opened) return opened.error();
	data = std::move(*opened);
	// The final reply comes after the end dot (finish_data).
	return Outcome::reply(smtp::replies::send_data()).then(SessionState::data);
}

// The temp file a message is decoded into, for DATA and for BDAT chunks.
smtp::Result<std::unique_ptr<DataInProgress>> Connection::open_data_file(smtp::Framing framing) {
	auto d = std::make_unique<DataInProgress>(listener().bare_newlines, framing);
	// A reused spool file where one is free (core/spool_pool.h).
	d->fd = srv.spool().acquire(d->path);
	if (!d->fd) {
		int e = errno;
		d->path.clear();
		log::event(log::Level::error, cid, "creating temporary file for message",
		           {{"error", std::strerror(e)}});
		return storage_failure(srv.disk_space().write_failed(e),
		                       "creating temporary file for message: " + std::string(std::strerror(e)));
	}
	d->started = ev_now(srv.loop());
	// Port 25 looks the From domain's DMARC record up while the rest of the
	// message streams in (server/early_lookup.h).
	if (!submission() && localserve().checks_over_dns()) d->header_scan.emplace(early_header_max_bytes);
	return d;
}

void Connection::feed_data() {
	DataInProgress& d = *data;
	size_t used = d.decoder.feed(inbuf, d.decoded);
	// doc/behaviour.md "Logs, signals, metrics": message data is logged only at tracedata.
	if (log::enabled(log::Level::tracedata))
		log::event(log::Level::tracedata, cid, "RC: " + std::string(inbuf, 0, used));
	inbuf.erase(0, used);
	int64_t max = listener().max_message_size;
	if (static_cast<int64_t>(d.decoder.size()) > max) {
		// doc/behaviour.md D12 / RFC 1870 6.3: refuse at once and
		// close, rather than read the rest of an oversized message.
		log::event(log::Level::info, cid, "message too large", {{"max", std::to_string(max)}});
		apply(smtp::replies::message_too_large(max).then_close());
		std::string().swap(inbuf);
		return;
	}
	write_decoded();
	if (d.decoder.done()) apply(finish_data());
}

// The header section as far as it came (all of it, or a message that ended
// inside it): its From domain's DMARC lookup starts now. The section is
// parsed once, here; the analysis takes its fields when no milter changed
// the file, and uses the answer when its From names the same domain.
// Anything else here (no From, a From of several addresses) starts nothing.
void Connection::start_early_dmarc() {
	std::optional<std::string> header = data->header_scan->take();
	data->header_scan.reset();
	if (!header) return;  // over early_header_max_bytes: a worker reads it from the file
	data->header = message::parse_header_section(*header);
	if (!data->header) return;
	message::FromResult from = message::parse_first_from(*data->header);
	if (from.ok) look_up_dmarc_early(from.address.domain.ascii);
}

// A domain's DMARC record, asked for before the analysis needs it
// (server/early_lookup.h). The lookup started for the MAIL FROM domain
// stays when the From header names the same domain, as most messages'
// does; another domain replaces it.
void Connection::look_up_dmarc_early(const std::string& domain) {
	std::string lower = ascii_lower(domain);
	if (lower.empty() || (tx.early_dmarc && tx.early_dmarc->domain == lower)) return;
	auto early = std::make_shared<EarlyDmarc>();
	early->domain = std::move(lower);
	tx.early_dmarc = early;
	mailauth::dmarc_lookup(srv.resolver(), cid, early->domain,
	                       [early](mailauth::DmarcLookup lookup) { early->lookup.set(std::move(lookup)); });
}

// Appends the decoded bytes to the temp file. Writes land in the page cache;
// the fsync is the worker's job.
void Connection::write_decoded() {
	DataInProgress& d = *data;
	if (d.header_scan && d.header_scan->add(d.decoded)) start_early_dmarc();
	size_t off = 0;
	while (off < d.decoded.size() && d.fd) {
		ssize_t n = write(d.fd.get(), d.decoded.data() + off, d.decoded.size() - off);
		if (n < 0 && errno == EINTR) continue;
		if (n <= 0) {
			d.write_errno = n < 0 ? errno : EIO;
			log::event(log::Level::error, cid, "writing message to temp file",
			           {{"error", std::strerror(d.write_errno)}});
			srv.disk_space().write_failed(d.write_errno);
			d.fd.reset();  // write_errno remembers the failure; keep reading to the end dot
			break;
		}
		off += static_cast<size_t>(n);
	}
	d.decoded.clear();
}

Outcome Connection::finish_data() {
	bool write_failed = data->write_failed();
	// The descriptor stays open: local delivery hands it to the Maildir
	// writer (deliver_local), which then need not open the file again.
	std::string().swap(data->decoded);
	if (smtp::Status s = message_acceptable(write_failed); !s) return message_refusal(s.error());
	if (data->header_scan) start_early_dmarc();  // the message ended inside its header
	// Assume failure; a delivery compensates (the model's counting).
	++tx_bad;
	if (milter_check_message([](Connection& c) { c.submission() ? c.submit_message() : c.deliver_local(); }))
		return Outcome::suspended();
	// Delivery and submission apply their reply themselves, at once or
	// from their completions.
	if (submission())
		submit_message();
	else
		deliver_local();
	if (state == SessionState::data) enter_state(SessionState::command);
	return Outcome::delegated();
}

// The checks of a message at its end dot, before anything is delivered.
smtp::Status Connection::message_acceptable(bool write_failed) const {
	if (write_failed) return storage_failure(is_storage_full(data->write_errno), "error copying data to file");
	if (data->decoder.saw_bare_newline() && listener().bare_newlines == smtp::BareNewlines::reject) {
		// doc/behaviour.md D8.
		return error_reply(500, se::proto_syntax2,
		                   "invalid bare carriage return or newline, may be smtp smuggling");
	}
	if (submission() && !data->decoder.has_header_separator()) {
		// RFC 6409 8
		return error_reply(554, se::msg_content_other0, "message requires both header and body section");
	}
	return {};
}

Outcome Connection::message_refusal(const SmtpError& e) {
	abort_data_file(FileRemoval::on_worker);
	rset();
	if (state == SessionState::data) return Outcome(e).then(SessionState::command);
	return e;
}

void Connection::refuse_message(const SmtpError& e) { apply(message_refusal(e)); }

void Connection::deliver_local() {
	// Owned by the connection until the copies are written. A file
	// rewritten by milters is another inode than the descriptor's, and
	// its header section may not be the one that streamed in.
	received.path = std::exchange(data->path, std::string());
	received.header_separator = data->decoder.has_header_separator();
	tx.data_8bit = data->decoder.saw_8bit();
	if (data->rewritten_size < 0) {
		received.spool = core::SpoolFile{std::move(data->fd), static_cast<uint64_t>(data->stored_size())};
		received.header = std::move(data->header);
	}
	data.reset();
	if (cfg->localserve) {
		// Localserve makes no DNS lookups at all.
		deliver_localserve_copies();
		return;
	}
	analyze_inbound();
}

void Connection::deliver_copies(std::shared_ptr<InboundAnalysis> an) {
	// doc/behaviour.md §7: Return-Path, Authentication-Results,
	// Received-SPF, then Received, in that order on each copy.
	message::ReceivedInfo ri = received_info(std::time(nullptr));
	std::string checks = decide::authentication_results(*an, global_hostname(), remote_ip, tx.smtputf8);
	checks += an->spf.header();
	std::string name = an->iprev.name.empty() && !an->iprev.names.empty() ? an->iprev.names[0] : an->iprev.name;
	ri.from_comment = received_from_comment(ri.from, name);
	// Port 25: each account's verdict decides its copies (server/deliver.cpp).
	deliver_inbound_copies(an, checks, ri);
}

// Localserve takes every recipient for its one account and looks nothing
// up; the special localparts fail their recipient on purpose.
void Connection::deliver_localserve_copies() {
	// Nothing was looked up, so no method has a result: RFC 8601 2.2 "none"
	// (the model's header for a message with no checks).
	std::string checks = message::build_authentication_results(global_hostname(), "", {});
	message::ReceivedInfo ri = received_info(std::time(nullptr));
	auto copies = std::make_shared<std::vector<LocalCopy>>();
	std::vector<std::string> copy_rcpts;
	std::vector<DeliverError> errors;
	// For one LMTP transaction with several recipients (Received without
	// "for"); the LMTP server, the final delivery, adds Return-Path.
	std::string shared_prefix = checks + received_field(ri);
	for (const auto& r : tx.recipients) {
		LocalserveFailure f = localserve_failure(r.address.localpart);
		if (f.timeout) {
			log::event(log::Level::info, cid, "timing out due to special localpart");
			// Nothing of this message is delivered: its file goes now, not
			// after the hour (a later message would take its place).
			abort_data_file(FileRemoval::on_worker);
			rset();
			stall_localserve_timeout("delivery", se::other0);
			return;
		}
		if (f.code != 0) {
			core::stats().count_delivery("delivererror", "localserve");  // tern_smtpserver_delivery_total
			errors.push_back({r.display, f.code, std::string(se::other0), false, f.failure_text()});
			continue;
		}
		ri.for_rcpt = r.ascii_address();
		std::string received_for = checks + received_field(ri);
		copies->push_back(local_copy(cfg->accounts.at(r.account), r.mailbox, r.display,
		                             {return_path_field() + received_for, received_for, shared_prefix}));
		copy_rcpts.push_back(r.display);
	}
	// The writer owns the file now.
	write_copies(std::move(copies), std::move(copy_rcpts), std::move(errors), std::exchange(received, {}), nullptr);
}

// The Received field that closes a stored copy's added fields, with the
// empty line the data lacked when it had no header section.
std::string Connection::received_field(const message::ReceivedInfo& ri) const {
	std::string field = message::build_received(ri);
	if (!received.header_separator) field += "\r\n";
	return field;
}

// RFC 5321 4.4: the reverse-path as the sender gave it, its domain in the
// ASCII form whatever the transaction, as the model writes it
// (doc/behaviour.md §7).
std::string Connection::return_path_field() const {
	return message::build_return_path(tx.mail_from ? tx.mail_from->to_ascii_string() : std::string());
}

// The comment after the EHLO name in Received's "from" (doc/behaviour.md
// §7): the verified reverse name when it differs from that name as written
// (`from`), the address literal, and under SMTPUTF8 the ASCII form of an
// internationalized EHLO name (RFC 6531 3.7.3).
std::string Connection::received_from_comment(const std::string& from, const std::string& reverse_name) const {
	std::string comment = "(";
	if (!reverse_name.empty() && (hello->ip || reverse_name != from)) comment += reverse_name + " ";
	comment += remote_ip.to_literal() + ")";
	if (tx.smtputf8 && !hello->ip && hello->domain.unicode != hello->domain.ascii)
		comment += " (" + hello->domain.ascii + ")";
	return comment;
}

message::ReceivedInfo Connection::received_info(std::time_t now) const {
	message::ReceivedInfo ri;
	if (submission()) {
		// The submitting client's address stays private (doc/behaviour.md §7).
		ri.from = global_hostname();
	} else {
		if (hello->ip)
			ri.from = hello->ip->to_literal();
		else
			ri.from = tx.smtputf8 ? hello->domain.unicode : hello->domain.ascii;
		ri.from_comment = received_from_comment(ri.from, "");
	}
	ri.by = global_hostname();  // ASCII only (doc/behaviour.md D22)
	ri.by_comment = "(" + local_ip.to_literal() + ")";
	ri.with = message::received_with(ehlo, tx.smtputf8, tls, !username.empty());
	ri.id = received_id();
	if (auto* t = tls_session()) ri.tls_comment = t->received_comment();
	ri.when = now;
	ri.tz_offset_s = message::local_utc_offset(now);
	return ri;
}

// Submission (doc/behaviour.md §8): the header checks, limits and DKIM
// signing run on a worker; then every copy is queued durably (or, in
// localserve, delivered to the account) before the 250.
void Connection::submit_message() {
	std::time_t now = std::time(nullptr);
	SubmissionInput in;
	in.cfg = cfg;
	in.account = username;
	in.message_path = data->path;
	in.mail_from = tx.mail_from ? address_text(*tx.mail_from) : std::string();
	for (const auto& r : tx.recipients) in.recipients.push_back(r.display);
	in.hostname = global_hostname();
	in.smtputf8 = tx.smtputf8;
	in.now = now;
	in.env = srv.env();
	bool has_8bit = data->decoder.saw_8bit();
	int64_t size = data->stored_size();
	std::string path = data->path;
	data->path.clear();  // the continuation owns the file now
	data.reset();
	auto result = std::make_shared<SubmissionResult>();
	srv.workers().submit([in, result] { *result = prepare_submission(in); },
	                     suspend_owning_file(path, [result, path, now, has_8bit, size](Connection& c) {
				     c.submission_prepared(*result, path, now, has_8bit, size);
			     }));
	flush();
}

void Connection::submission_prepared(const SubmissionResult& r, const std::string& path, std::time_t now, bool has_8bit,
                                     int64_t size) {
	if (r.error) {
		core::stats().count_submission(
		    core::submission_result_label(r.refusal));  // tern_smtpserver_submission_total
		remove_file_on_worker(srv.workers(), path, cid);
		refuse_message(*r.error);
		return;
	}
	message::ReceivedInfo ri = received_info(now);
	if (cfg->localserve) {
		submit_localserve(r, path, ri);
		return;
	}
	OutboundQueue* queue = srv.outbound();
	if (!queue) {
		remove_file_on_worker(srv.workers(), path, cid);
		refuse_message(error_reply(451, se::sys_other0, "error delivering message: no queue"));
		return;
	}
	OutboundMessage msg;
	msg.sender_account = username;
	msg.from = tx.mail_from ? address_text(*tx.mail_from) : std::string();
	msg.has_8bit = has_8bit;
	msg.smtputf8 = tx.smtputf8;
	msg.message_id = r.message_id;
	msg.message_path = path;
	msg.message_size = size;
	msg.record_outgoing = true;
	msg.dsn_ret = smtp::ret_to_string(tx.dsn_ret);
	msg.envid = tx.envid;
	msg.requiretls = tx.requiretls;
	for (auto& copy : decide::submission_copies(tx.recipients, ri, r.common_prefix))
		msg.recipients.push_back({std::move(copy.to), std::move(copy.domain), std::move(copy.prefix),
		                          copy.notify, std::move(copy.orcpt)});
	queue->enqueue(std::move(msg), suspend([](Connection& c, const std::string& error) -> Outcome {
			       size_t recipients = c.tx.recipients.size();
			       core::stats().count_submission(error.empty() ? "ok" : "queueerror",
		                                              recipients);  // per recipient, as the model does
			       c.rset();
			       if (!error.empty()) {
				       log::error("queueing submitted message", {{"error", error}});
				       return c.message_refusal(storage_failure(c.srv.disk_space().write_failed(error),
			                                                        "error delivering message: " + error));
			       }
			       ++c.tx_good;
			       --c.tx_bad;
			       log::event(log::Level::info, c.cid, "message submitted",
		                          {{"recipients", std::to_string(recipients)}});
			       return Outcome::reply(250, "2.0", "it is done");
		       }));
	flush();
}

// Localserve: the special localparts fail the whole transaction before
// anything is stored (doc/behaviour.md D23), then every copy goes to the
// one account.
void Connection::submit_localserve(const SubmissionResult& r, const std::string& path,
                                   const message::ReceivedInfo& ri) {
	for (const auto& rc : tx.recipients) {
		LocalserveFailure f = localserve_failure(rc.address.localpart);
		if (f.timeout) {
			remove_file_on_worker(srv.workers(), path, cid);
			rset();
			stall_localserve_timeout("submission", se::sys_other0);
			return;
		}
		if (f.code != 0) {
			remove_file_on_worker(srv.workers(), path, cid);
			refuse_message(error_reply(f.code, se::other0, f.failure_text()));
			return;
		}
	}
	auto copies = std::make_shared<std::vector<LocalCopy>>();
	std::vector<std::string> rcpts;
	const config::Account& acc = cfg->accounts.begin()->second;
	for (auto& copy : decide::submission_copies(tx.recipients, ri, r.common_prefix)) {
		// Submitted copies carry no Return-Path of their own.
		copies->push_back(local_copy(acc, "INBOX", copy.to, {copy.prefix, copy.prefix, {}}));
		rcpts.push_back(copy.to);
	}
	write_copies(std::move(copies), std::move(rcpts), {}, ReceivedMessage{path, {}, {}});
}

// What local delivery (an LMTP server) needs of this transaction.
LocalEnvelope Connection::local_envelope() const {
	LocalEnvelope envelope;
	envelope.hostname = hostname();
	envelope.mail_from = tx.mail_from ? address_text(*tx.mail_from) : std::string();
	envelope.smtputf8 = tx.smtputf8;
	envelope.body_8bit = tx.body_8bit();
	envelope.lmtp_timeout_s = static_cast<double>(cfg->delivery.lmtp_timeout_s);
	envelope.log_id = cid;
	return envelope;
}

void Connection::write_copies(std::shared_ptr<std::vector<LocalCopy>> copies, std::vector<std::string> copy_rcpts,
                              std::vector<DeliverError> errors, ReceivedMessage message,
                              std::shared_ptr<InboundAnalysis> an) {
	// The spool descriptor is set for the message of deliver_local; none for a submission.
	const std::string& path = message.path;
	core::SpoolFile& body = message.spool;
	if (copies->empty()) {
		remove_spool_file(body.fd, path, FileRemoval::on_worker);
		delivery_done(std::move(errors), an);
		return;
	}
	// Each copy goes to its Maildir (the group-commit writer puts this
	// message in the next batch) or to its account's LMTP server; the 250
	// waits for all of them. The completion reaches the connection through
	// its handle (the copies are delivered whether or not the client is
	// still there).
	deliver_local_copies(srv, path, std::move(body), std::move(*copies), local_envelope(),
	                     suspend([copy_rcpts = std::move(copy_rcpts), errors = std::move(errors),
	                              an](Connection& c, CopiesDelivered delivered) mutable {
				     close_on_worker(c.srv.workers(), delivered.message);
				     for (const FailedCopy& f : failed_copies(c.srv, delivered.outcomes, copy_rcpts)) {
					     if (c.submission())
						     core::stats().count_submission("localserveerror");
					     else
						     core::stats().count_delivery(
							 "delivererror", f.storage ? inbound::no_bad_signals : "lmtp");
					     errors.push_back(f.error);
				     }
				     c.delivery_done(std::move(errors), an);
			     }));
	flush();
}

void Connection::delivery_done(std::vector<DeliverError> errors, std::shared_ptr<InboundAnalysis> an) {
	size_t total = tx.recipients.size();
	// Metrics per delivered recipient: localserve submissions and port 25 deliveries end here.
	std::string reasons = an ? count_inbound_deliveries(*an, errors) : std::string();
	if (submission()) {
		core::stats().count_submission("ok", total - errors.size());
	} else if (!an) {
		// Port 25 without the analysis (localserve): delivered as harmless.
		reasons = inbound::no_bad_signals;
		core::stats().count_delivery("delivered", reasons, total - errors.size());
	}
	if (errors.size() == total) {
		refuse_message(decide::all_failed_reply(errors));
		return;
	}
	if (!errors.empty()) {
		log::event(log::Level::info, cid, "partial delivery failure",
		           {{"failed", std::to_string(errors.size())}});
		// doc/behaviour.md §13: one DSN for the failed recipients, to the
		// sender, since the 250 below covers the others.
	}
	// Also without failures: NOTIFY=SUCCESS asks for a "delivered" notice.
	// It is the server's to deliver once the 250 is out, so the 250 waits
	// until it is in the queue (its failure is logged, the reply stays).
	const size_t delivered = total - errors.size();
	std::optional<Notice> notice;
	if (an && tx.mail_from && !cfg->localserve) notice = incoming_dsn(*an, errors);
	if (notice) {
		queue_dsn(std::move(notice->dsn), std::move(notice->to),
		          suspend([delivered, reasons](Connection& c) { c.message_delivered(delivered, reasons); }));
		flush();
		return;
	}
	message_delivered(delivered, reasons);
}

void Connection::message_delivered(size_t delivered, const std::string& reasons) {
	rset();
	++tx_good;
	--tx_bad;
	// The reasons the delivery metric counted (man/ternd.8 METRICS); none
	// for submitted mail, which is no delivery decision.
	if (!reasons.empty())
		log::event(log::Level::info, cid, "message delivered",
		           {{"recipients", std::to_string(delivered)}, {"reason", reasons}});
	else
		log::event(log::Level::info, cid, "message delivered", {{"recipients", std::to_string(delivered)}});
	apply(Outcome::reply(250, "2.0", "it is done"));
}

}  // namespace tern::server
