// Runs `ternd --localserve` for a black-box test (SPEC "localserve"): its
// own data directory, the fixed ports 1025, 1587, 1465 and 1080 on
// loopback. Tests skip when another process holds one of the ports.
#pragma once
#include <string>
#include <sys/types.h>

namespace tern::testing {

class LocalserveDaemon {
public:
	explicit LocalserveDaemon(const std::string& temp_prefix = "tern-localserve-");
	~LocalserveDaemon();
	LocalserveDaemon(const LocalserveDaemon&) = delete;
	LocalserveDaemon& operator=(const LocalserveDaemon&) = delete;

	// "" when every port listens; "busy: …" when a port was taken before
	// the start; otherwise why ternd exited or did not listen, with its log.
	std::string start();
	// SIGTERM, then SIGKILL after 15 s.
	void stop();

	const std::string& data_dir() const { return data_; }
	std::string maildir() const { return data_ + "/accounts/tern/Maildir"; }
	std::string log() const;

private:
	std::string dir_, data_;
	pid_t pid_ = -1;
};

}  // namespace tern::testing
