// `make bench`: tern and Postfix side by side, on this machine, in one run.
//
// It starts ternd on loopback (tests/helpers/daemon.h: temp config, random
// port, every sender check on, DNS from the loopback test server running in
// this process, so its CPU is not counted as tern's) and, when it runs as
// root on a machine with Debian's postfix package, a private Postfix: its own
// config directory, queue and data directories under a temp dir, a loopback
// port, virtual(8) delivering into a Maildir (fsync'd as Postfix does by
// default). The system's Postfix instance is never used or touched.
//
// Then it measures, with the servers interleaved in every repetition:
//  - delivered messages per second: 2 KB with 10 and 50 sessions and one
//    connection per message, 2 KB with reused connections, 100 KB. A message
//    counts when its file is in the Maildir's new/ (tern says 250 only then;
//    Postfix says 250 once its queue file is fsync'd and delivers later, so
//    the clock runs until its last file arrives);
//  - CPU per message: user + system time of every process of the server
//    (/proc/PID/stat, children that exited included); for tern also by
//    thread, with each thread's context switches per message;
//  - end of data (the final dot) to 250, median and p99;
//  - idle memory: RSS and PSS after start, and per idle connection;
//  - the disk's own ceiling: create + write + fsync + rename + fsync(dir)
//    sequences per second, one at a time and 8 in parallel, and the CPU
//    each sequence costs the threads doing it (a floor under any durable
//    server's CPU per message on this machine).
// It prints one table with ratios and never fails the build.
#include <dirent.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "helpers/daemon.h"
#include "helpers/smtp_client.h"
#include "syscall_trace.h"

using namespace tern::testing;
using Clock = std::chrono::steady_clock;

namespace {

struct Options {
	int seconds = 4;              // per load run
	int repetitions = 3;          // each server, each scenario
	int idle_connections = 1000;  // tern; Postfix gets at most 50 (a process each)
	bool postfix = true;
	int history = 100000;      // records for the large-history run; 0 skips it
	bool memory_only = false;  // the idle figures and where the memory is, no load runs
	bool syscalls = false;     // count ternd's system calls per message instead (syscall_trace.h)
	std::string mail_from = "bench@sender.example";
	std::string rcpt_to = "alice@test.example";
	std::string helo = "client.sender.example";
};

[[noreturn]] void usage() {
	std::fprintf(stderr,
	             "usage: tern-bench [--time SECONDS] [--reps N] [--idle-conns N] [--history N] [--no-postfix]\n"
	             "                  [--memory-only] [--syscalls]\n");
	std::exit(2);
}

Options parse_options(int argc, char** argv) {
	Options o;
	for (int i = 1; i < argc; i++) {
		std::string arg = argv[i];
		auto value = [&]() -> int {
			if (i + 1 >= argc) usage();
			return std::max(1, std::atoi(argv[++i]));
		};
		if (arg == "--time")
			o.seconds = value();
		else if (arg == "--reps")
			o.repetitions = value();
		else if (arg == "--idle-conns")
			o.idle_connections = value();
		else if (arg == "--no-postfix")
			o.postfix = false;
		else if (arg == "--syscalls") {
			o.syscalls = true;  // ternd's calls only: Postfix is not started
			o.postfix = false;
		} else if (arg == "--memory-only") {
			o.memory_only = true;
			o.postfix = false;
		} else if (arg == "--history")
			o.history = (i + 1 < argc && std::string(argv[i + 1]) == "0") ? (++i, 0) : value();
		else
			usage();
	}
	return o;
}

// Idle connections need more than the usual 1024 descriptors; the servers
// inherit the raised limit.
void raise_fd_limit() {
	rlimit lim{};
	if (getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur < lim.rlim_max) {
		lim.rlim_cur = lim.rlim_max;
		setrlimit(RLIMIT_NOFILE, &lim);
	}
}

double median(std::vector<double> v) {
	if (v.empty()) return 0;
	std::sort(v.begin(), v.end());
	return v[v.size() / 2];
}

double percentile(std::vector<double>& sorted, int pct) {
	if (sorted.empty()) return 0;
	return sorted[std::min(sorted.size() - 1, sorted.size() * size_t(pct) / 100)];
}

// ------------------------------------------------------ process accounting

std::vector<pid_t> children_of(pid_t parent) {
	std::vector<pid_t> out;
	DIR* proc = opendir("/proc");
	if (!proc) return out;
	while (dirent* e = readdir(proc)) {
		pid_t pid = std::atoi(e->d_name);
		if (pid <= 0) continue;
		std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
		std::string line;
		if (!std::getline(in, line)) continue;
		// Field 4 (ppid) follows the ")" that ends the command name.
		auto close = line.rfind(')');
		if (close == std::string::npos) continue;
		std::istringstream rest(line.substr(close + 2));
		char state;
		pid_t ppid = 0;
		rest >> state >> ppid;
		if (ppid == parent) out.push_back(pid);
	}
	closedir(proc);
	return out;
}

// utime + stime (+ cutime + cstime when with_children) in clock ticks, of
// a process (/proc/PID/stat) or one of its threads (/proc/PID/task/TID/stat);
// stime alone with kernel_only.
long long cpu_ticks(const std::string& stat_path, bool with_children, bool kernel_only = false) {
	std::ifstream in(stat_path);
	std::string line;
	if (!std::getline(in, line)) return 0;
	auto close = line.rfind(')');
	if (close == std::string::npos) return 0;
	std::istringstream rest(line.substr(close + 2));
	std::string field;
	// Fields 3..13 come before utime (14).
	for (int i = 3; i <= 13; i++) rest >> field;
	long long utime = 0, stime = 0, cutime = 0, cstime = 0;
	rest >> utime >> stime >> cutime >> cstime;
	if (kernel_only) return stime;
	return utime + stime + (with_children ? cutime + cstime : 0);
}

long long cpu_ticks(pid_t pid, bool with_children) {
	return cpu_ticks("/proc/" + std::to_string(pid) + "/stat", with_children);
}

// Calls `each` with the name (ternd names its pools "tern-worker" and
// "tern-disk"; the loop thread is "ternd") and the /proc/PID/task/TID
// directory of every thread of a process.
void for_each_thread(pid_t pid, const std::function<void(const std::string& name, const std::string& dir)>& each) {
	std::string task = "/proc/" + std::to_string(pid) + "/task";
	DIR* d = opendir(task.c_str());
	if (!d) return;
	while (dirent* e = readdir(d)) {
		if (e->d_name[0] == '.') continue;
		std::string dir = task + "/" + e->d_name;
		std::string name = read_file(dir + "/comm");
		if (!name.empty() && name.back() == '\n') name.pop_back();
		each(name, dir);
	}
	closedir(d);
}

// CPU ticks of a process's threads, summed by thread name, and the
// kernel's part of them under "NAME kernel".
std::map<std::string, long long> thread_ticks(pid_t pid) {
	std::map<std::string, long long> out;
	for_each_thread(pid, [&](const std::string& name, const std::string& dir) {
		out[name] += cpu_ticks(dir + "/stat", false);
		out[name + " kernel"] += cpu_ticks(dir + "/stat", false, true);
	});
	return out;
}

// Context switches of a process's threads, summed by thread name:
// voluntary (the thread slept: on a lock, a job, the disk, the loop's poll)
// under NAME and involuntary (another runnable thread took its CPU) under
// "NAME preempted". On a virtual machine each costs a good part of the
// kernel time charged to a message.
std::map<std::string, long long> thread_switches(pid_t pid) {
	std::map<std::string, long long> out;
	for_each_thread(pid, [&](const std::string& name, const std::string& dir) {
		std::ifstream status(dir + "/status");
		std::string line;
		const std::string voluntary = "voluntary_ctxt_switches:", involuntary = "nonvoluntary_ctxt_switches:";
		while (std::getline(status, line)) {
			if (line.rfind(voluntary, 0) == 0)
				out[name] += std::atoll(line.c_str() + voluntary.size());
			else if (line.rfind(involuntary, 0) == 0)
				out[name + " preempted"] += std::atoll(line.c_str() + involuntary.size());
		}
	});
	return out;
}

// "NAME n (PART n), ..." per delivered message, from two samples of a
// per-thread count (thread_ticks, thread_switches) whose "NAME PART" entries
// follow their NAME's; each difference is multiplied by `scale`.
std::string per_message_by_thread(const std::map<std::string, long long>& before,
                                  const std::map<std::string, long long>& after, const std::string& part, double scale,
                                  uint64_t files, const char* format) {
	std::string out;
	for (const auto& [name, count] : after) {
		auto was = before.find(name);
		double per_msg = double(count - (was == before.end() ? 0 : was->second)) * scale / double(files);
		char number[32];
		std::snprintf(number, sizeof number, format, per_msg);
		if (name.ends_with(" " + part))
			out += " (" + part + " " + number + ")";
		else
			out += (out.empty() ? "" : ", ") + name + " " + number;
	}
	return out;
}

// "VmRSS:" of /proc/PID/status or "Pss:" of smaps_rollup, in kB.
long memory_kb(pid_t pid, const char* file, const char* key) {
	std::ifstream in("/proc/" + std::to_string(pid) + "/" + file);
	std::string line;
	while (std::getline(in, line))
		if (line.rfind(key, 0) == 0) return std::atol(line.c_str() + std::strlen(key));
	return 0;
}

// A server under test: where it listens, where its deliveries land, and the
// processes that make it up.
struct Server {
	std::string name;
	int port = 0;
	std::string maildir_new;
	std::string trash;                              // where earlier runs' messages are set aside
	std::function<std::vector<pid_t>()> processes;  // every live process
	pid_t root = 0;                                 // exited children are reaped into its times

