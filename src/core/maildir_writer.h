// Group commit for Maildir deliveries (doc/design.md "Worker pool"): the
// messages of every session that finish DATA while a batch is on disk wait
// and go together in the next batch, which shares one journal commit and
// one fsync per directory. One batch is in flight at a time; a session's
// 250 waits for its batch.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "core/worker_pool.h"
#include "store/maildir.h"

namespace tern::core {

class MaildirWriter {
public:
	// `done` runs on the loop thread: error "" when every copy is durable.
	using Done = std::function<void(const std::string& error)>;

	explicit MaildirWriter(WorkerPool& pool) : pool_(pool) {}
	MaildirWriter(const MaildirWriter&) = delete;
	MaildirWriter& operator=(const MaildirWriter&) = delete;

	// Writes prefix + body for each copy; the body file is removed once its
	// batch is done (delivered or not).
	void deliver(std::string body_path, std::vector<store::MaildirCopy> copies, std::string hostname, Done done);
	// The same, for a caller that records where each copy landed (the
	// message history): `done` also gets the copies with final_path set.
	using DoneWithCopies = std::function<void(const std::string& error, std::vector<store::MaildirCopy>& copies)>;
	void deliver_noting_copies(std::string body_path, std::vector<store::MaildirCopy> copies, std::string hostname,
	                           DoneWithCopies done);

	// Messages waiting for or inside the current batch.
	size_t pending() const { return waiting_.size() + in_flight_; }

	// The largest batch; more wait for the next one.
	static constexpr size_t max_batch = 256;

private:
	struct Item {
		std::string body_path;
		std::vector<store::MaildirCopy> copies;
		std::string hostname;
		DoneWithCopies done;
		std::string error;
	};
	void run_batch();

	WorkerPool& pool_;
	std::vector<Item> waiting_;
	size_t in_flight_ = 0;
	bool running_ = false;
};

}  // namespace tern::core
