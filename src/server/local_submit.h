// The local submission socket <data_dir>/public/sendmail.sock
// (man/sendmail.tern.8): sendmail.tern hands a message from a local user
// to ternd over it. The peer's uid (SO_PEERCRED) identifies the user; the
// message then goes through the submission rules (server/submit.h) and
// the outbound queue, like a message submitted over SMTP, before the final
// status is written. The protocol is message/sendmail.h's.
#pragma once
#include <sys/types.h>

#include <cstdint>
#include <ctime>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "config/config.h"
#include "core/conn_table.h"
#include "message/sendmail.h"
#include "server/local_clients.h"
#include "server/submit.h"

namespace tern::server {

class Server;

// Who a local submission comes from and what it may do, decided on a
// worker from the peer's uid (getpwuid may block on NSS).
struct LocalSender {
	std::string login;  // getpwuid's name
	bool root = false;
	std::string account;                  // the account named like the login ("" none; always "" for root)
	std::string mail_from;                // envelope sender, "" = null
	std::vector<std::string> recipients;  // parsed forward paths
	std::vector<message::sendmail::Status> recipient_errors;
	std::optional<message::sendmail::Status> error;  // refused as a whole
};

// The pure decision: `login` is the peer's name, `request` what
// sendmail.tern sent. Unqualified addresses get `@hostname`; a recipient
// at the host name with no destination here goes to the account named
// like it, else to the postmaster (host_user_recipient). A non-root
// user may use -f only with an address of its own account (or, without
// one, its default address login@hostname); root may use any.
LocalSender decide_local_sender(const config::Config& cfg, const std::string& login, bool root,
                                const message::sendmail::Request& request);

// The From field tern adds when a local message has none (RFC 5322
// 3.6.2): "From: Full Name <addr>\r\n", the name quoted as needed.
std::string generated_from(const std::string& full_name, const std::string& address);

struct LocalSubmitSocket {
	UniqueFd fd;
	std::string path;
	LocalSubmitSocket() = default;
	LocalSubmitSocket(LocalSubmitSocket&&) = default;
	LocalSubmitSocket& operator=(LocalSubmitSocket&&) = default;
	// A socket still held here was never handed to a listener (the start
	// failed after binding it): its name goes with it, as when ternd stops
	// (man/sendmail.tern.8 FILES).
	~LocalSubmitSocket();
};

// Creates <data_dir>/public (mode 0755) and binds sendmail.sock in it
// (mode 0666, every local user may connect); throws on failure. Called
// with the TCP listeners, so clients queue in its backlog from then on.
LocalSubmitSocket open_local_submit_socket(const std::string& data_dir);

class LocalSubmitListener {
public:
	// Runs on a worker: the queue as `ternctl queue list` prints it.
	using QueueLister = std::function<std::string()>;
	// Takes over the socket.
	LocalSubmitListener(Server& srv, LocalSubmitSocket sock, QueueLister lister);
	~LocalSubmitListener();
	LocalSubmitListener(const LocalSubmitListener&) = delete;
	LocalSubmitListener& operator=(const LocalSubmitListener&) = delete;

	void start();
	// Stops accepting and removes the socket; clients in progress finish.
	void stop();
	size_t clients() const { return clients_.size(); }

	struct Client;

private:
	std::unique_ptr<Client> make_client(UniqueFd fd);
	void read_request(Client& c);
	void write_data(Client& c, std::string_view data);
	void begin_submission(Client& c);
	void queue_message(Client& c, const LocalSender& sender, const SubmissionResult& prepared, std::time_t now);
	void list_queue(Client& c);
	void finish(Client& c, const message::sendmail::Status& final_status);
	void flush(Client& c);

	Server& srv_;
	QueueLister lister_;
	// Completions come back through clients_.with_client (doc/design.md
	// "one lifetime rule"): nothing happens when the client is gone.
	LocalClients<Client> clients_;
	uint64_t next_id_ = 0;
};

}  // namespace tern::server
