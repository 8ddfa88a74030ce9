#include "core/maildir_writer.h"

#include <fcntl.h>
#include <unistd.h>

namespace tern::core {

void MaildirWriter::deliver(std::string body_path, std::vector<store::MaildirCopy> copies, std::string hostname,
                            Done done) {
	deliver_noting_copies(
	    std::move(body_path), SpoolFile{}, std::move(copies), std::move(hostname),
	    [done = std::move(done)](const std::string& error, std::vector<store::MaildirCopy>&) { done(error); });
}

void MaildirWriter::deliver_noting_copies(std::string body_path, SpoolFile body, std::vector<store::MaildirCopy> copies,
                                          std::string hostname, DoneWithCopies done, Renamed renamed) {
	++pending_;
	auto msg = std::make_shared<Message>();
	msg->body_path = std::move(body_path);
	// Without a pool to give it back to, the file is removed like any other.
	if (spool_) msg->body = std::move(body);
	msg->copies = std::move(copies);
	msg->hostname = std::move(hostname);
	msg->done = std::move(done);
	msg->renamed = std::move(renamed);
	disk_.submit([this, msg] { write_and_sync(*msg); },
	             [this, msg] {
			     // Only now, with the job finished, may another message write it.
			     if (msg->body_reusable) spool_->release(msg->body_path, std::move(msg->body.fd));
			     // Its folders are on disk now: later messages skip preparing them.
			     if (msg->error.empty() && !msg->prepared_folders.empty())
				     store::remember_durable_folders(msg->prepared_folders);
			     answer(*msg);
		     });
}

// On a disk thread: the copies, then the directories their renames touched,
// synced together with those of the other messages finishing now. A message
// counts as durable only when every step returned: an exception on the way
// (the worker pool would log it and still answer) fails it, so that no 250
// can follow a copy whose directory was never synced.
void MaildirWriter::write_and_sync(Message& msg) {
	try {
		write_copies(msg);
		if (msg.error.empty()) {
			if (msg.renamed) {
				msg.renamed(msg.copies);
				msg.renamed = nullptr;  // its captures go here, on this thread
			}
			// A renamed file whose directory is not known to be on disk is
			// not durable: no 250 for that message.
			DirSyncGroup::Failures failures = dir_sync_.sync(msg.dirs_to_sync);
			if (!failures.empty()) msg.error = failures.begin()->second;
		}
	} catch (const std::exception& e) {
		msg.error = std::string("internal error while storing: ") + e.what();
	} catch (...) {
		msg.error = "internal error while storing";
	}
	// A message that gets no 250 leaves none of its copies behind: the
	// client sends it again (doc/design.md "Message path").
	if (!msg.error.empty()) store::withdraw_copies(msg.copies);
	msg.renamed = nullptr;
	release_body(msg);
}

// On a disk thread: tmp/ file, fsync, rename into new/ (or cur/).
void MaildirWriter::write_copies(Message& msg) {
	store::MaildirBatch batch(msg.hostname, true);
	if (msg.body.fd)
		batch.stage(msg.body.fd.get(), msg.body.size, msg.body_path, msg.copies);
	else
		batch.stage(msg.body_path, msg.copies);
	msg.error = batch.commit_files(msg.dirs_to_sync)[0];
	if (msg.error.empty()) msg.copies = batch.delivered(0);  // with final_path
	msg.prepared_folders = batch.prepared_folders();
}

// The copies hold the bytes now (or failed): a spool file is emptied here,
// off the loop, for the next message; opened with O_APPEND, it needs no seek
// back to offset 0. Anything else is removed.
void MaildirWriter::release_body(Message& msg) {
	msg.body_reusable = msg.body.fd && ::ftruncate(msg.body.fd.get(), 0) == 0;
	if (!msg.body_reusable) {
		msg.body.fd.reset();
		::unlink(msg.body_path.c_str());
	}
}

void MaildirWriter::answer(Message& msg) {
	--pending_;
	// Deliveries started by this callback go into later batches.
	DoneWithCopies done = std::move(msg.done);
	done(msg.error, msg.copies);
}

}  // namespace tern::core
