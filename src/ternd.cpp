// ternd: the tern SMTP daemon. Flags (man/ternd.8), configuration loading,
// daemonizing, privilege drop, signals, and the event loop.
#include <atomic>
#include <ev.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <utility>
#include <iostream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <tuple>

#include "config/config.h"
#include "core/exit_deadline.h"
#include "core/memory_trim.h"
#include "core/privileges.h"
#include "core/watchers.h"
#include "core/stats.h"
#include "mailauth/resolver.h"
#include "metrics/http.h"
#include "metrics/metrics.h"
#include "net/listener.h"
#include "net/tls.h"
#include "net/udns_resolver.h"
#include "queue/ctl.h"
#include "queue/queue.h"
#include "queue/queue_file.h"
#include "sasl/secrets.h"
#include "store/db.h"
#include "store/history.h"
#include "store/junk_scanner.h"
#include "server/control.h"
#include "server/filter_metrics.h"
#include "server/inbound_ctl.h"
#include "server/local_submit.h"
#include "server/server.h"
#include "util/latest_wins.h"
#include "util/log.h"
#include "util/recvid.h"
#include "util/unique_fd.h"

using namespace tern;

namespace {

std::string usage_text() {
	using namespace config;
	return "usage: ternd [-f] [-n] [-c FILE] [-p FILE] [-l LEVEL]\n"
	       "       ternd --localserve [--data DIR] [-l LEVEL]\n"
	       "  -c, --config FILE     config file (default " TERN_SYSCONFDIR
	       "/tern/tern.json)\n"
	       "  -f, --foreground      stay in the foreground, log to stderr\n"
	       "  -n, --check-config    validate the config, print a summary, exit\n"
	       "  -p, --pid-file FILE   write the process id to FILE (overrides pid_file)\n"
	       "  -l, --log-level LEVEL error, info, debug, trace, traceauth, tracedata\n"
	       "      --localserve      development mode on 127.0.0.1/::1 ports " +
	    std::to_string(localserve_smtp_port) + "/" + std::to_string(localserve_submission_port) + "/" +
	    std::to_string(localserve_submissions_port) +
	    ", no config\n"
	    "      --data DIR        data directory for --localserve (default ./tern-localserve)\n"
	    "  -V, --version         print the version\n"
	    "  -h, --help            this help\n";
}

struct Options {
	std::string config_path = TERN_SYSCONFDIR "/tern/tern.json";
	bool foreground = false;
	bool check_only = false;
	std::string pid_file;
	std::optional<std::string> log_level;
	bool localserve = false;
	std::string data_dir = "./tern-localserve";
};

// Parses the command line; exits on -h, -V and usage errors (status 2).
Options parse_flags(int argc, char** argv) {
	enum { opt_localserve = 1000, opt_data };
	static const option longopts[] = {{"config", required_argument, nullptr, 'c'},
	                                  {"foreground", no_argument, nullptr, 'f'},
	                                  {"check-config", no_argument, nullptr, 'n'},
	                                  {"pid-file", required_argument, nullptr, 'p'},
	                                  {"log-level", required_argument, nullptr, 'l'},
	                                  {"localserve", no_argument, nullptr, opt_localserve},
	                                  {"data", required_argument, nullptr, opt_data},
	                                  {"version", no_argument, nullptr, 'V'},
	                                  {"help", no_argument, nullptr, 'h'},
	                                  {nullptr, 0, nullptr, 0}};
	Options o;
	int ch;
	while ((ch = getopt_long(argc, argv, "c:fnp:l:Vh", longopts, nullptr)) != -1) {
		switch (ch) {
		case 'c': o.config_path = optarg; break;
		case 'f': o.foreground = true; break;
		case 'n': o.check_only = true; break;
		case 'p': o.pid_file = optarg; break;
		case 'l': o.log_level = optarg; break;
		case opt_localserve: o.localserve = true; break;
		case opt_data: o.data_dir = optarg; break;
		case 'V': std::cout << "ternd " TERN_VERSION "\n"; std::exit(0);
		case 'h': std::cout << usage_text(); std::exit(0);
		default: std::cerr << usage_text(); std::exit(2);
		}
	}
	if (optind != argc) {
		std::cerr << "ternd: unexpected argument: " << argv[optind] << "\n" << usage_text();
		std::exit(2);
	}
	if (o.log_level) {
		log::Level l;
		if (!log::parse_level(*o.log_level, l)) {
			std::cerr << "ternd: unknown log level: " << *o.log_level << "\n";
			std::exit(2);
		}
	}
	return o;
}

std::shared_ptr<const config::Config> load_config(const Options& o) {
	if (o.localserve)
		return config::Config::localserve_config(std::filesystem::absolute(o.data_dir).lexically_normal());
	return config::Config::load_file(o.config_path);
}

void raise_fd_limit() {
	// ternd(8) NOTES: raise the open-file soft limit to the hard limit, so many idle
	// connections fit.
	rlimit rl{};
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

void make_dirs(const std::string& path) {
	std::error_code ec;
	std::filesystem::create_directories(path, ec);
	if (ec) throw std::runtime_error("creating " + path + ": " + ec.message());
}

// The start-up report of a ternd going into the background (man/ternd.8
// EXIT STATUS): the process that was started stays until the daemon says
// it runs ("ok") or why it could not start ("error: ..."), then exits 0
// or 1 with that reason on its standard error, so an init script sees a
// failed start at once and why, not only in the log.
constexpr std::string_view start_ok = "ok";

void send_start_report(UniqueFd& report, std::string_view text) {
	while (!text.empty()) {
		ssize_t n = ::write(report.get(), text.data(), text.size());
		if (n < 0 && errno == EINTR) continue;
		if (n <= 0) break;  // the waiting process is gone: nobody to tell
		text.remove_prefix(static_cast<size_t>(n));
	}
	report.reset();
}

// The started process: reaps the intermediate child, waits for the report.
// Signals take their default action again (main blocked the daemon's), so
// Ctrl-C ends the wait; the daemon, in its own session, goes on.
[[noreturn]] void wait_for_start_report(pid_t child, UniqueFd report) {
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, nullptr);
	while (::waitpid(child, nullptr, 0) < 0 && errno == EINTR) {
	}
	std::string text;
	char buf[4096];
	for (;;) {
		ssize_t n = ::read(report.get(), buf, sizeof buf);
		if (n < 0 && errno == EINTR) continue;
		if (n <= 0) break;
		text.append(buf, static_cast<size_t>(n));
	}
	if (text == start_ok) _exit(0);
	// Nothing said: the daemon died before it could (a signal, a crash).
	if (text.empty()) text = "error: ternd ended during start-up without a report; see its log\n";
	std::fputs(text.c_str(), stderr);
	_exit(1);
}

// Into the background: two forks and a new session. `report` becomes the
// write end of the start-up report (send_start_report) as soon as the
// started process waits for it, so a failure from there on is reported.
void daemonize(UniqueFd& report) {
	int ends[2];
	if (::pipe2(ends, O_CLOEXEC) != 0) throw std::runtime_error(std::string("pipe: ") + std::strerror(errno));
	UniqueFd report_in(ends[0]), report_out(ends[1]);
	pid_t pid = fork();
	if (pid < 0) throw std::runtime_error(std::string("fork: ") + std::strerror(errno));
	if (pid > 0) {
		report_out.reset();
		wait_for_start_report(pid, std::move(report_in));
	}
	report_in.reset();
	report = std::move(report_out);
	setsid();
	pid = fork();
	if (pid < 0) throw std::runtime_error(std::string("fork: ") + std::strerror(errno));
	if (pid > 0) _exit(0);
	if (chdir("/") != 0) {
	}
	umask(027);
	int null = open("/dev/null", O_RDWR);
	if (null >= 0) {
		dup2(null, 0);
		dup2(null, 1);
		dup2(null, 2);
		if (null > 2) close(null);
	}
}

// The user ternd switches to: `user` when started as root, else none.
std::optional<core::UserIds> daemon_user(const config::Config& cfg) {
	if (cfg.user.empty() || geteuid() != 0) return std::nullopt;
	auto user = core::lookup_user(cfg.user);
	if (!user) throw std::runtime_error("user \"" + cfg.user + "\" not found");
	return user;
}

// Creates `path` (a folder or, with `file`, an empty log file) when it is
// missing, owned by `user`, so the daemon can still remove (pid file) or
// reopen (log rotation) what it has there after the privilege drop.
void create_for_user(const std::string& path, bool file, const std::optional<core::UserIds>& user) {
	if (path.empty() || access(path.c_str(), F_OK) == 0) return;
	if (file) {
		UniqueFd fd(open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0640));
		if (!fd) return;  // opening it for the log says why
		if (user && fchown(fd.get(), user->uid, user->gid) != 0)
			log::warn("chown of the new log file failed",
			          {{"file", path}, {"error", std::strerror(errno)}});
		return;
	}
	// Folders above it that are missing too are made as they are (the
	// daemon only needs the last one to be its own).
	std::error_code ignored;
	std::filesystem::create_directories(std::filesystem::path(path).parent_path(), ignored);
	if (mkdir(path.c_str(), 0755) != 0) return;  // writing the pid file says why
	if (user && chown(path.c_str(), user->uid, user->gid) != 0)
		log::warn("chown of the new pid file folder failed", {{"dir", path}, {"error", std::strerror(errno)}});
}

