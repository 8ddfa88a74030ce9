// ternd's local control socket (`<data_dir>/control.sock`, man/ternd.8
// "CONTROL SOCKET"): while ternd runs, ternctl sends its database writes
// here instead of joining the environment, so a ternctl that dies (killed,
// out of disk) cannot leave the daemon's database locked or panicked.
// Protocol: src/util/control_protocol.h. The loop only reads requests and
// writes answers; every command runs on the worker pool.
#pragma once
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/conn_table.h"
#include "core/worker_pool.h"
#include "server/local_clients.h"
#include "util/control_protocol.h"

namespace tern::server {

// What a command produced: ternctl's output and exit status, and optional
// loop-thread work to run once it is done (e.g. re-reading the queue).
struct ControlOutcome {
	control::Answer answer;
	std::function<void()> then_on_loop;
};

// Called on the loop with the request's words after the command name; it
// captures what it needs from loop-owned state (the current config) and
// returns the job that runs on a worker. A new command is one add() call.
using ControlJob = std::function<ControlOutcome()>;
using ControlHandler = std::function<ControlJob(const std::vector<std::string>& args)>;

class ControlServer {
public:
	// Binds the socket at `path` (mode 0600, owned by the calling user);
	// a stale socket file from a killed ternd is replaced, a live one (a
	// second ternd on the same data_dir) is an error. Throws.
	ControlServer(struct ev_loop* loop, core::WorkerPool& workers, std::string path);
	// Closes the socket and removes its file. Destroy it only after the
	// worker pool has drained (completions refer to it).
	~ControlServer();
	ControlServer(const ControlServer&) = delete;
	ControlServer& operator=(const ControlServer&) = delete;

	void add(const std::string& command, ControlHandler handler);
	void start();

	const std::string& path() const { return path_; }

	struct Client;

private:
	void on_readable(Client& c);
	void on_writable(Client& c);
	void dispatch(Client& c, const std::string& line);
	void answer(Client& c, const control::Answer& answer);

	core::WorkerPool& workers_;
	std::string path_;
	std::map<std::string, ControlHandler> handlers_;
	LocalClients<Client> clients_;
};

}  // namespace tern::server
