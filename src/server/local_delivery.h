// Local delivery behind one call: each accepted copy goes into its
// account's Maildir (the group-commit writer) or, for accounts with
// delivery.lmtp, to their LMTP server (RFC 2033), and the caller gets one
// outcome per copy. Both paths keep the durability rule: a copy counts as
// delivered only once it is on disk (Maildir, fsync'd) or the LMTP server
// answered 250 after the final dot for that recipient.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "config/config.h"
#include "core/spool_pool.h"
#include "core/worker_pool.h"
#include "decide/recipient.h"
#include "store/maildir.h"
#include "util/unique_fd.h"

namespace tern::server {

class Server;

// One accepted copy of a message for a local account.
struct LocalCopy {
	store::MaildirCopy maildir;  // Maildir, mailbox and the header fields to prepend
	config::LmtpTarget lmtp;     // empty: the Maildir
	std::string lmtp_rcpt;       // RCPT TO for LMTP
	// The fields an LMTP transaction for this recipient alone gets: no
	// Return-Path, which the LMTP server adds as the final delivery (RFC
	// 5321 4.4).
	std::string lmtp_prefix;
	// The prefix when one LMTP transaction carries several recipients: the
	// same fields without the Received "for" clause, which names one
	// recipient (RFC 5321 4.4).
	std::string shared_prefix;
};

// The header fields a copy gets, by where it goes.
struct CopyPrefixes {
	std::string maildir;  // into the Maildir, Return-Path among them
	std::string lmtp;     // to an LMTP server for this recipient alone
	std::string shared;   // to an LMTP server with other recipients
};

// The copy for `account`, to `mailbox`, received for `rcpt`.
LocalCopy local_copy(const config::Account& account, const std::string& mailbox, const std::string& rcpt,
                     CopyPrefixes prefixes);

struct CopyOutcome {
	bool delivered = false;
	std::string final_path;     // a Maildir copy: the file it landed in
	std::string storage_error;  // writing the Maildir failed (disk trouble)
	// Otherwise, the LMTP failure: the server's reply or 451 4.3.0.
	int code = 0;
	std::string secode;  // "x.y" of the enhanced code
	bool permanent = false;
	std::string text;
	// An LMTP copy, and its fields as its transaction sent them for this
	// recipient alone: what the queue sends when it retries the copy.
	bool lmtp = false;
	std::string lmtp_prefix;
};

// What deliver_local_copies reports: an outcome per copy and, when LMTP
// copies were among them, a descriptor of the message (after the copies'
// fields) kept open, since its file leaves the spool meanwhile: a copy an
// LMTP server failed for the moment can still be queued from it.
struct CopiesDelivered {
	std::vector<CopyOutcome> outcomes;
	std::shared_ptr<UniqueFd> message;
};

// Closes `message` (CopiesDelivered::message) on a worker: the file is
// unlinked by then, and its last close frees its blocks, work the loop
// leaves to others.
void close_on_worker(core::WorkerPool& pool, const std::shared_ptr<UniqueFd>& message);

// The copies of a port-25 message to hand to the queue for a later try
// (doc/behaviour.md §9): a recipient's LMTP copy that failed for the moment
// (a 4xx, the server down, late or closing) while another recipient's copy
// landed, so that the client gets 250 and would not try again; the queue
// retries it as it retries the LMTP copies of submitted mail. When no copy
// landed, the client's 4xx makes it try again itself.
std::vector<size_t> lmtp_copies_to_retry(const std::vector<CopyOutcome>& outcomes,
                                         const std::vector<std::string>& copy_rcpts);

// A copy that did not land, as its recipient's error: a storage failure
// (disk trouble) is 452 4.3.1 or 451 4.3.0 "error processing", an LMTP
// failure the server's answer.
struct FailedCopy {
	size_t index = 0;            // in the outcomes
	bool storage = false;        // the Maildir write failed
	decide::DeliverError error;  // for the recipient in copy_rcpts[index]
};

// The failed copies among `outcomes`. A copy whose entry in `copy_rcpts` is
// empty is no recipient's delivery (a Rejects copy): reported, but its
// storage failure is for the caller to log. Logs the other storage failures
// once and tells the disk-space watch about a full disk.
std::vector<FailedCopy> failed_copies(Server& srv, const std::vector<CopyOutcome>& outcomes,
                                      const std::vector<std::string>& copy_rcpts);

// What LMTP needs of the envelope.
struct LocalEnvelope {
	std::string hostname;   // Maildir file names and LHLO
	std::string mail_from;  // without <>
	bool smtputf8 = false;
	bool body_8bit = false;
	double lmtp_timeout_s = 120;  // delivery.lmtp_timeout_s of the session's config
	uint64_t log_id = 0;
};

// A Maildir copy renamed into its folder: its index in `copies`, its file.
struct RenamedCopy {
	size_t index = 0;
	std::string final_path;
};
// Runs on a disk thread once the Maildir copies are renamed, before their
// directories are synced (core::MaildirWriter::Renamed).
using CopiesRenamed = std::function<void(const std::vector<RenamedCopy>& renamed)>;

// Delivers `copies` of the message in `body_path` (removed, or with `body`
// open given back to the spool pool, when every copy has its outcome);
// `done` runs later on the loop, outcomes in the order of `copies`; `renamed`
// (optional) on a disk thread before that.
void deliver_local_copies(Server& srv, const std::string& body_path, core::SpoolFile body,
                          std::vector<LocalCopy> copies, const LocalEnvelope& envelope,
                          std::function<void(CopiesDelivered)> done, CopiesRenamed renamed = nullptr);

}  // namespace tern::server
