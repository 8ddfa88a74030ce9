#include "core/maildir_writer.h"

#include <unistd.h>

#include <map>
#include <memory>
#include <set>

namespace tern::core {

void MaildirWriter::deliver(std::string body_path, std::vector<store::MaildirCopy> copies, std::string hostname,
                            Done done) {
	deliver_noting_copies(std::move(body_path), std::move(copies), std::move(hostname),
	                      [done = std::move(done)](const std::string& error, std::vector<store::MaildirCopy>&) { done(error); });
}

void MaildirWriter::deliver_noting_copies(std::string body_path, std::vector<store::MaildirCopy> copies,
                                          std::string hostname, DoneWithCopies done) {
	waiting_.push_back(Item{std::move(body_path), std::move(copies), std::move(hostname), std::move(done), {}});
	if (!running_) run_batch();
}

void MaildirWriter::run_batch() {
	if (running_ || waiting_.empty()) return;
	running_ = true;
	auto batch = std::make_shared<std::vector<Item>>();
	size_t n = std::min(waiting_.size(), max_batch);
	batch->assign(std::make_move_iterator(waiting_.begin()), std::make_move_iterator(waiting_.begin() + n));
	waiting_.erase(waiting_.begin(), waiting_.begin() + n);
	in_flight_ = n;
	pool_.submit(
	    [batch] {
		    // One MaildirBatch per host name (it names the files); their
		    // directories are synced together at the end.
		    std::map<std::string, std::unique_ptr<store::MaildirBatch>> by_host;
		    std::vector<std::pair<store::MaildirBatch*, size_t>> index;
		    for (Item& item : *batch) {
			    auto& b = by_host[item.hostname];
			    if (!b) b = std::make_unique<store::MaildirBatch>(item.hostname);
			    index.emplace_back(b.get(), b->stage(item.body_path, item.copies));
		    }
		    std::set<std::string> dirs;
		    std::map<store::MaildirBatch*, std::vector<std::string>> errors;
		    for (auto& [host, b] : by_host) errors[b.get()] = b->commit_files(dirs);
		    std::string dir_error;
		    for (const std::string& dir : dirs) {
			    try {
				    store::fsync_dir(dir);
			    } catch (const std::exception& e) {
				    // Without the directory on disk no message of this batch is
				    // known to be durable: none gets its 250.
				    dir_error = e.what();
			    }
		    }
		    for (size_t i = 0; i < batch->size(); ++i) {
			    Item& item = (*batch)[i];
			    item.error = errors[index[i].first][index[i].second];
			    if (item.error.empty()) item.error = dir_error;
			    if (item.error.empty()) item.copies = index[i].first->delivered(index[i].second);
			    ::unlink(item.body_path.c_str());
		    }
	    },
	    [this, batch] {
		    in_flight_ = 0;
		    // Deliveries started by these callbacks wait for the next batch.
		    for (Item& item : *batch) item.done(item.error, item.copies);
		    running_ = false;
		    run_batch();
	    });
}

}  // namespace tern::core