	// CPU seconds of every process, including children that exited since.
	double cpu_seconds() const {
		long long ticks = 0;
		for (pid_t p : processes()) ticks += cpu_ticks(p, p == root);
		return double(ticks) / double(sysconf(_SC_CLK_TCK));
	}
	long rss_kb() const {
		long kb = 0;
		for (pid_t p : processes()) kb += memory_kb(p, "status", "VmRSS:");
		return kb;
	}
	long pss_kb() const {
		long kb = 0;
		for (pid_t p : processes()) kb += memory_kb(p, "smaps_rollup", "Pss:");
		return kb;
	}
};

size_t count_files(const std::string& dir) {
	size_t n = 0;
	if (DIR* d = opendir(dir.c_str())) {
		while (dirent* e = readdir(d))
			if (e->d_name[0] != '.') n++;
		closedir(d);
	}
	return n;
}

void empty_dir(const std::string& dir) {
	if (DIR* d = opendir(dir.c_str())) {
		while (dirent* e = readdir(d))
			if (e->d_name[0] != '.') unlink((dir + "/" + e->d_name).c_str());
		closedir(d);
	}
}

// Makes `dir` a top of directory trees for the ext4 inode allocator
// (FS_TOPDIR_FL, `chattr +T`): each directory created in it starts in a
// block group chosen afresh, with few directories and free inodes above
// the average, instead of near its parent. Every server's files (tern's,
// Postfix's, the disk ceiling's) are then allocated in block groups of
// their own, away from those where other programs, an earlier bench or a
// test suite just freed inodes: on ext4 without a journal the allocator
// steps over each inode freed in the last minute (five when its table
// block is still dirty) one buffer look-up at a time, so a creation in
// such a group can cost a millisecond of CPU, charged to whichever server
// happens to create files there. Postfix still pays for the queue files it
// frees itself, as it would on any host. Returns "" or why not.
std::string spread_subdirectories(const std::string& dir) {
	int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) return std::strerror(errno);
	int flags = 0;
	std::string why;
	if (ioctl(fd, FS_IOC_GETFLAGS, &flags) != 0) {
		why = std::string("FS_IOC_GETFLAGS: ") + std::strerror(errno);
	} else {
		flags |= FS_TOPDIR_FL;
		if (ioctl(fd, FS_IOC_SETFLAGS, &flags) != 0)
			why = std::string("FS_IOC_SETFLAGS: ") + std::strerror(errno);
	}
	close(fd);
	return why;
}

// Moves dir (a Maildir's new/) into `trash` and puts an empty one with the
// same owner and mode in its place. The files are removed only at the end
// of the bench: on ext4 without a journal a freshly freed inode is skipped
// by the inode allocator for a minute or more, and each skip costs a
// buffer look-up, so thousands of files removed just before a run would
// charge the next server's file creations (and its CPU figure) for them.
void set_aside(const std::string& dir, const std::string& trash) {
	static int count = 0;
	struct stat st {};
	if (stat(dir.c_str(), &st) != 0) return;
	if (rename(dir.c_str(), (trash + "/" + std::to_string(++count)).c_str()) != 0 ||
	    mkdir(dir.c_str(), st.st_mode & 07777) != 0) {
		empty_dir(dir);
		return;
	}
	chmod(dir.c_str(), st.st_mode & 07777);
	if (chown(dir.c_str(), st.st_uid, st.st_gid) != 0) std::perror("tern-bench: chown");
}

