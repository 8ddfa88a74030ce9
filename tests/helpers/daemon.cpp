#include "helpers/daemon.h"

#include <arpa/inet.h>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <fstream>
#include <map>
#include <mutex>
#include <netinet/in.h>
#include <poll.h>
#include <set>
#include <sstream>
#include <stdexcept>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include <algorithm>
#include <chrono>
#include <thread>

#include <nlohmann/json.hpp>

#include "helpers/smtp_client.h"
#include "helpers/test_config.h"

namespace tern::testing {

namespace {

// exit status as stop()/wait_exit() report it.
int exit_status_of(int status) {
	if (WIFEXITED(status)) return WEXITSTATUS(status);
	return -1;
}

// Child side of a spawn: stdout/stderr to out_fd, default signal handling,
// dies with the test process, then exec.
[[noreturn]] void exec_child(const std::vector<std::string>& argv, int out_fd) {
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	dup2(out_fd, 1);
	dup2(out_fd, 2);
	int devnull = open("/dev/null", O_RDONLY);
	if (devnull >= 0) dup2(devnull, 0);
	// The test process ignores SIGPIPE; ignored dispositions survive exec.
	struct sigaction sa {};
	sa.sa_handler = SIG_DFL;
	for (int sig : {SIGPIPE, SIGTERM, SIGHUP, SIGINT, SIGUSR1, SIGCHLD}) sigaction(sig, &sa, nullptr);
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, nullptr);
	std::vector<char*> args;
	for (auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
	args.push_back(nullptr);
	execv(args[0], args.data());
	dprintf(2, "exec %s: %s\n", args[0], strerror(errno));
	_exit(127);
}

}  // namespace

std::string repo_root() {
	const char* env = getenv("TERN_SRCDIR");
	if (env && *env) return env;
	char buf[4096];
	if (getcwd(buf, sizeof(buf))) return buf;
	return ".";
}

std::string ternd_path() { return repo_root() + "/src/ternd"; }

int free_tcp_port() {
	// Never the same port twice in one test process: two probes close
	// their sockets before the daemon binds, so the kernel could offer one
	// port to both (a daemon's smtp and submission listeners, seen once).
	static std::mutex mutex;
	static std::set<int> handed_out;
	std::lock_guard<std::mutex> lock(mutex);
	for (int attempt = 0; attempt < 1000; ++attempt) {
		int fd = take_tcp_port(0);
		if (fd < 0) throw std::runtime_error("bind for free port");
		int port = listening_port(fd);
		::close(fd);
		if (port > 0 && handed_out.insert(port).second) return port;
	}
	throw std::runtime_error("no free port not handed out before");
}

int take_tcp_port(int port) {
	int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) return -1;
	sockaddr_in sin{};
	sin.sin_family = AF_INET;
	sin.sin_port = htons(static_cast<uint16_t>(port));
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, reinterpret_cast<sockaddr*>(&sin), sizeof(sin)) != 0 || ::listen(fd, 1) != 0) {
		::close(fd);
		return -1;
	}
	return fd;
}

int listening_port(int fd) {
	sockaddr_in sin{};
	socklen_t len = sizeof(sin);
	if (getsockname(fd, reinterpret_cast<sockaddr*>(&sin), &len) != 0) return -1;
	return ntohs(sin.sin_port);
}

const std::string& reachable_program(const std::string& name) {
	struct Copies {
		std::string dir;
		std::map<std::string, std::string> paths;
		~Copies() {
			if (!dir.empty()) remove_tree(dir);
		}
	};
	static Copies copies;
	if (auto it = copies.paths.find(name); it != copies.paths.end()) return it->second;
	if (copies.dir.empty()) {
		copies.dir = make_temp_dir("tern-bin-");
		chmod(copies.dir.c_str(), 0755);
	}
	std::string path = copies.dir + "/" + name;
	write_file(path, read_file(repo_root() + "/src/" + name));
	chmod(path.c_str(), 0755);
	return copies.paths[name] = path;
}

