// Private milter processes for the black-box tests (see milter.h).
#include "helpers/milter.h"

#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>

namespace tern::testing {

namespace {
const char* python = "/usr/bin/python3";
const char* opendkim = "/usr/sbin/opendkim";
const char* opendkim_genkey = "/usr/sbin/opendkim-genkey";
}  // namespace

MilterProcess::~MilterProcess() {
	stop();
	// dir_ came from mkdtemp in this object, so it is ours to remove.
	std::error_code ec;
	if (!dir_.empty()) std::filesystem::remove_all(dir_, ec);
}

bool MilterProcess::scripted_available() {
	return access(python, X_OK) == 0 && run_command({python, "-c", "import Milter"}, 10000).exit_code == 0;
}

bool MilterProcess::opendkim_available() { return access(opendkim, X_OK) == 0 && access(opendkim_genkey, X_OK) == 0; }

bool MilterProcess::spawn(const std::vector<std::string>& argv) {
	pid_ = spawn_child(argv, dir_ + "/milter.log");
	if (pid_ < 0) {
		error_ = std::string("fork: ") + strerror(errno);
		return false;
	}
	if (wait_child_listening(pid_, {port_}, 15000)) return true;
	error_ = std::string(pid_ < 0 ? "milter exited at start: " : "milter did not listen in time: ") + log_text();
	return false;
}

bool MilterProcess::start_scripted() {
	dir_ = make_temp_dir("tern-milter-");
	port_ = free_tcp_port();
	std::string script = repo_root() + "/tests/helpers/scripted_milter.py";
	return spawn({python, script, "inet:" + std::to_string(port_) + "@127.0.0.1"});
}

bool MilterProcess::start_opendkim(const std::string& domain, const std::string& selector) {
	// OpenDKIM refuses a config or key whose folder, or any folder above
	// it, others may write (so /tmp will not do): a private folder under
	// /run (root) or the home folder.
	const char* home = getenv("HOME");
	std::string base = geteuid() == 0 ? "/run" : home ? home : ".";
	std::string templ = base + "/tern-opendkim-XXXXXX";
	if (!mkdtemp(templ.data())) {
		error_ = "mkdtemp " + templ + ": " + strerror(errno);
		return false;
	}
	dir_ = templ;
	port_ = free_tcp_port();
	RunResult key = run_command({opendkim_genkey, "-D", dir_, "-d", domain, "-s", selector, "-b", "1024"}, 30000);
	if (key.exit_code != 0) {
		error_ = "opendkim-genkey: " + key.output;
		return false;
	}
	// selector._domainkey IN TXT ( "v=DKIM1; h=sha256; k=rsa; " "p=..." ): the
	// quoted parts joined.
	std::string txt = read_file(dir_ + "/" + selector + ".txt");
	for (size_t q = txt.find('"'); q != std::string::npos; q = txt.find('"', q + 1)) {
		size_t end = txt.find('"', q + 1);
		if (end == std::string::npos) break;
		dkim_record_ += txt.substr(q + 1, end - q - 1);
		q = end;
	}
	std::string conf =
	    "Syslog no\n"
	    "Mode s\n"
	    "Domain " +
	    domain +
	    "\n"
	    "Selector " +
	    selector +
	    "\n"
	    "KeyFile " +
	    dir_ + "/" + selector +
	    ".private\n"
	    "Canonicalization relaxed/relaxed\n"
	    "InternalHosts 127.0.0.1, ::1\n"
	    "Socket inet:" +
	    std::to_string(port_) +
	    "@127.0.0.1\n"
	    "PidFile " +
	    dir_ +
	    "/opendkim.pid\n"
	    "UMask 022\n";
	write_file(dir_ + "/opendkim.conf", conf);
	// -f: foreground, -x: this file only (never the system's).
	return spawn({opendkim, "-f", "-x", dir_ + "/opendkim.conf"});
}

void MilterProcess::stop() { stop_child(pid_); }

std::string MilterProcess::log_text() const { return dir_.empty() ? "" : read_file(dir_ + "/milter.log"); }

}  // namespace tern::testing
