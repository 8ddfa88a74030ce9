// Private milters for the black-box tests, on free loopback ports, stopped
// when the object goes: Debian's OpenDKIM (signing mode, a key made by the
// test) and a scripted milter in Python (python3-milter) whose verdicts the
// test picks through the recipient or an X-Test header
// (tests/helpers/scripted_milter.py says which).
#pragma once
#include <string>
#include <sys/types.h>
#include <vector>

#include "helpers/daemon.h"

namespace tern::testing {

class MilterProcess {
public:
	MilterProcess() = default;
	~MilterProcess();
	MilterProcess(const MilterProcess&) = delete;
	MilterProcess& operator=(const MilterProcess&) = delete;

	// The scripted Python milter on a free port.
	bool start_scripted();
	// OpenDKIM signing mail From `domain` with selector `selector` and a
	// fresh RSA key (opendkim-genkey); relaxed/relaxed canonicalization.
	bool start_opendkim(const std::string& domain, const std::string& selector);
	void stop();

	static bool scripted_available();  // /usr/bin/python3 with the Milter module
	static bool opendkim_available();  // /usr/sbin/opendkim and opendkim-genkey

	int port() const { return port_; }
	// "inet:127.0.0.1:PORT", for the tern.json milters list.
	std::string address() const { return "inet:127.0.0.1:" + std::to_string(port_); }
	// The DNS TXT record text for the key (OpenDKIM), without quotes.
	const std::string& dkim_record() const { return dkim_record_; }
	std::string log_text() const;
	const std::string& error() const { return error_; }

private:
	bool spawn(const std::vector<std::string>& argv);
	std::string dir_;
	int port_ = 0;
	pid_t pid_ = -1;
	std::string dkim_record_;
	std::string error_;
};

}  // namespace tern::testing