// --------------------------------------------------------- private Postfix

// A Postfix instance of its own under dir: `postfix -c dir/etc start`.
class PrivatePostfix {
public:
	explicit PrivatePostfix(const std::string& dir) : dir_(dir), port_(free_tcp_port()) {}
	~PrivatePostfix() { stop(); }

	// Returns "" when it listens, else why not.
	std::string start() {
		if (geteuid() != 0) return "not root (Postfix's master needs root)";
		if (access("/usr/sbin/postfix", X_OK) != 0)
			return "Debian's postfix package is not installed (contrib/install-deps.sh installs it)";
		chmod(dir_.c_str(), 0755);  // virtual(8) runs as nobody and must reach the Maildir
		for (const char* sub : {"/etc", "/queue", "/data", "/mail"}) mkdir((dir_ + sub).c_str(), 0755);
		if (chown((dir_ + "/data").c_str(), pw_uid("postfix"), -1) != 0 ||
		    chown((dir_ + "/mail").c_str(), 65534, 65534) != 0)
			return "chown: " + std::string(std::strerror(errno));
		write_file(dir_ + "/etc/main.cf", main_cf());
		write_file(dir_ + "/etc/master.cf", master_cf());
		RunResult r = run_command({"/usr/sbin/postfix", "-c", dir_ + "/etc", "start"}, 30000);
		started_ = true;
		if (r.exit_code != 0) return "postfix start failed: " + r.output + read_file(dir_ + "/maillog");
		for (int i = 0; i < 100 && !tcp_port_listening(port_); i++) usleep(100 * 1000);
		if (!tcp_port_listening(port_)) return "Postfix does not listen: " + read_file(dir_ + "/maillog");
		master_ = std::atoi(read_file(dir_ + "/queue/pid/master.pid").c_str());
		if (master_ <= 0) return "no master.pid";
		return "";
	}

	void stop() {
		if (!started_) return;
		started_ = false;
		run_command({"/usr/sbin/postfix", "-c", dir_ + "/etc", "stop"}, 30000);
	}

	Server server() const {
		Server s;
		s.name = "Postfix";
		s.port = port_;
		s.maildir_new = dir_ + "/mail/alice/Maildir/new";
		pid_t master = master_;
		s.root = master;
		s.processes = [master] {
			std::vector<pid_t> all = children_of(master);
			all.push_back(master);
			return all;
		};
		return s;
	}
	std::string version() const {
		RunResult r = run_command({"/usr/sbin/postconf", "-d", "-h", "mail_version"});
		std::string v = r.output;
		v.erase(v.find_last_not_of(" \r\n") + 1);
		return v;
	}

private:
	static uid_t pw_uid(const char* user) {
		std::ifstream in("/etc/passwd");
		std::string line;
		while (std::getline(in, line))
			if (line.rfind(std::string(user) + ":", 0) == 0) {
				std::istringstream f(line);
				std::string name, pw, uid;
				std::getline(f, name, ':');
				std::getline(f, pw, ':');
				std::getline(f, uid, ':');
				return uid_t(std::atoi(uid.c_str()));
			}
		return 0;
	}

	// Postfix's defaults, except: everything under dir_, loopback only, no
	// DNS (the bench never reaches a real resolver; Postfix's default
	// restrictions make no sender lookups anyway), virtual(8) delivery of
	// test.example into one Maildir owned by nobody, logging to a file.
	std::string main_cf() const {
		return "compatibility_level = 3.6\n"
		       "queue_directory = " +
		    dir_ +
		    "/queue\n"
		    "data_directory = " +
		    dir_ +
		    "/data\n"
		    "myhostname = mx.test.example\n"
		    "mydomain = test.example\n"
		    "mydestination =\n"
		    "inet_interfaces = 127.0.0.1\n"
		    "inet_protocols = ipv4\n"
		    "mynetworks = 127.0.0.0/8\n"
		    "smtpd_peername_lookup = no\n"
		    "disable_dns_lookups = yes\n"
		    "smtp_dns_support_level = disabled\n"
		    "virtual_mailbox_domains = test.example\n"
		    "virtual_mailbox_base = " +
		    dir_ +
		    "/mail\n"
		    "virtual_mailbox_maps = static:alice/Maildir/\n"
		    "virtual_uid_maps = static:65534\n"
		    "virtual_gid_maps = static:65534\n"
		    "virtual_minimum_uid = 100\n"
		    "alias_maps =\n"
		    "alias_database =\n"
		    "biff = no\n"
		    "maillog_file = " +
		    dir_ +
		    "/maillog\n"
		    "maillog_file_prefixes = " +
		    dir_ + "\n";
	}
	// Debian's master.cf services, without chroot (nothing is set up in it).
	std::string master_cf() const {
		return std::to_string(port_) +
		    " inet n - n - - smtpd\n"
		    "pickup unix n - n 60 1 pickup\n"
		    "cleanup unix n - n - 0 cleanup\n"
		    "qmgr unix n - n 300 1 qmgr\n"
		    "rewrite unix - - n - - trivial-rewrite\n"
		    "bounce unix - - n - 0 bounce\n"
		    "defer unix - - n - 0 bounce\n"
		    "trace unix - - n - 0 bounce\n"
		    "verify unix - - n - 1 verify\n"
		    "flush unix n - n 1000? 0 flush\n"
		    "proxymap unix - - n - - proxymap\n"
		    "smtp unix - - n - - smtp\n"
		    "relay unix - - n - - smtp\n"
		    "showq unix n - n - - showq\n"
		    "error unix - - n - - error\n"
		    "retry unix - - n - - error\n"
		    "discard unix - - n - - discard\n"
		    "local unix - n n - - local\n"
		    "virtual unix - n n - - virtual\n"
		    "anvil unix - - n - 1 anvil\n"
		    "scache unix - - n - 1 scache\n"
		    "postlog unix-dgram n - n - 1 postlogd\n";
	}

	std::string dir_;
	int port_;
	pid_t master_ = 0;
	bool started_ = false;
};

// --------------------------------------------------------------- the load

struct Scenario {
	const char* label;
	int sessions;
	bool reuse;  // one connection per session, or one per message
	size_t message_bytes;
};

const Scenario scenarios[] = {
    {"2 KB, 10 sessions, 1 conn/msg", 10, false, 2048},
    {"2 KB, 50 sessions, 1 conn/msg", 50, false, 2048},
    {"2 KB, 10 sessions, reused conns", 10, true, 2048},
    {"100 KB, 10 sessions, 1 conn/msg", 10, false, 100 * 1024},
};
constexpr size_t scenario_count = sizeof scenarios / sizeof scenarios[0];

