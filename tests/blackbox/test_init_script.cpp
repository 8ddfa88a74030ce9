// The sysvinit script (contrib/ternd.init.in, installed as /etc/init.d/ternd)
// run as service(8) runs it, against a private ternd: its exit statuses are
// the ones LSB init scripts give (doc/behaviour.md "init script"), which
// service(8), monitoring and systemd's generated units read.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>

#include "bb.h"

namespace {

std::string replaced(std::string text, const std::string& from, const std::string& to) {
	for (size_t at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size()))
		text.replace(at, from.size(), to);
	return text;
}

// The init script as `make install` makes it, with this build's ternd, the
// test's config under DIR/etc/tern and its pid file in DIR/run instead of
// /run/tern (the script's only path of its own).
struct InitScript {
	std::string path, pid_file;
	explicit InitScript(TernDaemon& d) {
		std::filesystem::path daemon(ternd_path());
		std::string text = read_file(repo_root() + "/contrib/ternd.init.in");
		text = replaced(text, "@SBINDIR@", daemon.parent_path().string());
		text = replaced(text, "@SYSCONFDIR@", d.dir() + "/etc");
		pid_file = d.dir() + "/run/ternd.pid";
		const std::string system_pid_file = "PIDFILE=/run/tern/ternd.pid\n";
		REQUIRE(text.find(system_pid_file) != std::string::npos);
		text = replaced(text, system_pid_file, "PIDFILE=" + pid_file + "\n");
		// The daemon's name is how start-stop-daemon --exec knows it.
		REQUIRE(daemon.filename() == "ternd");
		path = d.dir() + "/ternd.init";
		write_file(path, text);
		chmod(path.c_str(), 0755);  // restart runs it again as "$0"
		std::filesystem::create_directories(d.dir() + "/etc/tern");
		write_file(d.dir() + "/etc/tern/tern.json",
		           d.config_json(R"({"log": {"file": ")" + d.log_path() + R"("}})"));
	}
	RunResult run(const std::string& action) const { return run_command({"/bin/sh", path, action}, 30000); }
	pid_t pid() const {
		return file_exists(pid_file) ? static_cast<pid_t>(std::atoi(read_file(pid_file).c_str())) : 0;
	}
};

bool process_gone(pid_t pid, int timeout_ms) {
	int64_t deadline = now_ms() + timeout_ms;
	while (now_ms() < deadline && ::kill(pid, 0) == 0) usleep(50000);
	return ::kill(pid, 0) != 0;
}

}  // namespace

TEST_CASE("init script: start, status, reload and stop give LSB's exit statuses") {
	REQUIRE(file_exists("/lib/lsb/init-functions"));
	TernDaemon d({.config_patch = "", .start = false});
	d.write_config(R"({"log": {"file": ")" + d.log_path() + R"("}})");
	InitScript init(d);

	// LSB: status of a service that does not run is 3.
	RunResult stopped = init.run("status");
	INFO(stopped.output);
	CHECK(stopped.exit_code == 3);

	RunResult started = init.run("start");
	INFO(started.output);
	REQUIRE(started.exit_code == 0);
	pid_t pid = init.pid();
	REQUIRE(pid > 0);
	CHECK(tcp_port_listening(d.smtp_port()));

	CHECK(init.run("status").exit_code == 0);
	// Starting a running service succeeds and leaves it as it is.
	RunResult again = init.run("start");
	INFO(again.output);
	CHECK(again.exit_code == 0);
	CHECK(init.pid() == pid);

	RunResult reloaded = init.run("reload");
	INFO(reloaded.output);
	CHECK(reloaded.exit_code == 0);
	int64_t deadline = now_ms() + 5000;
	while (now_ms() < deadline && !contains(d.log_text(), "configuration reloaded")) usleep(50000);
	CHECK(contains(d.log_text(), "configuration reloaded"));

	// restart: stop, then start again; a new process serves.
	RunResult restarted = init.run("restart");
	INFO(restarted.output);
	CHECK(restarted.exit_code == 0);
	CHECK(process_gone(pid, 5000));
	pid = init.pid();
	REQUIRE(pid > 0);
	CHECK(tcp_port_listening(d.smtp_port()));

	RunResult stop = init.run("stop");
	INFO(stop.output);
	CHECK(stop.exit_code == 0);
	CHECK(process_gone(pid, 5000));
	CHECK(init.run("status").exit_code == 3);
	// Stopping a stopped service succeeds too; reloading it fails.
	CHECK(init.run("stop").exit_code == 0);
	CHECK(init.run("reload").exit_code == 7);
	CHECK(init.run("bogus").exit_code == 3);
}

TEST_CASE("init script: a start that fails is a failure of the script") {
	REQUIRE(file_exists("/lib/lsb/init-functions"));
	TernDaemon d({.config_patch = "", .start = false});
	InitScript init(d);

	// The SMTP port taken: ternd reports the failure, the script passes it on.
	int taken = take_tcp_port(d.smtp_port());
	REQUIRE(taken >= 0);
	RunResult busy = init.run("start");
	::close(taken);
	INFO(busy.output);
	CHECK(busy.exit_code == 1);
	CHECK(contains(busy.output, "Address already in use"));
	CHECK(init.pid() == 0);

	// A config that does not load: refused before anything starts.
	write_file(d.dir() + "/etc/tern/tern.json", "{ not json");
	RunResult broken = init.run("start");
	INFO(broken.output);
	CHECK(broken.exit_code == 1);
	CHECK(init.run("restart").exit_code == 1);
	CHECK(init.pid() == 0);
}