void write_pid_file(const std::string& path) {
	std::string tmp = path + ".tmp";
	FILE* f = std::fopen(tmp.c_str(), "w");
	if (!f) throw std::runtime_error("writing pid file " + path + ": " + std::strerror(errno));
	std::fprintf(f, "%d\n", static_cast<int>(getpid()));
	std::fclose(f);
	if (std::rename(tmp.c_str(), path.c_str()) != 0)
		throw std::runtime_error("writing pid file " + path + ": " + std::strerror(errno));
}

void drop_privileges(const std::optional<core::UserIds>& user, const std::string& data_dir) {
	if (!user) {
		// Keeping root is allowed but rarely wanted: say so loudly.
		if (geteuid() == 0) log::warn("running as root; set \"user\" in the config to drop privileges");
		return;
	}
	// The data directory must stay writable for the unprivileged daemon.
	for (const auto& p : {data_dir, data_dir + "/tmp", queue::queue_dir(data_dir), data_dir + "/recvid.key",
	                      data_dir + "/public", data_dir + "/public/sendmail.sock"})
		if (chown(p.c_str(), user->uid, user->gid) != 0 && errno != ENOENT)
			throw std::runtime_error("chown " + p + ": " + std::strerror(errno));
	core::become_user(*user);
	log::info("dropped privileges", {{"user", user->name}});
}

std::string join_lines(const std::vector<std::string>& lines) {
	std::string out;
	for (const auto& l : lines) out += (out.empty() ? "" : "; ") + l;
	return out;
}

// The certificate of the config, or nullptr without one. Localserve makes a
// self-signed one for localhost on first start (doc/behaviour.md "localserve").
std::shared_ptr<const net::TlsServerContext> load_tls(const config::Config& cfg) {
	if (cfg.tls.cert_file.empty()) return nullptr;
	if (cfg.localserve &&
	    (!std::filesystem::exists(cfg.tls.cert_file) || !std::filesystem::exists(cfg.tls.key_file))) {
		net::generate_self_signed(cfg.tls.cert_file, cfg.tls.key_file, "localhost");
		log::info("created a self-signed certificate for localhost", {{"cert", cfg.tls.cert_file}});
	}
	return std::make_shared<net::TlsServerContext>(cfg.tls.cert_file, cfg.tls.key_file);
}