struct RunResult1 {
	double per_second = 0, cpu_us_per_msg = 0, p50_ms = 0, p99_ms = 0;
	uint64_t delivered = 0, failed = 0;
	std::string first_error;
	std::string per_thread;               // CPU us per message by thread name, for a server with threads
	std::string switches;                 // context switches per message by thread name, likewise
	std::string steps;                    // median ms of each step of a session but the dot
	tern::bench::SyscallCounts syscalls;  // with a trace: what the server's threads called
};

// The message without its final dot: headers, then filler lines to size.
std::string message_text(const Options& o, size_t bytes, int thread, uint64_t n) {
	std::string id = std::to_string(thread) + "." + std::to_string(n);
	std::string m = "From: <" + o.mail_from + ">\r\nTo: <" + o.rcpt_to + ">\r\nSubject: bench " + id +
	    "\r\nMessage-Id: <bench." + id + "." + std::to_string(getpid()) +
	    "@sender.example>\r\nDate: Wed, 25 Nov 2026 12:00:00 +0000\r\n\r\n";
	const std::string line = std::string(74, 'x') + "\r\n";
	while (m.size() + line.size() <= bytes) m += line;
	return m;
}

// The steps of a session, timed at the client: the dot-to-250 latency and
// the others, where a session's time goes at a given load.
enum Step { step_connect, step_ehlo, step_envelope, step_dot, step_quit, step_count };
const char* const step_names[step_count] = {"connect+220", "EHLO", "MAIL/RCPT/DATA", "dot to 250", "QUIT"};

double ms_between(Clock::time_point from, Clock::time_point to) {
	return std::chrono::duration<double, std::milli>(to - from).count();
}
double ms_since(Clock::time_point from) { return ms_between(from, Clock::now()); }

struct ThreadStats {
	uint64_t accepted = 0, failed = 0;
	std::vector<double> step_ms[step_count];
	std::string first_error;
};

// Connects, reads the greeting and sends EHLO; `mail_max` is the LIMITS
// MAILMAX the server announces (RFC 9422 2.1), or no limit.
bool connect_with_limit(SmtpClient& client, int port, const std::string& helo, uint64_t& mail_max, ThreadStats& stats) {
	auto started = Clock::now();
	if (!client.connect("127.0.0.1", port) || client.read_reply().code != 220) return false;
	auto greeted = Clock::now();
	Reply ehlo = client.cmd("EHLO " + helo);
	if (ehlo.code != 250) return false;
	stats.step_ms[step_connect].push_back(ms_between(started, greeted));
	stats.step_ms[step_ehlo].push_back(ms_since(greeted));
	mail_max = UINT64_MAX;
	for (const auto& line : ehlo.lines) {
		size_t limits = line.find("LIMITS ");
		size_t at = line.find("MAILMAX=");
		if (limits == 4 && at != std::string::npos)
			mail_max = std::strtoull(line.c_str() + at + 8, nullptr, 10);
	}
	return true;
}

constexpr size_t client_buffer_bytes = 4096;

void client_loop(const Options& o, const Scenario& sc, int port, int index, Clock::time_point deadline,
                 ThreadStats& stats) {
	auto note_error = [&](const std::string& what) {
		stats.failed++;
		if (stats.first_error.empty()) stats.first_error = what;
	};
	SmtpClient client;
	uint64_t n = 0;
	uint64_t left = 0;  // transactions this connection may still carry
	while (Clock::now() < deadline) {
		if (!client.connected() && !connect_with_limit(client, port, o.helo, left, stats)) {
			note_error("connect/EHLO: " + client.last_error);
			client.close();
			usleep(50 * 1000);
			continue;
		}
		// A reused connection ends where the server's MAILMAX says (RFC 9422).
		if (left-- == 0) {
			client.cmd("QUIT");
			client.close();
			continue;
		}
		// MAIL, RCPT and DATA pipelined (RFC 2920).
		auto envelope = Clock::now();
		client.send("MAIL FROM:<" + o.mail_from + ">\r\nRCPT TO:<" + o.rcpt_to + ">\r\nDATA\r\n");
		Reply mail = client.read_reply(), rcpt = client.read_reply(), data = client.read_reply();
		if (mail.code != 250 || rcpt.code != 250 || data.code != 354) {
			note_error("MAIL/RCPT/DATA: " + mail.plain() + " | " + rcpt.plain() + " | " + data.plain());
			client.close();
			continue;
		}
		stats.step_ms[step_envelope].push_back(ms_since(envelope));
		// The final dot goes out with the message's last bytes, as from a
		// client that writes through a buffer (Postfix's smtp(8) flushes
		// its 4 KiB stream buffer when full and at the dot): the clock
		// starts before that last write.
		std::string text = message_text(o, sc.message_bytes, index, n++);
		size_t tail = text.size() % client_buffer_bytes;
		if (tail == 0 && !text.empty()) tail = client_buffer_bytes;
		client.send(text.substr(0, text.size() - tail));
		auto dot = Clock::now();
		client.send(text.substr(text.size() - tail) + ".\r\n");
		Reply done = client.read_reply();
		if (done.code != 250) {
			note_error("after DATA: " + done.plain());
			client.close();
			continue;
		}
		stats.accepted++;
		stats.step_ms[step_dot].push_back(ms_since(dot));
		if (!sc.reuse) {
			auto quit = Clock::now();
			client.cmd("QUIT");
			stats.step_ms[step_quit].push_back(ms_since(quit));
			client.close();
		}
	}
	if (client.connected()) client.cmd("QUIT");
}

