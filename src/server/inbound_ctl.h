// `ternctl junk …`, `ternctl dmarc reports` and `ternctl tlsrpt reports`
// (man/ternctl.8) on an open environment: ternd runs them on a worker for a
// request on its control socket, ternctl itself when no ternd runs, so the
// output is the same either way. The message for `junk` never crosses the
// socket: ternctl reduces it to its words first (a message may be large,
// its words are bounded by the junk filter's text limit).
#pragma once
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "store/db.h"
#include "util/control_protocol.h"

namespace tern::server {

// args after "junk":
//   check ACCOUNT WORDS                      probability and telling words
//   train ACCOUNT junk|ham add|remove WORDS  (un)trains one message
// WORDS: junk_words_arg(). Exit status: check 0 not junk, 1 junk; train 0;
// 1 for an unknown account or a store error; 2 for a usage error.
control::Answer run_junk_command(store::Env& env, const config::Config& cfg, const std::vector<std::string>& args);

// args after "dmarc" or "tlsrpt": reports [DOMAIN]. One line per kept
// report (store::report_line); "no reports" on stderr and exit 1 when none.
control::Answer run_reports_command(store::Env& env, bool tls, const std::vector<std::string>& args);

// A message's words as one request argument (LF-separated) and back.
std::string junk_words_arg(const std::set<std::string>& words);
std::set<std::string> junk_words_from_arg(std::string_view arg);

}  // namespace tern::server
