#include "core/maildir_writer.h"

#include <fcntl.h>
#include <unistd.h>

#include <map>

#include "util/log.h"

namespace tern::core {

void MaildirWriter::deliver(std::string body_path, std::vector<store::MaildirCopy> copies, std::string hostname,
                            Done done) {
	deliver_noting_copies(
	    std::move(body_path), SpoolFile{}, std::move(copies), std::move(hostname),
	    [done = std::move(done)](const std::string& error, std::vector<store::MaildirCopy>&) { done(error); });
}

void MaildirWriter::deliver_noting_copies(std::string body_path, SpoolFile body, std::vector<store::MaildirCopy> copies,
                                          std::string hostname, DoneWithCopies done) {
	++pending_;
	auto msg = std::make_shared<Message>();
	msg->body_path = std::move(body_path);
	// Without a pool to give it back to, the file is removed like any other.
	if (spool_) msg->body = std::move(body);
	msg->copies = std::move(copies);
	msg->hostname = std::move(hostname);
	msg->done = std::move(done);
	disk_.submit([msg] { write_copies(*msg); },
	             [this, msg] {
			     // Only now, with the job finished, may another message write it.
			     if (msg->body_reusable) spool_->release(msg->body_path, std::move(msg->body.fd));
			     written(msg);
		     });
}

// On a disk thread: tmp/ file, fsync, rename into new/ (or cur/); the
// directory fsyncs are shared with other messages in start_dir_sync.
void MaildirWriter::write_copies(Message& msg) {
	store::MaildirBatch batch(msg.hostname, true);
	if (msg.body.fd)
		batch.stage(msg.body.fd.get(), msg.body.size, msg.body_path, msg.copies);
	else
		batch.stage(msg.body_path, msg.copies);
	msg.error = batch.commit_files(msg.dirs_to_sync)[0];
	if (msg.error.empty()) msg.copies = batch.delivered(0);  // with final_path
	msg.prepared_folders = batch.prepared_folders();
	// The copies hold the bytes now (or failed): a spool file is emptied
	// here, off the loop, for the next message; opened with O_APPEND, it
	// needs no seek back to offset 0.
	msg.body_reusable = msg.body.fd && ::ftruncate(msg.body.fd.get(), 0) == 0;
	if (!msg.body_reusable) {
		msg.body.fd.reset();
		::unlink(msg.body_path.c_str());
	}
}

void MaildirWriter::written(const std::shared_ptr<Message>& msg) {
	if (!msg->error.empty()) {
		answer(*msg);
		return;
	}
	awaiting_dir_sync_.push_back(msg);
	start_dir_sync();
}

void MaildirWriter::start_dir_sync() {
	if (dir_syncs_in_flight_ >= max_dir_syncs_in_flight || awaiting_dir_sync_.empty()) return;
	++dir_syncs_in_flight_;
	auto batch = std::make_shared<std::vector<std::shared_ptr<Message>>>(std::move(awaiting_dir_sync_));
	awaiting_dir_sync_.clear();
	// Every directory once for the whole batch; its renames all returned
	// before this fsync starts, so it covers them.
	auto failures = std::make_shared<std::map<std::string, std::string>>();
	std::set<std::string> dirs;
	for (const auto& m : *batch) dirs.insert(m->dirs_to_sync.begin(), m->dirs_to_sync.end());
	const size_t directories = dirs.size();
	disk_.submit(
	    [dirs = std::move(dirs), failures] {
		    for (const std::string& dir : dirs) {
			    try {
				    store::fsync_dir(dir);
			    } catch (const std::exception& e) {
				    (*failures)[dir] = e.what();
			    }
		    }
	    },
	    [this, batch, failures, directories] {
		    // How well the group commit groups: messages per directory fsync.
		    if (log::enabled(log::Level::debug))
			    log::debug("maildir directories synced",
			               {{"messages", std::to_string(batch->size())},
			                {"directories", std::to_string(directories)},
			                {"in_flight", std::to_string(dir_syncs_in_flight_)}});
		    --dir_syncs_in_flight_;
		    for (const auto& m : *batch) {
			    // A renamed file whose directory is not known to be on disk
			    // is not durable: no 250 for that message.
			    for (const std::string& dir : m->dirs_to_sync)
				    if (auto f = failures->find(dir); f != failures->end() && m->error.empty())
					    m->error = f->second;
			    // Its folders are on disk now: later messages skip preparing them.
			    if (m->error.empty() && !m->prepared_folders.empty())
				    store::remember_durable_folders(m->prepared_folders);
			    answer(*m);
		    }
		    start_dir_sync();
	    },
	    WorkerPool::Priority::first);
}

void MaildirWriter::answer(Message& msg) {
	--pending_;
	// Deliveries started by this callback go into later batches.
	DoneWithCopies done = std::move(msg.done);
	done(msg.error, msg.copies);
}

}  // namespace tern::core