RunResult1 run_load(const Options& o, const Scenario& sc, const Server& server,
                    tern::bench::SyscallTrace* trace = nullptr) {
	set_aside(server.maildir_new, server.trash);
	double cpu_before = server.cpu_seconds();
	auto threads_before = thread_ticks(server.root);
	auto switches_before = thread_switches(server.root);
	std::vector<ThreadStats> stats(size_t(sc.sessions));
	std::vector<std::thread> threads;
	auto started = Clock::now();
	auto deadline = started + std::chrono::seconds(o.seconds);
	for (int t = 0; t < sc.sessions; t++)
		threads.emplace_back(client_loop, std::cref(o), std::cref(sc), server.port, t, deadline,
		                     std::ref(stats[size_t(t)]));
	for (auto& t : threads) t.join();

	RunResult1 r;
	// Every message that got its 250 is on disk: its calls are all counted.
	if (trace) r.syscalls = trace->stop();
	uint64_t accepted = 0;
	for (auto& s : stats) {
		accepted += s.accepted;
		r.failed += s.failed;
		if (r.first_error.empty()) r.first_error = s.first_error;
	}
	// A message counts once its file is in new/: wait for the last one (a
	// queueing server delivers after its 250), at most 60 s.
	size_t files = count_files(server.maildir_new);
	auto last_seen = Clock::now();
	for (auto give_up = last_seen + std::chrono::seconds(60); files < accepted && Clock::now() < give_up;) {
		usleep(5 * 1000);
		size_t now = count_files(server.maildir_new);
		if (now != files) last_seen = Clock::now();
		files = now;
	}
	if (files < accepted && r.first_error.empty())
		r.first_error = std::to_string(accepted - files) + " accepted messages not delivered within 60 s";
	double elapsed = std::chrono::duration<double>(last_seen - started).count();
	usleep(200 * 1000);  // let the last processes account their time
	double cpu = server.cpu_seconds() - cpu_before;
	auto threads_after = thread_ticks(server.root);
	auto switches_after = thread_switches(server.root);
	// A server with threads of its own (not one process per task).
	if (threads_after.size() > 2 && files > 0) {
		r.per_thread = per_message_by_thread(threads_before, threads_after, "kernel",
		                                     1e6 / double(sysconf(_SC_CLK_TCK)), files, "%.0f");
		r.switches = per_message_by_thread(switches_before, switches_after, "preempted", 1, files, "%.1f");
	}
	r.delivered = files;
	r.per_second = elapsed > 0 ? double(files) / elapsed : 0;
	r.cpu_us_per_msg = files ? cpu * 1e6 / double(files) : 0;
	// Each step's times of every session; the dot's give the latency
	// figures, the others their median on a line of their own.
	for (int step = 0; step < step_count; step++) {
		std::vector<double> times;
		for (auto& s : stats) times.insert(times.end(), s.step_ms[step].begin(), s.step_ms[step].end());
		std::sort(times.begin(), times.end());
		if (step == step_dot) {
			r.p50_ms = percentile(times, 50);
			r.p99_ms = percentile(times, 99);
			continue;
		}
		if (times.empty()) continue;
		char text[64];
		std::snprintf(text, sizeof text, "%s%s %.2f", r.steps.empty() ? "" : ", ", step_names[step],
		              percentile(times, 50));
		r.steps += text;
	}
	return r;
}

// A refused message or an error in a run is worth its reason: ternd's
// error and warn lines and its refusals since it started (not its remarks
// on the bench's own setup), the first few, after the table.
void print_notable_log_lines(const std::string& log) {
	constexpr size_t shown_at_most = 20;
	std::vector<std::string> notable;
	size_t total = 0;
	bool started = false;
	std::istringstream lines(log);
	for (std::string line; std::getline(lines, line);) {
		if (!started) {
			started = line.find("msg=\"ternd started\"") != std::string::npos;
			continue;
		}
		bool wanted = line.find(" level=error ") != std::string::npos ||
		    line.find(" level=warn ") != std::string::npos ||
		    line.find("msg=\"incoming message rejected\"") != std::string::npos;
		if (!wanted) continue;
		if (notable.size() < shown_at_most) notable.push_back(line);
		++total;
	}
	if (total == 0) return;
	std::printf("\nternd logged %zu error, warn or refusal lines; the first %zu:\n", total, notable.size());
	for (const auto& line : notable) std::printf("  %s\n", line.c_str());
}

// ------------------------------------------------------------- idle memory

// PSS in kB of one process by kind of mapping (/proc/PID/smaps), to see
// where idle memory is: the heap, glibc's extra malloc arenas (anonymous,
// inside 64 MiB reservations), thread stacks (anonymous, 8 MiB or as
// set), Berkeley DB's region files, the program and its libraries.
using MappingPss = std::map<std::string, long>;
MappingPss pss_by_mapping(pid_t pid) {
	MappingPss kinds;
	std::ifstream in("/proc/" + std::to_string(pid) + "/smaps");
	std::string line, kind;
	while (std::getline(in, line)) {
		if (line.empty()) continue;
		if (std::isxdigit(static_cast<unsigned char>(line[0])) && line.find('-') < line.find(' ')) {
			std::istringstream fields(line);
			std::string range, perms, offset, dev, inode, path;
			fields >> range >> perms >> offset >> dev >> inode >> path;
			unsigned long start = std::stoul(range, nullptr, 16);
			unsigned long end = std::stoul(range.substr(range.find('-') + 1), nullptr, 16);
			unsigned long kb = (end - start) / 1024;
			if (path == "[heap]" || path == "[stack]")
				kind = path;
			else if (path.find("/__db.") != std::string::npos)
				kind = "Berkeley DB regions";
			else if (path.find("/ternd") != std::string::npos)
				kind = "ternd (code and data)";
			else if (path.find(".so") != std::string::npos)
				kind = "lib " + path.substr(path.rfind('/') + 1);
			else if (!path.empty())
				kind = "other (" + path + ")";
			else if (perms[0] == '-')
				kind = "anonymous, reserved";
			else if (kb % 1024 == 0 && kb <= 8192)
				kind = "anonymous, thread stacks";
			else
				kind = "anonymous, malloc arenas and mmaps";
			continue;
		}
		if (line.rfind("Pss:", 0) == 0) kinds[kind] += std::atol(line.c_str() + 4);
	}
	return kinds;
}

struct MemoryResult {
	long rss_kb = 0, pss_kb = 0;
	double pss_per_connection_kb = 0;
	int connections = 0;
	// The server's main process by mapping: fresh, idle after the warm-up
	// connections, with the idle connections.
	std::vector<std::pair<std::string, MappingPss>> mappings;
};

std::vector<std::unique_ptr<SmtpClient>> open_idle_connections(const Options& o, const Server& server, int count) {
	std::vector<std::unique_ptr<SmtpClient>> clients;
	for (int i = 0; i < count; i++) {
		auto c = std::make_unique<SmtpClient>();
		if (c->connect("127.0.0.1", server.port) && c->greet_and_ehlo(o.helo)) clients.push_back(std::move(c));
	}
	return clients;
}

