#include "server/local_delivery.h"

#include <fcntl.h>
#include <unistd.h>

#include <map>
#include <memory>

#include "net/lmtp_client.h"
#include "server/message_file.h"
#include "server/server.h"
#include "server/session.h"
#include "smtp/replies.h"
#include "util/log.h"
#include "util/storage.h"

namespace tern::server {

LocalCopy local_copy(const config::Account& account, const std::string& mailbox, const std::string& rcpt,
                     CopyPrefixes prefixes) {
	LocalCopy c;
	c.maildir.maildir = account.maildir;
	c.maildir.mailbox = mailbox;
	c.maildir.prefix = std::move(prefixes.maildir);
	c.lmtp = account.lmtp;
	c.lmtp_rcpt = account.lmtp_recipient.empty() ? rcpt : account.lmtp_recipient;
	c.lmtp_prefix = std::move(prefixes.lmtp);
	c.shared_prefix = std::move(prefixes.shared);
	return c;
}

std::vector<FailedCopy> failed_copies(Server& srv, const std::vector<CopyOutcome>& outcomes,
                                      const std::vector<std::string>& copy_rcpts) {
	std::vector<FailedCopy> failed;
	std::string storage_error;
	for (size_t i = 0; i < outcomes.size() && i < copy_rcpts.size(); ++i) {
		const CopyOutcome& o = outcomes[i];
		if (o.delivered) continue;
		FailedCopy f;
		f.index = i;
		f.storage = !o.storage_error.empty();
		if (f.storage) {
			if (!copy_rcpts[i].empty()) storage_error = o.storage_error;
			smtp::SmtpError e = smtp::replies::storage_failure(is_storage_full_error(o.storage_error),
			                                                   "error processing");
			f.error = {copy_rcpts[i], e.code, e.secode, false, e.text};
		} else {
			// The LMTP server's answer for this recipient, or 451 4.3.0 when
			// it could not be reached in time.
			f.error = {copy_rcpts[i], o.code, o.secode, o.permanent, o.text};
		}
		failed.push_back(std::move(f));
	}
	if (!storage_error.empty()) {
		log::error("maildir delivery failed", {{"error", storage_error}});
		srv.disk_space().write_failed(storage_error);
	}
	return failed;
}

void close_on_worker(core::WorkerPool& pool, const std::shared_ptr<UniqueFd>& message) {
	if (!message || !*message) return;
	auto fd = std::make_shared<UniqueFd>(std::move(*message));
	pool.submit([fd] { fd->reset(); }, [] {});
}

std::vector<size_t> lmtp_copies_to_retry(const std::vector<CopyOutcome>& outcomes,
                                         const std::vector<std::string>& copy_rcpts) {
	// A copy with no recipient (a Rejects copy) counts for neither side.
	auto a_recipients = [&](size_t i) { return i < copy_rcpts.size() && !copy_rcpts[i].empty(); };
	bool one_landed = false;
	for (size_t i = 0; i < outcomes.size(); ++i)
		one_landed = one_landed || (a_recipients(i) && outcomes[i].delivered);
	std::vector<size_t> retry;
	if (!one_landed) return retry;
	for (size_t i = 0; i < outcomes.size(); ++i) {
		const CopyOutcome& o = outcomes[i];
		if (a_recipients(i) && o.lmtp && !o.delivered && !o.permanent) retry.push_back(i);
	}
	return retry;
}

namespace {

CopyOutcome outcome_of(const smtp::LmtpRecipientResult& r) {
	CopyOutcome o;
	o.delivered = r.status == smtp::LmtpRecipientResult::Status::delivered;
	o.code = r.code;
	o.secode = r.enhanced.size() > 2 ? r.enhanced.substr(2) : std::string();
	o.permanent = r.status == smtp::LmtpRecipientResult::Status::permanent;
	// The details of our own setup (the LMTP server's address, a timeout)
	// are in the log; the SMTP client learns only that it may try again,
	// as for a Maildir write error.
	o.text = r.local ? "error processing" : r.text;
	return o;
}

// The Maildir writer's hook, telling `renamed` the copies by their index
// among all of the message's copies (`maildir_index`: the writer's k-th).
core::MaildirWriter::Renamed by_copy_index(CopiesRenamed renamed, std::vector<size_t> maildir_index) {
	if (!renamed) return nullptr;
	return [renamed = std::move(renamed),
	        maildir_index = std::move(maildir_index)](const std::vector<store::MaildirCopy>& written) {
		std::vector<RenamedCopy> out;
		for (size_t k = 0; k < maildir_index.size() && k < written.size(); ++k)
			out.push_back(RenamedCopy{maildir_index[k], written[k].final_path});
		renamed(out);
	};
}

// The outcomes of a message's copies as they come in; `done` once all are.
struct CopiesJoin {
	CopiesDelivered result;
	size_t outstanding = 0;
	std::function<void(CopiesDelivered)> done;
	void finish_one() {
		if (--outstanding == 0) done(std::move(result));
	}
};

// One LMTP transaction for the copies at `indexes`, all for one server.
void start_lmtp_copies(Server& srv, const std::shared_ptr<CopiesJoin>& join, const std::vector<LocalCopy>& copies,
                       const std::vector<size_t>& indexes, const std::string& body_path,
                       const LocalEnvelope& envelope) {
	net::LmtpRequest req;
	req.target = copies[indexes[0]].lmtp;
	req.transaction.lhlo_name = envelope.hostname;
	req.transaction.mail_from = envelope.mail_from;
	req.transaction.smtputf8 = envelope.smtputf8;
	req.transaction.body_8bit = envelope.body_8bit;
	for (size_t i : indexes) req.transaction.recipients.push_back(copies[i].lmtp_rcpt);
	req.prefix = indexes.size() == 1 ? copies[indexes[0]].lmtp_prefix : copies[indexes[0]].shared_prefix;
	req.body_path = body_path;
	req.timeout_s = envelope.lmtp_timeout_s;
	req.log_id = envelope.log_id;
	std::vector<std::string> prefixes;
	for (size_t i : indexes) prefixes.push_back(copies[i].lmtp_prefix);
	net::lmtp_deliver(
	    srv.loop(), srv.workers(), std::move(req),
	    [join, indexes, prefixes = std::move(prefixes)](std::vector<smtp::LmtpRecipientResult> results) {
		    for (size_t k = 0; k < indexes.size() && k < results.size(); ++k) {
			    CopyOutcome& o = join->result.outcomes[indexes[k]];
			    o = outcome_of(results[k]);
			    o.lmtp = true;
			    o.lmtp_prefix = prefixes[k];
		    }
		    join->finish_one();
	    });
}

}  // namespace

void deliver_local_copies(Server& srv, const std::string& body_path, core::SpoolFile body,
                          std::vector<LocalCopy> copies, const LocalEnvelope& envelope,
                          std::function<void(CopiesDelivered)> done, CopiesRenamed renamed) {
	auto join = std::make_shared<CopiesJoin>();
	join->result.outcomes.resize(copies.size());
	join->done = std::move(done);

	// One LMTP transaction per server, its recipients in copy order.
	std::map<std::string, std::vector<size_t>> by_server;
	std::vector<store::MaildirCopy> maildir_copies;
	std::vector<size_t> maildir_index;
	for (size_t i = 0; i < copies.size(); ++i) {
		if (copies[i].lmtp.empty()) {
			maildir_copies.push_back(std::move(copies[i].maildir));
			maildir_index.push_back(i);
		} else {
			by_server[copies[i].lmtp.text()].push_back(i);
		}
	}
	join->outstanding = by_server.size() + (maildir_copies.empty() ? 0 : 1);
	if (join->outstanding == 0) {
		body.fd.reset();  // closed before the unlink, so no block is freed here
		remove_file_on_worker(srv.workers(), body_path, envelope.log_id);
		join->outstanding = 1;
		join->finish_one();
		return;
	}
	// The LMTP clients open the file first: the Maildir writer may remove
	// it before they have read it. They read it to its end, later, so it
	// must not be emptied for reuse: the writer gets it by path only. The
	// caller keeps a descriptor too, for copies to retry from the queue.
	if (!by_server.empty()) {
		// Opened for reading (the spool's own descriptor writes only). The
		// file is not emptied for reuse, so the close of this open cannot
		// make ext4 write it back (doc/design.md "Message path").
		int kept = ::open(body_path.c_str(), O_RDONLY | O_CLOEXEC);
		if (kept >= 0) join->result.message = std::make_shared<UniqueFd>(kept);
		body.fd.reset();
	}
	for (const auto& [server, indexes] : by_server)
		start_lmtp_copies(srv, join, copies, indexes, body_path, envelope);
	if (maildir_copies.empty()) {
		remove_file_on_worker(srv.workers(), body_path, envelope.log_id);  // the clients hold it open
		return;
	}
	srv.maildir_writer().deliver_noting_copies(
	    body_path, std::move(body), std::move(maildir_copies), envelope.hostname,
	    [join, maildir_index](const std::string& error, std::vector<store::MaildirCopy>& written) {
		    for (size_t k = 0; k < maildir_index.size(); ++k) {
			    CopyOutcome& o = join->result.outcomes[maildir_index[k]];
			    o.delivered = error.empty();
			    o.storage_error = error;
			    if (error.empty() && k < written.size()) o.final_path = written[k].final_path;
		    }
		    join->finish_one();
	    },
	    by_copy_index(std::move(renamed), maildir_index));
}

}  // namespace tern::server