bool wait_for_unix_socket(const std::string& path, int timeout_ms) {
	sockaddr_un addr{};
	addr.sun_family = AF_UNIX;
	if (path.size() >= sizeof(addr.sun_path)) return false;
	std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
	for (int waited = 0;; waited += 20) {
		int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0) return false;
		bool ok = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
		close(fd);
		if (ok) return true;
		if (waited >= timeout_ms) return false;
		usleep(20000);
	}
}

bool tcp_port_listening(int port) {
	char hex[8];
	snprintf(hex, sizeof(hex), ":%04X", port);
	for (const char* file : {"/proc/net/tcp", "/proc/net/tcp6"}) {
		std::ifstream in(file);
		std::string line;
		std::getline(in, line);  // header
		while (std::getline(in, line)) {
			std::istringstream fields(line);
			std::string slot, local, remote, state;
			fields >> slot >> local >> remote >> state;
			if (state == "0A" && local.size() > 5 && local.compare(local.size() - 5, 5, hex) == 0)
				return true;
		}
	}
	return false;
}

std::string read_file(const std::string& path) {
	std::ifstream in(path, std::ios::binary);
	std::ostringstream ss;
	ss << in.rdbuf();
	return ss.str();
}

long process_memory_kb(pid_t pid, const std::string& field) {
	std::string status = read_file("/proc/" + std::to_string(pid) + "/status");
	size_t at = status.find("\n" + field + ":");
	return at == std::string::npos ? -1 : std::strtol(status.c_str() + at + field.size() + 2, nullptr, 10);
}

void write_file(const std::string& path, const std::string& content) {
	std::string tmp = path + ".tmp";
	{
		std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
		out << content;
	}
	// Rename so a reload never sees a half-written file.
	if (rename(tmp.c_str(), path.c_str()) != 0) throw std::runtime_error("rename " + tmp + ": " + strerror(errno));
}

bool file_exists(const std::string& path) {
	struct stat st {};
	return stat(path.c_str(), &st) == 0;
}

void remove_tree(const std::string& path) {
	if (path.size() < 6 || path.rfind("/tmp/", 0) != 0) return;  // only ever under /tmp
	DIR* d = opendir(path.c_str());
	if (d) {
		while (dirent* e = readdir(d)) {
			std::string name = e->d_name;
			if (name == "." || name == "..") continue;
			std::string child = path + "/" + name;
			struct stat st {};
			if (lstat(child.c_str(), &st) == 0 && S_ISDIR(st.st_mode))
				remove_tree(child);
			else
				unlink(child.c_str());
		}
		closedir(d);
	}
	rmdir(path.c_str());
}

namespace {
std::string& temp_dir_base() {
	static std::string base = "/tmp";
	return base;
}
}  // namespace

void set_temp_dir_base(const std::string& dir) { temp_dir_base() = dir; }

std::string make_temp_dir(const std::string& prefix) {
	std::string templ = temp_dir_base() + "/" + prefix + "XXXXXX";
	std::vector<char> buf(templ.begin(), templ.end());
	buf.push_back('\0');
	if (!mkdtemp(buf.data())) throw std::runtime_error(std::string("mkdtemp: ") + strerror(errno));
	return buf.data();
}

std::vector<std::string> maildir_files(const std::string& maildir, const std::string& sub) {
	std::vector<std::string> out;
	std::string dir = maildir + "/" + sub;
	DIR* d = opendir(dir.c_str());
	if (!d) return out;
	while (dirent* e = readdir(d)) {
		std::string name = e->d_name;
		if (name == "." || name == "..") continue;
		out.push_back(dir + "/" + name);
	}
	closedir(d);
	std::sort(out.begin(), out.end());
	return out;
}

std::vector<std::string> wait_for_maildir(const std::string& maildir, size_t n, int timeout_ms) {
	int64_t deadline = now_ms() + timeout_ms;
	for (;;) {
		auto files = maildir_files(maildir);
		if (files.size() >= n || now_ms() > deadline) return files;
		usleep(20000);
	}
}