// Idle memory, and what each greeted idle connection adds to it. For tern,
// `warm_up` connections come and go first: the code that serves a
// connection (unmapped with the rest of start-up's pages, or never touched
// yet) is then in the idle figure, where it stays, and not spread over the
// connections. (Postfix gets none: its smtpd processes would stay to serve
// the measured connections.)
MemoryResult measure_memory(const Options& o, const Server& server, int count, int warm_up) {
	MemoryResult m;
	m.mappings.emplace_back("fresh", pss_by_mapping(server.root));
	for (auto& c : open_idle_connections(o, server, warm_up)) c->cmd("QUIT");
	usleep(500 * 1000);
	m.mappings.emplace_back("idle", pss_by_mapping(server.root));
	m.rss_kb = server.rss_kb();
	m.pss_kb = server.pss_kb();
	auto clients = open_idle_connections(o, server, count);
	usleep(1000 * 1000);
	m.mappings.emplace_back("with conns", pss_by_mapping(server.root));
	m.connections = int(clients.size());
	if (m.connections > 0) m.pss_per_connection_kb = double(server.pss_kb() - m.pss_kb) / double(m.connections);
	clients.clear();
	usleep(500 * 1000);
	return m;
}

// The columns of PSS kB by kind of mapping; the last also in bytes per
// connection against the one before it.
void print_pss_by_mapping(const std::vector<std::pair<std::string, MappingPss>>& columns, int connections) {
	std::printf("  %-40s", "PSS kB by mapping");
	for (const auto& [title, column] : columns) std::printf(" %10s", title.c_str());
	std::printf(" %10s\n", "B per conn");
	const MappingPss& with = columns[2].second;
	for (const auto& [kind, kb] : columns.back().second) {
		std::printf("  %-40s", kind.c_str());
		for (const auto& [title, column] : columns)
			std::printf(" %10ld", column.count(kind) ? column.at(kind) : 0L);
		const MappingPss& idle = columns[1].second;
		long added = (with.count(kind) ? with.at(kind) : 0) - (idle.count(kind) ? idle.at(kind) : 0);
		std::printf(" %10.0f\n", connections ? double(added) * 1024.0 / connections : 0.0);
	}
}

// --memory-only: the idle figures of the table quickly and repeatably, and
// where the memory is; then, for comparison, the idle server after a
// second of mail (the code, threads and heap of the mail path in place).
void report_memory_only(const Options& o, const Server& server) {
	MemoryResult m = measure_memory(o, server, o.idle_connections, 10);
	std::printf("idle RSS kB %ld, idle PSS kB %ld; %d idle connections: %.0f bytes of PSS per connection\n",
	            m.rss_kb, m.pss_kb, m.connections, m.pss_per_connection_kb * 1024.0);
	Options warm = o;
	warm.seconds = 1;
	RunResult1 mail = run_load(warm, scenarios[0], server);
	usleep(1500 * 1000);
	m.mappings.emplace_back("after mail", pss_by_mapping(server.root));
	std::printf("idle again after %llu messages: RSS kB %ld, PSS kB %ld%s%s\n",
	            static_cast<unsigned long long>(mail.delivered), server.rss_kb(), server.pss_kb(),
	            mail.failed ? "; errors: " : "", mail.first_error.c_str());
	print_pss_by_mapping(m.mappings, m.connections);
}

// --------------------------------------------------------- the disk itself

// create + write 2 KB + fsync + close + rename + fsync(dir): what a durable
// Maildir delivery costs at least, in time and in CPU (user and kernel, of
// the threads doing it: the floor under a server's CPU per message).
struct DiskCeiling {
	double per_second = 0;  // sequences
	double cpu_us_per_sequence = 0;
};

double thread_cpu_us() {
	rusage r{};
	getrusage(RUSAGE_THREAD, &r);
	return double(r.ru_utime.tv_sec + r.ru_stime.tv_sec) * 1e6 + double(r.ru_utime.tv_usec + r.ru_stime.tv_usec);
}

// One thread's sequences until the deadline; false when one failed.
bool durable_renames(const std::string& dir, int thread, Clock::time_point deadline, std::atomic<uint64_t>& done) {
	std::string block(2048, 'x');
	for (uint64_t i = 0; Clock::now() < deadline; i++) {
		std::string name = std::to_string(thread) + "." + std::to_string(i);
		std::string tmp = dir + "/tmp/" + name, fin = dir + "/new/" + name;
		int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (fd < 0) return false;
		bool ok = write(fd, block.data(), block.size()) == ssize_t(block.size()) && fsync(fd) == 0;
		close(fd);
		if (!ok || rename(tmp.c_str(), fin.c_str()) != 0) return false;
		int dfd = open((dir + "/new").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dfd < 0) return false;
		fsync(dfd);
		close(dfd);
		done++;
	}
	return true;
}

DiskCeiling disk_ceiling(const std::string& dir, int parallel, int seconds) {
	mkdir((dir + "/tmp").c_str(), 0700);
	mkdir((dir + "/new").c_str(), 0700);
	std::atomic<uint64_t> done{0};
	std::mutex cpu_mu;
	double cpu_us = 0;
	auto deadline = Clock::now() + std::chrono::seconds(seconds);
	std::vector<std::thread> threads;
	auto started = Clock::now();
	for (int t = 0; t < parallel; t++)
		threads.emplace_back([&, t] {
			double before = thread_cpu_us();
			durable_renames(dir, t, deadline, done);
			double used = thread_cpu_us() - before;
			std::lock_guard lock(cpu_mu);
			cpu_us += used;
		});
	for (auto& t : threads) t.join();
	double elapsed = std::chrono::duration<double>(Clock::now() - started).count();
	// The files stay until the end of the bench (see set_aside).
	DiskCeiling c;
	c.per_second = double(done) / elapsed;
	if (done > 0) c.cpu_us_per_sequence = cpu_us / double(done);
	return c;
}

// ------------------------------------------------------------------ table

std::string ratio(double tern, double other) {
	if (other <= 0 || tern <= 0) return "";
	char buf[32];
	std::snprintf(buf, sizeof buf, "%.3gx", tern / other);
	return buf;
}

void row(const std::string& figure, double tern, const std::optional<double>& postfix, const char* fmt,
         bool show_ratio = true) {
	char a[32], b[32] = "-";
	std::snprintf(a, sizeof a, fmt, tern);
	if (postfix) std::snprintf(b, sizeof b, fmt, *postfix);
	std::printf("| %-56s | %10s | %10s | %12s |\n", figure.c_str(), a, b,
	            postfix && show_ratio ? ratio(tern, *postfix).c_str() : "");
}

