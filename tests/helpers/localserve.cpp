#include "helpers/localserve.h"

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers/daemon.h"
#include "helpers/smtp_client.h"

namespace tern::testing {

namespace {

constexpr int localserve_ports[] = {1025, 1587, 1465, 1080};

}  // namespace

LocalserveDaemon::LocalserveDaemon(const std::string& temp_prefix)
	: dir_(make_temp_dir(temp_prefix)), data_(dir_ + "/data") {}

LocalserveDaemon::~LocalserveDaemon() {
	stop();
	if (getenv("TERN_KEEP_TMP"))
		fprintf(stderr, "localserve: kept %s\n", dir_.c_str());
	else
		remove_tree(dir_);
}

std::string LocalserveDaemon::log() const { return read_file(dir_ + "/ternd.log"); }

std::string LocalserveDaemon::start() {
	for (int port : localserve_ports)
		if (tcp_port_listening(port)) return "busy: port " + std::to_string(port) + " is in use";
	std::string log_path = dir_ + "/ternd.log";
	pid_ = fork();
	if (pid_ == 0) {
		FILE* f = fopen(log_path.c_str(), "a");
		if (f) {
			dup2(fileno(f), 1);
			dup2(fileno(f), 2);
		}
		signal(SIGPIPE, SIG_DFL);
		std::string bin = ternd_path();
		execl(bin.c_str(), bin.c_str(), "--localserve", "-f", "--data", data_.c_str(), (char*)nullptr);
		_exit(127);
	}
	int64_t deadline = now_ms() + 15000;  // the first start makes a certificate
	while (now_ms() < deadline) {
		int status = 0;
		if (waitpid(pid_, &status, WNOHANG) == pid_) {
			pid_ = -1;
			return "ternd --localserve exited; log:\n" + log();
		}
		bool all = true;
		for (int port : localserve_ports) all = all && tcp_port_listening(port);
		if (all) return "";
		usleep(50000);
	}
	return "ternd --localserve does not listen on every port; log:\n" + log();
}

void LocalserveDaemon::stop() {
	if (pid_ <= 0) return;
	kill(pid_, SIGTERM);
	int64_t deadline = now_ms() + 15000;
	int status = 0;
	while (waitpid(pid_, &status, WNOHANG) == 0) {
		if (now_ms() > deadline) {
			kill(pid_, SIGKILL);
			waitpid(pid_, &status, 0);
			break;
		}
		usleep(20000);
	}
	pid_ = -1;
}

}  // namespace tern::testing