// What `ternd -n` adds to the config's own validation: the certificate
// loads, and the files the daemon reopens as `user` are within its reach
// (core/privileges.h). Problems go to stderr; false when one is an error.
bool check_files_for_start(const config::Config& cfg, const std::string& pid_file) {
	core::StartCheck check;
	try {
		check = core::check_start(cfg, pid_file, core::CheckFor::config_check);
		// The certificate must load, once it is there.
		if (!cfg.localserve)
			if (auto problem = net::certificate_problem(cfg.tls.cert_file, cfg.tls.key_file))
				check.errors.push_back(*problem);
	} catch (const std::exception& e) {
		check.errors.push_back(e.what());
	}
	for (const auto& w : check.warnings) std::cerr << "warning: " << w << "\n";
	for (const auto& e : check.errors) std::cerr << "error: " << e << "\n";
	return check.errors.empty();
}

// The Berkeley DB environment (passwords, limits, queue), opened after the
// privilege drop so its files belong to the daemon's user. Localserve's
// account gets its fixed password on first start.
std::unique_ptr<store::Env> open_store(const config::Config& cfg) {
	auto env = std::make_unique<store::Env>(cfg.data_dir);
	if (cfg.localserve && !env->password_secrets("tern"))
		env->set_password_secrets("tern", sasl::StoredSecrets::derive("terntern").serialize());
	return env;
}