// `--syscalls`: ternd's system calls per delivered message by thread, in
// three of the loads (each traced from its start to its last reply).
void print_syscalls(const Options& o, const Server& tern) {
	for (size_t s : {size_t(0), size_t(2), size_t(3)}) {
		tern::bench::SyscallTrace trace;
		if (std::string why = trace.start(tern.root); !why.empty()) {
			std::printf("  syscalls not counted: %s\n", why.c_str());
			return;
		}
		RunResult1 r = run_load(o, scenarios[s], tern, &trace);
		std::printf("\n%s: %llu messages delivered under strace\n%s", scenarios[s].label,
		            static_cast<unsigned long long>(r.delivered),
		            tern::bench::format_per_message(r.syscalls, r.delivered).c_str());
	}
}

std::string load_average() {
	std::string s = read_file("/proc/loadavg");
	return s.substr(0, s.find(' ', s.find(' ', s.find(' ') + 1) + 1));
}

}  // namespace

int main(int argc, char** argv) {
	Options o = parse_options(argc, argv);
	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, nullptr, _IOLBF, 0);
	raise_fd_limit();

	// tern as deployed: info logging, every sender check (iprev, SPF, DKIM,
	// DMARC) against the loopback DNS server; only the per-IP limits and the
	// penalty delays are lifted, since every client is 127.0.0.1.
	DaemonOptions options;
	options.config_patch = R"({
		"log": {"level": "info"},
		"delays_ms": {"bad_client": 0, "auth_fail": 0, "unknown_recipients": 0},
		"limits": {
			"connection_rate_per_min": [1000000, 1000000, 1000000],
			"connections": [100000, 100000, 100000]
		},
		"accounts": {"alice": {"delivery_rate_limits": {
			"messages_per_minute": [1000000000, 1000000000, 1000000000],
			"messages_per_day": [1000000000, 1000000000, 1000000000],
			"mib_per_minute": [1000000000, 1000000000, 1000000000],
			"mib_per_day": [1000000000, 1000000000, 1000000000]}}}
	})";
	std::string bench_root = make_temp_dir("tern-bench-");
	chmod(bench_root.c_str(), 0755);  // Postfix's daemons run as other users and must reach their directories
	std::string spread_note = spread_subdirectories(bench_root);
	set_temp_dir_base(bench_root);
	TernDaemon daemon(options);
	if (!daemon.running()) {
		std::fprintf(stderr, "tern-bench: ternd did not start: %s\n", daemon.error().c_str());
		return 0;
	}
	daemon.dns().add("_dmarc.sender.example", "TXT", "v=DMARC1; p=reject");
	Server tern;
	tern.name = "tern";
	tern.port = daemon.smtp_port();
	tern.maildir_new = daemon.maildir("alice") + "/new";
	std::string trash = make_temp_dir("tern-bench-done-");
	tern.trash = trash;
	tern.root = daemon.pid();
	tern.processes = [pid = daemon.pid()] { return std::vector<pid_t>{pid}; };
	// The Maildir exists once the first message arrived; create it now so
	// that the first count finds it, whole (tmp, new, cur), as ternd would:
	// its junk scanner reads a folder without cur/ as one being removed.
	const std::string maildir = daemon.maildir("alice");
	RunResult mk = run_command({"/bin/mkdir", "-p", maildir + "/tmp", maildir + "/new", maildir + "/cur"});
	(void)mk;

	std::string pf_dir = make_temp_dir("tern-bench-postfix-");
	std::unique_ptr<PrivatePostfix> postfix;
	std::optional<Server> pf;
	std::string pf_note;
	if (o.postfix) {
		postfix = std::make_unique<PrivatePostfix>(pf_dir);
		pf_note = postfix->start();
		if (pf_note.empty()) {
			pf = postfix->server();
			pf->trash = trash;
		} else
			postfix.reset();
	} else {
		pf_note = "--no-postfix";
	}

	std::printf("tern bench: %d s per run, %d repetitions, servers interleaved; %u cores, load average %s\n",
	            o.seconds, o.repetitions, std::thread::hardware_concurrency(), load_average().c_str());
	std::printf("  ternd pid %d on 127.0.0.1:%d (log level info, every sender check on)\n", int(daemon.pid()),
	            tern.port);
	if (pf)
		std::printf("  Postfix %s, private instance in %s on 127.0.0.1:%d (virtual(8) into a Maildir)\n",
		            postfix->version().c_str(), pf_dir.c_str(), pf->port);
	else
		std::printf("  Postfix: not compared: %s\n", pf_note.c_str());
	std::printf("  files under %s, each server's in block groups of its own%s%s\n", bench_root.c_str(),
	            spread_note.empty() ? "" : ": not set up, ", spread_note.c_str());

	std::string disk_dir;  // the disk ceiling's files, made after the load runs
	// Every way out stops Postfix before its directory goes: `postfix stop`
	// needs its configuration, and a master left running would outlive the
	// bench.
	auto finish = [&] {
		postfix.reset();
		daemon.stop();
		remove_tree(pf_dir);
		remove_tree(disk_dir);
		remove_tree(trash);
		remove_tree(bench_root);
		return 0;
	};
	if (o.syscalls) {
		print_syscalls(o, tern);
		return finish();
	}

	// Idle memory first, while both are fresh: ternd gives start-up pages
	// back one second after start, and its periodic database check (every
	// 5 s) has run once by 6.5 s, so the idle figure holds its code too.
	usleep(6500 * 1000);
	if (o.memory_only) {
		report_memory_only(o, tern);
		return finish();
	}
	MemoryResult tern_mem = measure_memory(o, tern, o.idle_connections, 10);
	std::optional<MemoryResult> pf_mem;
	if (pf) pf_mem = measure_memory(o, *pf, std::min(o.idle_connections, 50), 0);

	// The disk, on the file system the servers write to.
	disk_dir = make_temp_dir("tern-bench-disk-");
	int disk_seconds = std::min(o.seconds, 3);
	mkdir((disk_dir + "/serial").c_str(), 0700);
	mkdir((disk_dir + "/parallel").c_str(), 0700);
	DiskCeiling disk_serial = disk_ceiling(disk_dir + "/serial", 1, disk_seconds);
	DiskCeiling disk_parallel = disk_ceiling(disk_dir + "/parallel", 8, disk_seconds);

	// Interleaved: each repetition runs every scenario on both servers, the
	// order of the two alternating, so slow drifts of the machine hit both.
	std::vector<std::vector<RunResult1>> tern_runs(scenario_count), pf_runs(scenario_count);
	for (int rep = 0; rep < o.repetitions; rep++)
		for (size_t s = 0; s < scenario_count; s++) {
			bool tern_first = (rep + int(s)) % 2 == 0;
			for (int turn = 0; turn < 2; turn++) {
				bool is_tern = (turn == 0) == tern_first;
				if (!is_tern && !pf) continue;
				RunResult1 r = run_load(o, scenarios[s], is_tern ? tern : *pf);
				std::printf(
				    "  rep %d  %-34s %-7s %8.0f msg/s %7.0f us/msg  p50 %6.2f  p99 %6.2f ms%s%s\n",
				    rep + 1, scenarios[s].label, is_tern ? "tern" : "Postfix", r.per_second,
				    r.cpu_us_per_msg, r.p50_ms, r.p99_ms, r.failed ? "  errors: " : "",
				    r.failed ? (std::to_string(r.failed) + " (" + r.first_error + ")").c_str() : "");
				if (!r.per_thread.empty())
					std::printf("         CPU us/msg by thread: %s\n", r.per_thread.c_str());
				if (!r.switches.empty())
					std::printf("         context switches/msg by thread: %s\n",
					            r.switches.c_str());
				if (!r.steps.empty())
					std::printf("         median ms of the other steps: %s\n", r.steps.c_str());
				(is_tern ? tern_runs : pf_runs)[s].push_back(r);
			}
		}

	auto med = [](const std::vector<RunResult1>& runs, double RunResult1::*field) -> double {
		std::vector<double> v;
		for (const auto& r : runs) v.push_back(r.*field);
		return median(v);
	};
	auto pf_med = [&](size_t s, double RunResult1::*field) -> std::optional<double> {
		if (!pf) return std::nullopt;
		return med(pf_runs[s], field);
	};

	std::printf("\nMedians of %d; load average now %s\n\n", o.repetitions, load_average().c_str());
	std::printf("| %-56s | %10s | %10s | %12s |\n", "figure", "tern", "Postfix", "tern/Postfix");
	std::printf("|%s|%s|%s|%s|\n", std::string(58, '-').c_str(), std::string(11, '-').append(":").c_str(),
	            std::string(11, '-').append(":").c_str(), std::string(13, '-').append(":").c_str());
	for (size_t s = 0; s < scenario_count; s++)
		row(std::string(scenarios[s].label) + ", delivered msg/s", med(tern_runs[s], &RunResult1::per_second),
		    pf_med(s, &RunResult1::per_second), "%.0f");
	for (size_t s : {size_t(0), size_t(3)})
		row(std::string("CPU us per message, ") + scenarios[s].label,
		    med(tern_runs[s], &RunResult1::cpu_us_per_msg), pf_med(s, &RunResult1::cpu_us_per_msg), "%.0f");
	for (size_t s : {size_t(0), size_t(1)}) {
		row(std::string("dot to 250 median ms, ") + scenarios[s].label, med(tern_runs[s], &RunResult1::p50_ms),
		    pf_med(s, &RunResult1::p50_ms), "%.2f");
		row(std::string("dot to 250 p99 ms, ") + scenarios[s].label, med(tern_runs[s], &RunResult1::p99_ms),
		    pf_med(s, &RunResult1::p99_ms), "%.2f");
	}
	auto pf_mem_field = [&](auto f) -> std::optional<double> {
		if (!pf_mem) return std::nullopt;
		return f(*pf_mem);
	};
	row("idle RSS kB (all processes)", double(tern_mem.rss_kb),
	    pf_mem_field([](const MemoryResult& m) { return double(m.rss_kb); }), "%.0f");
	row("idle PSS kB (all processes)", double(tern_mem.pss_kb),
	    pf_mem_field([](const MemoryResult& m) { return double(m.pss_kb); }), "%.0f");
	row("PSS kB per idle connection (" + std::to_string(tern_mem.connections) + " / " +
	        (pf_mem ? std::to_string(pf_mem->connections) : std::string("-")) + " conns)",
	    tern_mem.pss_per_connection_kb, pf_mem_field([](const MemoryResult& m) { return m.pss_per_connection_kb; }),
	    "%.1f");
	const std::pair<const char*, const DiskCeiling*> ceilings[] = {{"serial", &disk_serial},
	                                                               {"8 in parallel", &disk_parallel}};
	for (const auto& [how, c] : ceilings)
		std::printf("| %-56s | %10.0f | %10s | %12s |\n",
		            (std::string("disk ceiling, fsync'd renames/s, ") + how).c_str(), c->per_second, "", "");
	for (const auto& [how, c] : ceilings)
		std::printf("| %-56s | %10.0f | %10s | %12s |\n",
		            (std::string("disk ceiling, CPU us per fsync'd rename, ") + how).c_str(),
		            c->cpu_us_per_sequence, "", "");

	if (!daemon.running())
		std::printf("\nternd is no longer running! log:\n%s\n", daemon.log_text().c_str());
	else
		print_notable_log_lines(daemon.log_text());
	if (postfix) postfix->stop();

	// A large message history (issue: reputation look-ups per delivery):
	// the first scenario again after tests/bench/tern-fill-history added
	// o.history records for alice (other senders and networks).
	if (o.history > 0 && daemon.running()) {
		const char* srcdir = std::getenv("TERN_SRCDIR");
		std::string filler = std::string(srcdir ? srcdir : ".") + "/tests/bench/tern-fill-history";
		daemon.stop();
		std::string command = filler + " '" + daemon.data_dir() + "' alice " + std::to_string(o.history) +
		    " >/dev/null";
		if (std::system(command.c_str()) != 0 || !daemon.start()) {
			std::printf("\nlarge-history run skipped: filling the history or restarting ternd failed\n");
		} else {
			Server filled = tern;
			filled.root = daemon.pid();
			filled.processes = [pid = daemon.pid()] { return std::vector<pid_t>{pid}; };
			std::vector<RunResult1> after;
			for (int rep = 0; rep < o.repetitions; rep++)
				after.push_back(run_load(o, scenarios[0], filled));
			double before_rate = med(tern_runs[0], &RunResult1::per_second);
			double after_rate = med(after, &RunResult1::per_second);
			std::printf(
			    "\nwith %d history records: %s, %.0f msg/s vs %.0f msg/s with an empty history (%+.1f %%); "
			    "CPU %.0f vs %.0f us per message\n",
			    o.history, scenarios[0].label, after_rate, before_rate,
			    before_rate > 0 ? 100.0 * (after_rate - before_rate) / before_rate : 0.0,
			    med(after, &RunResult1::cpu_us_per_msg), med(tern_runs[0], &RunResult1::cpu_us_per_msg));
		}
	}
	return finish();
}