std::string unfold(const std::string& text) {
	std::string out;
	for (size_t i = 0; i < text.size(); i++) {
		if (text[i] == '\r' && i + 2 < text.size() && text[i + 1] == '\n' &&
		    (text[i + 2] == ' ' || text[i + 2] == '\t')) {
			out += ' ';
			i += 2;
			while (i + 1 < text.size() && (text[i + 1] == ' ' || text[i + 1] == '\t')) i++;
			continue;
		}
		out += text[i];
	}
	return out;
}

RunResult run_command(const std::vector<std::string>& argv, int timeout_ms) {
	RunResult result;
	int fds[2];
	if (pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error("pipe");
	pid_t pid = fork();
	if (pid < 0) throw std::runtime_error("fork");
	if (pid == 0) exec_child(argv, fds[1]);
	::close(fds[1]);
	int64_t deadline = now_ms() + timeout_ms;
	for (;;) {
		int left = int(std::max<int64_t>(0, deadline - now_ms()));
		pollfd pfd{fds[0], POLLIN, 0};
		int n = poll(&pfd, 1, left);
		if (n <= 0) {
			result.timed_out = true;
			kill(pid, SIGKILL);
			break;
		}
		char buf[4096];
		ssize_t got = read(fds[0], buf, sizeof(buf));
		if (got <= 0) break;
		result.output.append(buf, size_t(got));
	}
	::close(fds[0]);
	int status = 0;
	waitpid(pid, &status, 0);
	result.exit_code = result.timed_out ? -1 : exit_status_of(status);
	return result;
}

RunResult run_check_config(const std::string& config_file) {
	return run_command({ternd_path(), "-n", "-c", config_file});
}

TernDaemon::TernDaemon(DaemonOptions options) : options_(std::move(options)) {
	dns_ = std::make_unique<DnsServer>();
	dns_->add_standard_zone();
	dir_ = make_temp_dir();
	mkdir(data_dir().c_str(), 0700);
	if (options_.smtp) smtp_port_ = free_tcp_port();
	if (options_.submission) submission_port_ = free_tcp_port();
	if (options_.submissions) submissions_port_ = free_tcp_port();
	if (options_.start && !start()) fprintf(stderr, "TernDaemon: %s\n", error_.c_str());
}

TernDaemon::~TernDaemon() {
	if (pid_ > 0) kill9();
	if (dns_) dns_->stop();
	if (getenv("TERN_KEEP_TMP"))
		fprintf(stderr, "TernDaemon: kept %s\n", dir_.c_str());
	else
		remove_tree(dir_);
}

std::string TernDaemon::config_json(const std::string& extra_patch) const {
	// The ports are 0 for the services the options leave off.
	nlohmann::json config = base_test_config(
	    {data_dir(), dns_->address(), "debug", test_listener(smtp_port_, submission_port_, submissions_port_)});
	if (!options_.config_patch.empty()) config.merge_patch(nlohmann::json::parse(options_.config_patch));
	if (!extra_patch.empty()) config.merge_patch(nlohmann::json::parse(extra_patch));
	return config.dump(2) + "\n";
}

void TernDaemon::write_config(const std::string& extra_patch) {
	write_file(config_path(), config_json(extra_patch));
	config_written_ = true;
}

void TernDaemon::write_config_text(const std::string& text) {
	write_file(config_path(), text);
	config_written_ = true;
}

std::string TernDaemon::maildir(const std::string& account) const {
	return data_dir() + "/accounts/" + account + "/Maildir";
}

std::string TernDaemon::log_text() const { return read_file(log_path()); }

bool TernDaemon::start() {
	error_.clear();
	if (pid_ > 0) {
		error_ = "already running";
		return false;
	}
	if (!config_written_) write_config();
	std::string binary = ternd_path();
	if (access(binary.c_str(), X_OK) != 0) {
		error_ = "no executable " + binary + " (build it, or set TERN_SRCDIR)";
		return false;
	}
	int log_fd = open(log_path().c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (log_fd < 0) {
		error_ = "open log: " + std::string(strerror(errno));
		return false;
	}
	pid_t pid = fork();
	if (pid < 0) {
		::close(log_fd);
		error_ = "fork failed";
		return false;
	}
	if (pid == 0) exec_child({binary, "-f", "-c", config_path()}, log_fd);
	::close(log_fd);
	pid_ = pid;

	std::vector<int> ports;
	for (int p : {smtp_port_, submission_port_, submissions_port_})
		if (p > 0) ports.push_back(p);
	int64_t deadline = now_ms() + 10000;
	for (;;) {
		int status = 0;
		if (waitpid(pid_, &status, WNOHANG) == pid_) {
			pid_ = -1;
			error_ = "ternd exited early (status " + std::to_string(exit_status_of(status)) + "); log:\n" +
			    log_text();
			return false;
		}
		bool all = true;
		for (int p : ports) all = all && tcp_port_listening(p);
		// ternd binds its control socket after opening the database, a little
		// after the SMTP ports; a test that runs ternctl right after start()
		// must find it answering (a stale socket of a killed ternd refuses).
		if (all && wait_for_unix_socket(data_dir() + "/control.sock", 0)) return true;
		if (now_ms() > deadline) {
			error_ = "ternd does not listen (SMTP ports and control socket) after 10 s; log:\n" +
			    log_text();
			return false;
		}
		usleep(20000);
	}
}

bool TernDaemon::running() {
	if (pid_ <= 0) return false;
	int status = 0;
	if (waitpid(pid_, &status, WNOHANG) == pid_) {
		pid_ = -1;
		return false;
	}
	return true;
}

bool TernDaemon::signal(int sig) { return pid_ > 0 && kill(pid_, sig) == 0; }

int TernDaemon::wait_exit(int timeout_ms) {
	if (pid_ <= 0) return -1;
	int64_t deadline = now_ms() + timeout_ms;
	for (;;) {
		int status = 0;
		pid_t r = waitpid(pid_, &status, WNOHANG);
		if (r == pid_) {
			pid_ = -1;
			return exit_status_of(status);
		}
		if (r < 0) {
			pid_ = -1;
			return -1;
		}
		if (now_ms() > deadline) return -2;
		usleep(10000);
	}
}

int TernDaemon::stop() {
	if (pid_ <= 0) return -1;
	kill(pid_, SIGTERM);
	int status = wait_exit(15000);
	if (status == -2) {
		kill9();
		return -1;
	}
	return status;
}

void TernDaemon::kill9() {
	if (pid_ <= 0) return;
	kill(pid_, SIGKILL);
	int status = 0;
	waitpid(pid_, &status, 0);
	pid_ = -1;
}

pid_t spawn_child(const std::vector<std::string>& argv, const std::string& output) {
	pid_t pid = fork();
	if (pid != 0) return pid;
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	int in = open("/dev/null", O_RDONLY);
	int out = open(output.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
	dup2(in, 0);
	dup2(out, 1);
	dup2(out, 2);
	std::vector<char*> args;
	for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
	args.push_back(nullptr);
	execv(args[0], args.data());
	_exit(127);
}

bool wait_child_listening(pid_t& pid, const std::vector<int>& ports, int timeout_ms) {
	for (int waited = 0; waited <= timeout_ms; waited += 100) {
		bool all = true;
		for (int port : ports) all = all && tcp_port_listening(port);
		if (all) return true;
		if (waitpid(pid, nullptr, WNOHANG) == pid) {
			pid = -1;
			return false;
		}
		std::this_thread::sleep_for(std::chrono::milliseconds(100));
	}
	return false;
}

void stop_child(pid_t& pid) {
	if (pid <= 0) return;
	kill(pid, SIGTERM);
	for (int i = 0; i < 100; ++i) {
		if (waitpid(pid, nullptr, WNOHANG) == pid) {
			pid = -1;
			return;
		}
		std::this_thread::sleep_for(std::chrono::milliseconds(50));
	}
	kill(pid, SIGKILL);
	waitpid(pid, nullptr, 0);
	pid = -1;
}

}  // namespace tern::testing
