// Runs a real ternd process for one black-box test: its own temp dir, free
// loopback ports, a generated config, its own loopback DNS server.
#pragma once
#include <memory>
#include <string>
#include <sys/types.h>
#include <vector>

#include "helpers/dns_server.h"

namespace tern::testing {

struct DaemonOptions {
	bool smtp = true;  // listener "test": smtp on a free port
	bool submission = false;
	bool submissions = false;
	// A JSON merge patch (RFC 7386) applied to the default config, e.g.
	// R"({"listeners": {"test": {"max_message_size": 10000}}})". A null
	// value removes a key.
	std::string config_patch;
	// When false the daemon is not started by the constructor (call start()).
	bool start = true;
};

// The result of running a command to completion.
struct RunResult {
	int exit_code = -1;  // -1 when killed by a signal or timed out
	bool timed_out = false;
	std::string output;  // stdout and stderr, interleaved
};

class TernDaemon {
public:
	explicit TernDaemon(DaemonOptions options = {});
	~TernDaemon();
	TernDaemon(const TernDaemon&) = delete;
	TernDaemon& operator=(const TernDaemon&) = delete;

	// Writes the config (if not yet written) and spawns `ternd -f -c FILE`;
	// waits ≤ 10 s until every enabled port listens. Returns false (and
	// fills error()) when the daemon exits or does not listen in time.
	bool start();
	// SIGTERM, wait ≤ 15 s for the exit; then SIGKILL. Returns the exit
	// status (0 = clean), or -1 when it had to be killed or died by a signal.
	int stop();
	void kill9();          // SIGKILL and reap
	bool signal(int sig);  // kill(pid, sig)
	// Waits ≤ timeout_ms for the process to exit by itself; exit status as
	// stop() returns it, or -2 when still running.
	int wait_exit(int timeout_ms);
	bool running();

	// The default config with the options' patch, then extra_patch, applied.
	std::string config_json(const std::string& extra_patch = "") const;
	// (Re)writes the config file: default + options patch + extra_patch.
	void write_config(const std::string& extra_patch = "");
	// Writes text to the config file as is (for broken configs).
	void write_config_text(const std::string& text);

	pid_t pid() const { return pid_; }
	int smtp_port() const { return smtp_port_; }
	int submission_port() const { return submission_port_; }
	int submissions_port() const { return submissions_port_; }
	const std::string& dir() const { return dir_; }
	std::string data_dir() const { return dir_ + "/data"; }
	std::string config_path() const { return dir_ + "/tern.json"; }
	std::string log_path() const { return dir_ + "/ternd.log"; }
	std::string log_text() const;
	const std::string& error() const { return error_; }
	// <data_dir>/accounts/<account>/Maildir
	std::string maildir(const std::string& account = "alice") const;
	DnsServer& dns() { return *dns_; }

private:
	DaemonOptions options_;
	std::unique_ptr<DnsServer> dns_;
	std::string dir_;
	int smtp_port_ = 0, submission_port_ = 0, submissions_port_ = 0;
	pid_t pid_ = -1;
	bool config_written_ = false;
	std::string error_;
};

// The repository root: $TERN_SRCDIR, else the current directory.
std::string repo_root();
// <repo>/src/ternd
std::string ternd_path();

// A free TCP port on 127.0.0.1 (bind port 0, read, close).
int free_tcp_port();
// Whether something listens on TCP port (any local address), via /proc/net/tcp{,6}.
bool tcp_port_listening(int port);
// Listens on 127.0.0.1:port, so that a ternd meant for it cannot bind it;
// the descriptor, or -1 when the port could not be taken.
int take_tcp_port(int port);
// The port a socket is bound to (take_tcp_port(0) binds a free one), or -1.
int listening_port(int fd);
// Polls ≤ timeout_ms until a unix stream socket at path accepts a connection.
// A copy of the built program src/<name> in a folder every user can enter
// (made once per test run, removed at exit), for tests that run it as an
// unprivileged user who may not reach the checkout (a clone under a 0700
// temp dir).
const std::string& reachable_program(const std::string& name);

bool wait_for_unix_socket(const std::string& path, int timeout_ms = 5000);

// For the private peers tests start (Dovecot, milters): forks and runs argv
// (argv[0] a path) with stdin from /dev/null and stdout+stderr appended to
// `output` ("/dev/null" to drop them); the child dies with the test
// process. Returns the pid, or -1 with errno set.
pid_t spawn_child(const std::vector<std::string>& argv, const std::string& output);
// Polls ≤ timeout_ms
// until every port listens; false when the child exits first (pid becomes
// -1) or the time runs out.
bool wait_child_listening(pid_t& pid, const std::vector<int>& ports, int timeout_ms = 10000);
// SIGTERM, ≤ 5 s for the exit, then SIGKILL; pid becomes -1.
void stop_child(pid_t& pid);

// Runs argv (argv[0] a path) with stdout+stderr captured, ≤ timeout_ms.
RunResult run_command(const std::vector<std::string>& argv, int timeout_ms = 10000);
// `ternd -n -c FILE`
RunResult run_check_config(const std::string& config_file);

// Maildir helpers: sorted full paths of the files in <maildir>/<sub>.
std::vector<std::string> maildir_files(const std::string& maildir, const std::string& sub = "new");
// Polls ≤ timeout_ms until <maildir>/new holds at least n files.
std::vector<std::string> wait_for_maildir(const std::string& maildir, size_t n, int timeout_ms = 5000);
std::string read_file(const std::string& path);
// A memory figure of a process in kB from /proc/PID/status ("VmRSS",
// "VmHWM"); -1 when unreadable.
long process_memory_kb(pid_t pid, const std::string& field);
void write_file(const std::string& path, const std::string& content);
bool file_exists(const std::string& path);
void remove_tree(const std::string& path);
// A fresh directory (mkdtemp) under /tmp, or under the directory given to
// set_temp_dir_base.
std::string make_temp_dir(const std::string& prefix = "tern-bb-");
// A make_temp_dir directory that goes, with all it holds, when this does.
class TempDir {
public:
	explicit TempDir(const std::string& prefix) : path_(make_temp_dir(prefix)) {}
	~TempDir() { remove_tree(path_); }
	TempDir(const TempDir&) = delete;
	TempDir& operator=(const TempDir&) = delete;
	const std::string& path() const { return path_; }

private:
	std::string path_;
};
// Where make_temp_dir makes its directories from now on (tern-bench gives
// each server a tree of its own this way).
void set_temp_dir_base(const std::string& dir);
// Replaces CRLF followed by space/tab (header folding) with one space.
std::string unfold(const std::string& header_text);

}  // namespace tern::testing
