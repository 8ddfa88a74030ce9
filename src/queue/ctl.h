// `ternctl queue …` (doc/behaviour.md "ternctl", "Details"): list, show, kick and
// drop queue records, through ternd's control socket while it runs.
#pragma once
#include <functional>
#include <ostream>
#include <string>
#include <vector>

#include "config/config.h"
#include "store/db.h"

namespace tern::queue {

// What a queue command did: the exit status (0 success, 1 "no such
// message" or a store error, 2 usage error) and whether it changed queue
// records (then the running daemon re-reads its schedule).
struct QueueCommandResult {
	int status = 0;
	bool changed = false;
};

// args: the words after "queue", e.g. {"list"}, {"show", "12"},
// {"kick"}, {"kick", "12"}, {"drop", "12"}, {"rebuild"}, run on an open
// environment (ternd runs it on a worker for a request on its control
// socket; ternctl when no ternd runs). Writes what ternctl prints to out and
// err. "rebuild" restores missing records from the queue files
// (rebuild_queue), leaving alone the files of `in_progress` enqueues (the
// running daemon's own; none for ternctl).
QueueCommandResult run_queue_command(store::Env& env, const config::Config& config,
                                     const std::vector<std::string>& args, std::ostream& out, std::ostream& err,
                                     const std::function<bool(const std::string& base)>& in_progress = {});

// The same with an store::Env of config.data_dir opened for the call (for
// a process that holds no other Env of that directory). After a change it
// sends SIGUSR2 to the pid in config.pid_file, when that file exists, so a
// daemon re-reads its schedule (Queue::resync). Returns the exit status.
int run_queue_command(const config::Config& config, const std::vector<std::string>& args, std::ostream& out,
                      std::ostream& err);

// The `queue list` output: a header line, then one line per record, read
// record by record (Env::queue_scan).
std::string queue_list_text(store::Env& env);

// What mailq (sendmail.tern -bp) prints, through ternd: the layout of
// sendmail's mailq, which Postfix's keeps and monitoring scripts parse
// (doc/behaviour.md "sendmail(1)"). A message is the run of records, in
// id order, that share its queue file (the links "<base>.<n>" of one
// file, a recipient each) and sender; it is listed under its
// first record's id with its size, arrival time (local time) and sender
// (MAILER-DAEMON for the null sender), then each recipient, after its last
// error in parentheses when that differs from the one before. The summary
// is "-- K Kbytes in N Requests." or "Mail queue is empty".
class MailqListing {
public:
	void add(const store::QueueRecord& record);  // in id order
	std::string finish();

private:
	void start_message(const store::QueueRecord& record);

	std::string text_;
	std::string message_base_, from_, reason_;  // message_base_: its queue files' shared base
	bool in_message_ = false;
	uint64_t messages_ = 0, bytes_ = 0;
};

// MailqListing over the whole queue, read record by record.
std::string mailq_text(store::Env& env);

}  // namespace tern::queue
