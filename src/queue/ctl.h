// `ternctl queue …` (SPEC.md "ternctl", "Details"): list, show, kick and
// drop queue records, working on the database while ternd runs.
#pragma once
#include <ostream>
#include <string>
#include <vector>

#include "config/config.h"
#include "store/db.h"

namespace tern::queue {

// args: the words after "queue", e.g. {"list"}, {"show", "12"},
// {"kick"}, {"kick", "12"}, {"drop", "12"}. Opens the store::Env of
// config.data_dir itself (call it when the process holds no other Env of
// that directory). After a kick or drop that changed something, sends
// SIGUSR2 to the pid in config.pid_file, when that file exists, so a
// running ternd re-reads its schedule (Queue::resync).
// Returns the exit status: 0 success, 1 "no such message" (or a store
// error), 2 usage error.
int run_queue_command(const config::Config& config, const std::vector<std::string>& args, std::ostream& out,
                      std::ostream& err);

// The `queue list` output: a header line, then one line per record.
// Also what mailq (sendmail.tern -bp) prints, through ternd.
std::string queue_list_text(const std::vector<store::QueueRecord>& records);

}  // namespace tern::queue