// An exclusive flock(2) on data_dir itself, which one ternd holds while it
// runs; the kernel lets it go when the process ends, however it ends.
UniqueFd lock_data_dir(const std::string& data_dir) {
	UniqueFd fd(::open(data_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
	if (!fd) throw std::runtime_error("opening " + data_dir + ": " + std::strerror(errno));
	if (flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
		if (errno == EWOULDBLOCK)
			throw std::runtime_error("another ternd uses " + data_dir + " (data_dir is locked)");
		throw std::runtime_error("locking " + data_dir + ": " + std::strerror(errno));
	}
	return fd;
}

// data_dir/tmp holds only the files of DATA transfers in progress: at start
// none is in progress, so every data-* file there is a leftover of a daemon
// that was killed (a stored message is never in tmp).
void remove_stale_temp_files(const std::string& tmp_dir) {
	std::error_code ec;
	size_t removed = 0;
	for (std::filesystem::directory_iterator it(tmp_dir, ec), end; !ec && it != end; it.increment(ec)) {
		if (it->path().filename().string().rfind("data-", 0) != 0) continue;
		std::error_code rm;
		if (std::filesystem::remove(it->path(), rm)) ++removed;
	}
	if (removed)
		log::info("removed leftover temporary files", {{"dir", tmp_dir}, {"count", std::to_string(removed)}});
}

// The control socket's commands (man/ternd.8 "CONTROL SOCKET"); each is the
// ternctl command of the same name, run on a worker against our Env. `cfg`
// is read on the loop only (a reload replaces it there).
void add_control_commands(server::ControlServer& control, const std::shared_ptr<const config::Config>& cfg,
                          store::Env* env, queue::Queue* outq, const bool& stopping) {
	// `ternctl passwd ACCOUNT`: ternctl derives the secrets; only they come here.
	control.add("passwd", [&cfg, env](const std::vector<std::string>& args) -> server::ControlJob {
		if (args.size() != 2) throw std::runtime_error("usage: passwd ACCOUNT SECRETS");
		return [current = cfg, env, account = args[0], blob = args[1]]() -> server::ControlOutcome {
			if (!current->accounts.count(account))
				return {{1, "", "error: no such account: " + account + "\n"}, {}};
			if (!sasl::StoredSecrets::parse(blob))
				return {{1, "", "error: malformed password secrets\n"}, {}};
			env->set_password_secrets(account, blob);
			return {{0, "password updated for " + account + "\n", ""}, {}};
		};
	});
	// `ternctl checkpassword`: ternctl sends the account and the SASLprep'ed
	// password; the answer is only yes or no, never a secret.
	control.add("checkpassword", [&cfg, env](const std::vector<std::string>& args) -> server::ControlJob {
		if (args.size() != 2) throw std::runtime_error("usage: checkpassword ACCOUNT PASSWORD");
		return [current = cfg, env, account = args[0], password = args[1]]() -> server::ControlOutcome {
			bool good = false;
			if (current->accounts.count(account))
				if (auto blob = env->password_secrets(account))
					if (auto secrets = sasl::StoredSecrets::parse(*blob))
						good = secrets->check_password(password);
			return {{good ? 0 : 1, good ? "yes\n" : "no\n", ""}, {}};
		};
	});
	// `ternctl junk …`, `dmarc reports`, `tlsrpt reports`: reads too.
	for (std::string command : {"junk", "dmarc", "tlsrpt"}) {
		control.add(command, [&cfg, env, command](const std::vector<std::string>& args) -> server::ControlJob {
			return [current = cfg, env, command, args]() -> server::ControlOutcome {
				if (command == "junk") return {server::run_junk_command(*env, *current, args), {}};
				return {server::run_reports_command(*env, command == "tlsrpt", args), {}};
			};
		});
	}
	// `ternctl queue …`: every subcommand, reads too, so ternctl never joins
	// the environment while we run.
	control.add("queue", [&cfg, env, outq, &stopping](const std::vector<std::string>& args) -> server::ControlJob {
		std::function<bool(const std::string&)> in_progress;
		if (outq) in_progress = outq->enqueues_in_progress();
		return [current = cfg, env, outq, &stopping, args, in_progress]() -> server::ControlOutcome {
			std::ostringstream out, err;
			auto result = queue::run_queue_command(*env, *current, args, out, err, in_progress);
			server::ControlOutcome outcome{{result.status, out.str(), err.str()}, {}};
			if (result.changed && outq)
				outcome.then_on_loop = [outq, &stopping] {
					if (!stopping) outq->resync();
				};
			return outcome;
		};
	});
}

void apply_log_settings(const config::Config& cfg, const Options& o) {
	log::Level level = cfg.log.level;
	if (o.log_level) log::parse_level(*o.log_level, level);
	log::set_level(level);
	// With -f (and in localserve) logs go to stderr; log.file/syslog are ignored.
	if (o.foreground || o.localserve) return;
	if (!cfg.log.file.empty()) {
		if (!log::set_sink(log::Sink::file, cfg.log.file))
			throw std::runtime_error("opening log file " + cfg.log.file + ": " + std::strerror(errno));
	} else if (cfg.log.syslog) {
		log::set_sink(log::Sink::syslog);
	}
}

// Upkeep of the database environment, every few seconds (man/ternd.8
// FILES "db/").
//
// A process that died inside the environment (a ternctl run while we
// were down and still running, a db_* tool) must not keep its locks:
// failchk finds it. Every process inside holds the region files (__db.0NN)
// open until it leaves, so an inotify watch on the environment's directory
// sees each one leave, cleanly or not; failchk runs on the next two ticks
// after that (the second in case the first met the dead process still a
// zombie, which counts as alive). An idle daemon alone in the environment
// then touches none of the library's code or region pages. Without the
// watch (inotify unavailable, or its queue overflowed) failchk runs on
// every tick. It runs on a thread of its own: the workers may all be
// waiting for a lock of the dead process, which only failchk releases.
//
// The checkpoint that lets old log files go (DB_LOG_AUTO_REMOVE) runs on a
// worker on the ticks after transactions that wrote committed, so that no
// write waits for it and a server that only receives mail (whose history
// writes are most of its writes) does not keep every log file until it
// stops.
class DatabaseUpkeep {
public:
	DatabaseUpkeep(struct ev_loop* loop, core::WorkerPool& workers, store::Env& env)
		: workers_(workers), env_(env), timer_(loop, [this] { run(); }),
		  watch_(loop, [this](int) { read_events(); }) {
		failchk_thread_.emplace(loop, 1, "tern-failchk");
		inotify_.reset(::inotify_init1(IN_NONBLOCK | IN_CLOEXEC));
		if (inotify_ &&
		    ::inotify_add_watch(inotify_.get(), env.path().c_str(), IN_CLOSE_WRITE | IN_CLOSE_NOWRITE) >= 0)
			watch_.set(inotify_.get(), EV_READ);
		else
			inotify_.reset();
		writes_seen_ = env.writes_committed();
		ticks_since_write_ = checkpoint_ticks_after_write + 1;
		timer_.start(interval_s);
	}
	// No new check or checkpoint. The failchk thread is joined here, under
	// the stop's deadline (D39: a check stuck in the file system must not
	// hold the stop for ever); a checkpoint in flight finishes on its
	// worker, drained with the others.
	void stop() {
		timer_.stop();
		watch_.stop();
		failchk_thread_.reset();
	}

private:
	static constexpr double interval_s = 5.0;
	static constexpr int ticks_after_leave = 2;
	static constexpr int checkpoint_ticks_after_write = 13;  // 65 s: past txn_checkpoint's minute
	void run() {
		timer_.start(interval_s);
		checkpoint_if_written();
		if (checking_) return;
		if (inotify_ && pending_ticks_ == 0) return;
		if (pending_ticks_ > 0) --pending_ticks_;
		run_one(*failchk_thread_, checking_, "database check",
		        [envp = &env_] { envp->check_dead_processes(); });
	}
	// Asked on every tick from the first that sees a write (a transaction
	// that wrote committed) until a minute and a tick after the last write,
	// so that the checkpoint "a minute after the last one" also comes when
	// the writes stopped before it (and a failed one is tried again); then
	// an idle daemon leaves the library alone.
	void checkpoint_if_written() {
		const uint64_t writes = env_.writes_committed();
		if (writes != writes_seen_) {
			writes_seen_ = writes;
			ticks_since_write_ = 0;
		} else if (ticks_since_write_ > checkpoint_ticks_after_write) {
			return;
		}
		++ticks_since_write_;
		if (checkpointing_) return;
		run_one(workers_, checkpointing_, "database checkpoint", [envp = &env_] { envp->checkpoint(); });
	}
	// One job at a time: `running` is set until its completion; a failure
	// is logged as `what` and left to the next tick.
	template <class Job>
	void run_one(core::WorkerPool& pool, bool& running, const char* what, Job job) {
		running = true;
		pool.submit(
		    [what, job] {
			    try {
				    job();
			    } catch (const std::exception& e) {
				    log::error(what, {{"error", e.what()}});
			    }
		    },
		    [&running] { running = false; });
	}
	// On the loop: a region file closed by some process (never by us
	// while we run: we hold ours open), or events lost.
	void read_events() {
		alignas(struct inotify_event) char buf[4096];
		ssize_t n;
		while ((n = ::read(inotify_.get(), buf, sizeof buf)) > 0) {
			for (ssize_t at = 0; at < n;) {
				const auto* e = reinterpret_cast<const struct inotify_event*>(buf + at);
				if ((e->mask & IN_Q_OVERFLOW) ||
				    (e->len > 0 && std::strncmp(e->name, "__db.0", 6) == 0))
					pending_ticks_ = ticks_after_leave;
				at += static_cast<ssize_t>(sizeof(struct inotify_event) + e->len);
			}
		}
	}
	core::WorkerPool& workers_;
	std::optional<core::WorkerPool> failchk_thread_;  // until stop()
	store::Env& env_;
	bool checking_ = false;
	int pending_ticks_ = 0;
	bool checkpointing_ = false;
	uint64_t writes_seen_ = 0;   // Env::writes_committed at the last tick that saw it change
	int ticks_since_write_ = 0;  // ticks since the last that saw writes_committed change
	UniqueFd inotify_;
	core::TimerWatcher timer_;
	core::IoWatcher watch_;
};

// The Maildir scanner (doc/behaviour.md §9 "Learning from the mailbox"):
// one pass at a time on a worker, every message_history.scan_interval_s of
// the config in force (`cfg` is the daemon's, replaced by reloads).
class MaildirScan {
public:
	MaildirScan(struct ev_loop* loop, core::WorkerPool& workers, store::Env& env,
	            const std::shared_ptr<const config::Config>& cfg)
		: loop_(loop), workers_(workers), env_(env), cfg_(cfg), timer_(loop, [this] { run(); }) {
		timer_.start(1.0);
	}
	// For the metrics: when the last complete pass began, and the history's
	// size it found (written by the scanner's worker, read by /metrics).
	std::atomic<int64_t> last_complete_scan{static_cast<int64_t>(std::time(nullptr))};
	std::atomic<uint64_t> history_records{0};
	// Runs fn on the loop once the first pass is over (at once when it is,
	// or when there is none): start-up's memory is given back after it.
	void after_first_pass(std::function<void()> fn) {
		if (first_pass_done_ || cfg_->localserve)
			fn();
		else
			after_first_pass_ = std::move(fn);
	}
	// No pass starts after this (the stop drains the workers, and a pass
	// over a large Maildir would hold it up); one in flight finishes.
	void stop() {
		timer_.stop();
		stopped_ = true;
	}
	// A reload put a config in force: a changed scan_interval_s counts
	// from when the last pass was due, not after the old interval ran out
	// (an interval shortened from a day must not wait out the day). The
	// first pass, a second after the start, keeps its time.
	void config_changed() {
		if (stopped_ || !last_due_) return;
		double next = static_cast<double>(cfg_->message_history.scan_interval_s);
		timer_.start(std::max(0.0, *last_due_ + next - ev_now(loop_)));
	}

private:
	void run() {
		last_due_ = ev_now(loop_);
		timer_.start(static_cast<double>(cfg_->message_history.scan_interval_s));
		if (running_ || cfg_->localserve) return;
		running_ = true;
		workers_.submit([this, current = cfg_] { scan(*current); }, [this] { pass_done(); });
	}
	void pass_done() {
		running_ = false;
		first_pass_done_ = true;
		if (auto fn = std::exchange(after_first_pass_, nullptr)) fn();
	}
	// On a worker.
	void scan(const config::Config& current) {
		try {
			int64_t started = std::time(nullptr);
			auto stats = scanner_.scan(current, env_, started);
			// A pass with a failed account (logged by the scanner) is no
			// complete one: the lag goes on growing.
			if (stats.accounts_failed == 0) last_complete_scan = started;
			history_records = store::MessageHistory(env_).record_count();
			if (stats.folders_read > 0 || stats.folders_gone > 0 || stats.accounts_failed > 0)
				log::event(log::Level::debug, 0, "maildir scan",
				           {{"folders", std::to_string(stats.folders_read)},
				            {"folders_gone", std::to_string(stats.folders_gone)},
				            {"marks_changed", std::to_string(stats.marks_changed)},
				            {"expunged", std::to_string(stats.expunged)},
				            {"pruned", std::to_string(stats.pruned)},
				            {"accounts_failed", std::to_string(stats.accounts_failed)}});
		} catch (const std::exception& e) {
			log::error("maildir scan", {{"error", e.what()}});
		}
	}
	struct ev_loop* loop_;
	core::WorkerPool& workers_;
	store::Env& env_;
	const std::shared_ptr<const config::Config>& cfg_;
	store::JunkScanner scanner_;
	bool running_ = false;
	bool stopped_ = false;
	std::optional<double> last_due_;  // loop time the timer last fired
	bool first_pass_done_ = false;
	std::function<void()> after_first_pass_;
	core::TimerWatcher timer_;
};

// The daemon's parts, in the order they are built. Members are destroyed in
// reverse order: sendmail.tern's listener and the control server before the
// queue, the queue before the server, the server before the store.
class Daemon {
public:
	Daemon(Options o, std::shared_ptr<const config::Config> c) : opts(std::move(o)), cfg(std::move(c)) {
		pid_file = opts.pid_file.empty() ? cfg->pid_file : opts.pid_file;
		// Absolute: the daemon changes to / before writing it and removing it at exit.
		if (!pid_file.empty()) pid_file = std::filesystem::absolute(pid_file).lexically_normal().string();
		// Absolute too: SIGHUP reads it again after the change to /, and the
		// config's relative paths are relative to its folder.
		opts.config_path = std::filesystem::absolute(opts.config_path).lexically_normal().string();
	}
	// Everything up to the event loop; false (logged) when a step failed.
	bool start();
	// In the background, after start() failed: the report's pipe and the
	// reason, for main to send once this daemon is gone.
	std::pair<UniqueFd, std::string> take_start_failure() {
		return {std::move(start_report), std::move(start_failure)};
	}
	// Runs the loop until a shutdown signal, then stops everything in order.
	// `handled`: the signals start() kept blocked until their watchers exist.
	void run(const sigset_t& handled);

private:
	using MetricsResponders = std::vector<std::unique_ptr<metrics::HttpResponder>>;
	struct Sockets {
		std::vector<net::ListenSocket> smtp;
		server::LocalSubmitSocket local_submit;
	};
	void prepare_data_dir(const std::optional<core::UserIds>& user);
	Sockets bind_sockets();
	void become_daemon(const std::optional<core::UserIds>& user);
	void build_services(Sockets sockets, const std::string& recvid_key);
	void shutdown();
	void reload();
	void apply_reload(const std::shared_ptr<const config::Config>& next,
	                  const std::shared_ptr<const net::TlsServerContext>& tls);
	MetricsResponders start_metrics(const MaildirScan& scan);
	void stop_after_loop(DatabaseUpkeep& db_upkeep, MaildirScan& scan, MetricsResponders& metrics_http);

	Options opts;
	std::shared_ptr<const config::Config> cfg;
	std::string pid_file;
	bool pid_file_written = false;
	UniqueFd data_dir_lock;           // held for the daemon's life, across the fork
	UniqueFd start_report;            // in the background, until the loop runs or main reports the failure
	std::string start_failure;        // what start() could not do, for the report
	std::unique_ptr<store::Env> env;  // outlives the server, which uses it
	std::unique_ptr<server::Server> srv;
	std::unique_ptr<queue::Queue> outq;              // destroyed before the server (it uses its pool and resolver)
	std::unique_ptr<server::ControlServer> control;  // destroyed after the worker pool drained
	bool stopping = false;                           // the loop ended: completions only finish their work
	// SIGHUPs: loads run on workers side by side, and one that finishes
	// after a later one's came in force is stale (the file changed again
	// between them).
	LatestWins reloads;
	std::unique_ptr<server::LocalSubmitListener> local_submit;  // sendmail.tern's socket; uses server and queue
	MaildirScan* maildir_scan = nullptr;                        // while run() has one
	struct ev_loop* loop = nullptr;
	// metrics: the /metrics sockets and their addresses, bound with the SMTP
	// ports.
	std::vector<std::pair<std::string, UniqueFd>> metrics_sockets;
};

// data_dir is the daemon's own (drop_privileges hands it over): the start
// check then looks at what is inside as `user` will. Every file ternd
// reopens as `user` (reloads, log rotation) must be within its reach now,
// not at the first reload.
void Daemon::prepare_data_dir(const std::optional<core::UserIds>& user) {
	make_dirs(cfg->data_dir);
	// Before anything in data_dir is touched: a second ternd started on the
	// same data_dir must not clear the first one's tmp/ or replace its
	// sockets (man/ternd.8 "FILES").
	data_dir_lock = lock_data_dir(cfg->data_dir);
	if (user && chown(cfg->data_dir.c_str(), user->uid, user->gid) != 0)
		throw std::runtime_error("chown " + cfg->data_dir + ": " + std::strerror(errno));
	core::StartCheck check = core::check_start(*cfg, pid_file, core::CheckFor::start);
	for (const auto& w : check.warnings) log::warn(w);
	if (!check.errors.empty()) throw std::runtime_error(join_lines(check.errors));
	if (!opts.foreground && !opts.localserve) create_for_user(cfg->log.file, true, user);
	apply_log_settings(*cfg, opts);
	make_dirs(cfg->data_dir);
	make_dirs(cfg->data_dir + "/tmp");
	remove_stale_temp_files(cfg->data_dir + "/tmp");
	// The queue's files live here (tern.json(5) FILES); there from the
	// start, so the layout is whole before the first message is queued.
	if (!queue::make_queue_dir(*cfg))
		throw std::runtime_error("creating " + queue::queue_dir(cfg->data_dir) + ": " + std::strerror(errno));
}

// Every listening socket, bound before the privilege drop.
Daemon::Sockets Daemon::bind_sockets() {
	std::vector<std::string> warnings;
	auto smtp = net::open_listeners(*cfg, cfg->localserve, warnings);
	for (const auto& w : warnings) log::warn(w);
	// sendmail.tern's socket (man/sendmail.tern.8), ready with the ports.
	server::LocalSubmitSocket local_socket = server::open_local_submit_socket(cfg->data_dir);
	// metrics: localserve listens on ::1 as well, as its SMTP ports do, and
	// goes on without either (1080 is often taken, ::1 may be missing).
	std::vector<std::string> metrics_addresses;
	if (!cfg->metrics.listen.empty()) metrics_addresses.push_back(cfg->metrics.listen);
	if (cfg->localserve) metrics_addresses.push_back("[::1]:" + std::to_string(config::localserve_metrics_port));
	for (const std::string& address : metrics_addresses) {
		try {
			metrics_sockets.emplace_back(address, metrics::open_metrics_socket(address));
		} catch (const std::exception& e) {
			if (!cfg->localserve) throw;
			log::info(std::string(e.what()) + "; no metrics there");
		}
	}
	return Sockets{std::move(smtp), std::move(local_socket)};
}

// Into the background (unless -f or localserve), the pid file, then the
// privilege drop.
void Daemon::become_daemon(const std::optional<core::UserIds>& user) {
	if (!opts.foreground && !opts.localserve) daemonize(start_report);
	if (!pid_file.empty()) {
		create_for_user(std::filesystem::path(pid_file).parent_path().string(), false, user);
		write_pid_file(pid_file);
		pid_file_written = true;
	}
	drop_privileges(user, cfg->data_dir);
	if (cfg->localserve) {
		log::info("localserve: account tern, address tern@localhost, password terntern",
		          {{"maildir", cfg->accounts.begin()->second.maildir}});
	}
}

// The loop, the server and what hangs off it. The loop and the worker
// threads are made after the fork; the store and the control socket after
// the privilege drop, so their files belong to the daemon's user.
void Daemon::build_services(Sockets sockets, const std::string& recvid_key) {
	loop = ev_default_loop(EVFLAG_AUTO);
	std::unique_ptr<mailauth::Resolver> resolver;
	if (cfg->localserve)
		resolver = std::make_unique<mailauth::OfflineResolver>();
	else
		resolver = std::make_unique<net::UdnsResolver>(loop, cfg->dns.servers, cfg->dns.timeout_ms);
	srv = std::make_unique<server::Server>(loop, cfg, std::move(sockets.smtp), recvid_key, std::move(resolver));
	srv->set_tls_context(load_tls(*cfg));
	env = open_store(*cfg);
	srv->set_env(env.get());
	if (!cfg->localserve) {
		// Localserve never sends mail out: submissions go straight to its
		// account's Maildir.
		outq = std::make_unique<queue::Queue>(loop, srv->workers(), srv->resolver(), *env, cfg);
		srv->set_outbound(outq.get());
	}
	control = std::make_unique<server::ControlServer>(loop, srv->workers(), cfg->data_dir + "/control.sock");
	add_control_commands(*control, cfg, env.get(), outq.get(), stopping);
	// sendmail.tern (man/sendmail.tern.8): mailq reads the queue
	// through ternd, as local users cannot open the database.
	store::Env* store_env = env.get();
	local_submit = std::make_unique<server::LocalSubmitListener>(
	    *srv, std::move(sockets.local_submit), [store_env] { return queue::mailq_text(*store_env); });
}

bool Daemon::start() {
	try {
		log::set_sink(log::Sink::stderr_sink);
		auto user = daemon_user(*cfg);
		prepare_data_dir(user);
		Sockets sockets = bind_sockets();
		std::string key = ReceivedIdGenerator::load_or_create_key(cfg->data_dir + "/recvid.key");
		become_daemon(user);
		build_services(std::move(sockets), key);
		return true;
	} catch (const std::exception& e) {
		log::error("cannot start", {{"error", e.what()}});
		if (pid_file_written) unlink(pid_file.c_str());
		// Before the fork standard error is still the caller's; after it,
		// the started process prints the reason (daemonize), once this
		// daemon has let go of its ports and data_dir (main).
		std::string reason = std::string("error: ") + e.what() + "\n";
		if (start_report)
			start_failure = reason;
		else
			std::cerr << reason;
		return false;
	}
}

void Daemon::shutdown() {
	if (local_submit) local_submit->stop();
	srv->begin_shutdown();
}

// SIGHUP. Reading the config and certificate files is disk I/O: a worker
// does it, the loop only swaps in the result.
void Daemon::reload() {
	if (cfg->localserve) return;
	struct Loaded {
		std::shared_ptr<const config::Config> cfg;
		std::shared_ptr<const net::TlsServerContext> tls;
		std::string error;
	};
	auto loaded = std::make_shared<Loaded>();
	std::string path = opts.config_path;
	const uint64_t this_reload = reloads.start();
	srv->workers().submit(
	    [loaded, path] {
		    try {
			    loaded->cfg = config::Config::load_file(path);
			    // A signing key that does not load keeps the old config:
			    // mail must not go out unsigned because of a typo.
			    std::vector<std::string> key_errors;
			    for (const config::DkimSelector* sel : loaded->cfg->unloaded_signing_keys())
				    key_errors.push_back(sel->key_error);
			    if (!key_errors.empty()) throw std::runtime_error(join_lines(key_errors));
			    loaded->tls = load_tls(*loaded->cfg);
		    } catch (const std::exception& e) {
			    loaded->error = e.what();
		    }
	    },
	    [this, loaded, this_reload] {
		    if (reloads.overtaken(this_reload)) return;
		    if (!loaded->error.empty()) {
			    // doc/behaviour.md "Logs, signals, metrics": an invalid new config keeps the old one.
			    log::error("reload failed, keeping the old configuration", {{"error", loaded->error}});
			    return;
		    }
		    reloads.put_in_force(this_reload);
		    apply_reload(loaded->cfg, loaded->tls);
	    });
}

void Daemon::apply_reload(const std::shared_ptr<const config::Config>& next,
                          const std::shared_ptr<const net::TlsServerContext>& tls) {
	srv->reload(next);
	if (outq) outq->reload(next);
	srv->set_tls_context(tls);
	// The new log.level, unless -l overrides it, before the line is written.
	try {
		apply_log_settings(*next, opts);
	} catch (const std::exception& e) {
		log::error("reopening log", {{"error", e.what()}});
	}
	cfg = next;
	if (maildir_scan) maildir_scan->config_changed();
	log::info("configuration reloaded", {{"accounts", std::to_string(cfg->accounts.size())}});
}

// metrics (doc/behaviour.md "Logs, signals, metrics"): gauges and queue
// counters are read from the live objects when /metrics is rendered.
Daemon::MetricsResponders Daemon::start_metrics(const MaildirScan& scan) {
	core::stats().set_sampler("tern_connections_open", {},
	                          [this] { return static_cast<double>(srv->open_connections()); });
	core::stats().set_sampler("tern_worker_jobs_queued", {},
	                          [this] { return static_cast<double>(srv->workers().pending()); });
	core::stats().set_sampler("tern_history_records", {},
	                          [&scan] { return static_cast<double>(scan.history_records.load()); });
	core::stats().set_sampler("tern_maildir_scan_lag_seconds", {}, [&scan] {
		return static_cast<double>(std::time(nullptr) - scan.last_complete_scan.load());
	});
	server::register_filter_metrics(*srv);
	if (outq) {
		core::stats().set_sampler("tern_queue_messages", {},
		                          [this] { return static_cast<double>(outq->size()); });
		core::stats().set_sampler("tern_queue_deliveries_total", {"delivered"},
		                          [this] { return static_cast<double>(outq->counters().delivered); });
		core::stats().set_sampler("tern_queue_deliveries_total", {"local"},
		                          [this] { return static_cast<double>(outq->counters().local); });
		core::stats().set_sampler("tern_queue_deliveries_total", {"failed"},
		                          [this] { return static_cast<double>(outq->counters().failed); });
		core::stats().set_sampler("tern_queue_deliveries_total", {"retried"},
		                          [this] { return static_cast<double>(outq->counters().retried); });
	}
	MetricsResponders responders;
	for (auto& [address, socket] : metrics_sockets) {
		responders.push_back(std::make_unique<metrics::HttpResponder>(
		    loop, std::move(socket), [] { return metrics::render(core::stats()); }));
		responders.back()->start();
		log::info("metrics listening", {{"address", address}});
	}
	metrics_sockets.clear();
	return responders;
}

// After the loop: outbound sessions stop (their records stay for the next
// start); deliveries whose clients went away still finish before we exit,
// unless a thread is stuck: then the deadline ends the process
// (core/exit_deadline.h).
void Daemon::stop_after_loop(DatabaseUpkeep& db_upkeep, MaildirScan& scan, MetricsResponders& metrics_http) {
	constexpr double threads_stop_deadline_s = 30;
	core::ExitDeadline deadline(threads_stop_deadline_s);
	stopping = true;
	db_upkeep.stop();
	scan.stop();
	if (outq) outq->shutdown();
	metrics_http.clear();  // metrics: no page rendered past this point
	core::stats().clear_samplers();
	// A disk thread submits the history records of the copies it renamed
	// to the workers, and a worker's completion may start disk work: both
	// pools until neither has any.
	do {
		srv->workers().drain();
		srv->maildir_writer().drain();
	} while (srv->workers().pending() > 0 || srv->maildir_writer().pending() > 0);
	control.reset();  // removes the socket file
	local_submit.reset();
	outq.reset();
	srv.reset();
	if (!pid_file.empty()) unlink(pid_file.c_str());
	log::info("ternd stopped");
}

void Daemon::run(const sigset_t& handled) {
	core::SignalWatcher sigterm(loop, SIGTERM, [this] { shutdown(); });
	core::SignalWatcher sigint(loop, SIGINT, [this] { shutdown(); });
	core::SignalWatcher sigusr1(loop, SIGUSR1, [] { log::reopen(); });
	// SIGUSR2: `ternctl queue kick/drop` changed the queue in the database.
	core::SignalWatcher sigusr2(loop, SIGUSR2, [this] {
		if (outq) outq->resync();
	});
	core::SignalWatcher sighup(loop, SIGHUP, [this] { reload(); });
	for (auto* w : {&sigterm, &sigint, &sigusr1, &sigusr2, &sighup}) w->unref();
	sigprocmask(SIG_UNBLOCK, &handled, nullptr);

	srv->start();
	if (outq) outq->start();
	control->start();
	DatabaseUpkeep db_upkeep(loop, srv->workers(), *env);
	MaildirScan scan(loop, srv->workers(), *env, cfg);
	// Reloads reach the scanner while it exists, however run() ends.
	maildir_scan = &scan;
	struct Unregister {
		MaildirScan*& scan;
		~Unregister() { scan = nullptr; }
	} unregister_scan{maildir_scan};
	if (local_submit) local_submit->start();
	MetricsResponders metrics_http = start_metrics(scan);
	log::info("ternd started", {{"version", TERN_VERSION}, {"hostname", cfg->hostname}});
	if (start_report) send_start_report(start_report, start_ok);
	// Free heap a burst left behind goes back to the system (a low-memory
	// VPS keeps its RAM): checked every 20 s, given back once more than
	// 1 MiB of it became resident with no client connected, more than
	// 8 MiB while clients are (a busy server may never be without one, and
	// 5,000 TLS connections come and gone leave 170 MB free); below that,
	// the walk through the heaps is not worth it.
	constexpr double heap_trim_interval_s = 20;
	constexpr long long idle_trim_threshold = 1 << 20;
	constexpr long long busy_trim_threshold = 8 << 20;
	core::FreeHeapTrimmer heap_trimmer;
	// Once the loop has started everything (queue load, listeners) and the
	// first Maildir scan is over, give back the pages start-up touched; the
	// heap trimmer counts from then.
	core::TimerWatcher trim(loop, [&scan, &heap_trimmer] {
		scan.after_first_pass([&heap_trimmer] {
			core::trim_startup_memory();
			heap_trimmer.restart();
		});
	});
	trim.start(1.0);
	core::TimerWatcher heap_trim(loop, [this, &heap_trim, &heap_trimmer] {
		heap_trimmer.trim_if_grown(srv->open_connections() == 0 ? idle_trim_threshold : busy_trim_threshold);
		heap_trim.start(heap_trim_interval_s);
	});
	heap_trim.start(heap_trim_interval_s);
	ev_run(loop, 0);
	stop_after_loop(db_upkeep, scan, metrics_http);
}

// Signals that arrive before the loop watches them (say, a SIGTERM right
// after the ports are bound) wait, blocked, instead of killing us.
sigset_t block_handled_signals() {
	sigset_t handled;
	sigemptyset(&handled);
	for (int sig : {SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGUSR2}) sigaddset(&handled, sig);
	sigprocmask(SIG_BLOCK, &handled, nullptr);
	return handled;
}

}  // namespace

int main(int argc, char** argv) {
	core::set_allocator_limits();  // before any thread and any large block
	Options opts = parse_flags(argc, argv);
	std::shared_ptr<const config::Config> cfg;
	try {
		cfg = load_config(opts);
	} catch (const std::exception& e) {
		std::cerr << "error: " << e.what() << "\n";
		return 1;
	}
	if (opts.check_only) {
		if (!check_files_for_start(*cfg, opts.pid_file.empty() ? cfg->pid_file : opts.pid_file)) return 1;
		std::cout << cfg->summary();
		return 0;
	}

	signal(SIGPIPE, SIG_IGN);
	sigset_t handled = block_handled_signals();
	raise_fd_limit();
	UniqueFd report;
	std::string failure;
	{
		Daemon ternd(std::move(opts), std::move(cfg));
		if (ternd.start()) {
			ternd.run(handled);
			return 0;
		}
		std::tie(report, failure) = ternd.take_start_failure();
	}
	// The failed daemon's ports and data_dir lock are closed now: a restart
	// right after the report finds them free.
	if (report) send_start_report(report, failure);
	return 1;
}
