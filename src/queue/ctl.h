// `ternctl queue …` (SPEC.md "ternctl", "Details"): list, show, kick and
// drop queue records, through ternd's control socket while it runs.
#pragma once
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
// {"kick"}, {"kick", "12"}, {"drop", "12"}, run on an open environment
// (ternd runs it on a worker for a request on its control socket; ternctl
// when no ternd runs). Writes what ternctl prints to out and err.
QueueCommandResult run_queue_command(store::Env& env, const config::Config& config,
                                     const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

// The same with an store::Env of config.data_dir opened for the call (for
// a process that holds no other Env of that directory). After a change it
// sends SIGUSR2 to the pid in config.pid_file, when that file exists, so a
// daemon re-reads its schedule (Queue::resync). Returns the exit status.
int run_queue_command(const config::Config& config, const std::vector<std::string>& args, std::ostream& out,
                      std::ostream& err);

}  // namespace tern::queue
