#include "server/local_submit.h"

#include <fcntl.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <ctime>
#include <stdexcept>

#include "core/maildir_writer.h"
#include "core/stats.h"
#include "message/header_parse.h"
#include "message/headers.h"
#include "message/mime.h"
#include "message/submission.h"
#include "net/unix_socket.h"
#include "server/message_file.h"
#include "server/outbound.h"
#include "server/server.h"
#include "smtp/data_decoder.h"
#include "smtp/parser.h"
#include "smtp/replies.h"
#include "util/log.h"
#include "util/storage.h"
#include "util/strings.h"

namespace tern::server {

namespace sm = message::sendmail;
namespace se = smtp::se;

namespace {

// Local clients served at once; more are refused at accept (sendmail.tern
// then exits 75 and its caller retries), so local users cannot exhaust
// ternd's descriptors or its temp space.
constexpr size_t max_clients = 200;
// Of those, one user other than root holds at most this many, so that a
// user's runaway script leaves room for everyone else's mail (cron's).
constexpr size_t max_clients_per_user = 50;

// A client that sends nothing for this long is dropped (the message, if
// any, is not queued and sendmail.tern reports the failure).
constexpr double idle_timeout_s = 300;

sm::Status status(int code, std::string_view secode, std::string text, std::string recipient = "") {
	return sm::Status{code, smtp::enhanced_code(code, secode), std::move(text), std::move(recipient)};
}

// A reply of the SMTP ports (smtp::replies), in the socket's protocol.
sm::Status reply_status(smtp::SmtpError e) { return status(e.code, e.secode, std::move(e.text)); }

// Message data that could not be stored, answered as on the SMTP ports:
// 452 4.3.1 for a full disk, else 451 4.3.0.
sm::Status storage_status(bool disk_full, std::string text) {
	return reply_status(smtp::replies::storage_failure(disk_full, std::move(text)));
}

// The line that tells a client why it is closed, in the socket's protocol:
// sendmail.tern prints the reason and exits (75 for a 421). Sent without
// waiting: the socket's buffer has room for one line.
std::string closing_line(int code, std::string_view secode, std::string text) {
	return sm::format_final_status(status(code, secode, std::move(text)));
}

// RFC 5321 4.1.2: an address without a domain is completed with ours, as
// local mailers do for "root" or "www-data".
std::optional<smtp::Address> qualified_address(std::string_view text, const std::string& hostname) {
	if (text.size() >= 2 && text.front() == '<' && text.back() == '>') text = text.substr(1, text.size() - 2);
	return smtp::parse_address(sm::with_host_domain(text, hostname));
}

// The address a local user's mail comes from without -f: its account's
// address at the account's domain when it has one, else any of its
// addresses; login@hostname for users without an account.
std::string default_sender(const config::Config& cfg, const std::string& login, const std::string& account) {
	auto it = cfg.accounts.find(account);
	if (it == cfg.accounts.end()) return login + "@" + cfg.hostname;
	const config::Account& acc = it->second;
	if (cfg.account_for_address(login, acc.domain) == &acc) return login + "@" + acc.domain;
	for (const auto& [address, dest] : acc.destinations)
		if (!address.starts_with('@')) return address;
	return login + "@" + cfg.hostname;
}

// Mail for this host's own users (doc/behaviour.md "sendmail(1)"): cron
// mails "root" or a crontab's owner, completed with @hostname, and the host
// name is seldom a hosted domain, so the queue would send it out to the
// host's MX, which refuses it after sendmail.tern has exited 0. A
// recipient at the host name with no destination here goes where someone
// reads it instead: a name that is an account's to that account's own
// address, any other (root, a daemon's user) to the postmaster, as a
// Debian host's aliases hand root's mail to its administrator. Without a
// postmaster account it stays as it is.
std::string host_user_recipient(const config::Config& cfg, const smtp::Address& to) {
	std::string address = to.to_string();
	using Kind = config::Config::RcptKind;
	if (to.ip || !iequals(to.domain.ascii, cfg.hostname) ||
	    cfg.resolve_recipient(to.localpart, to.domain.ascii).kind == Kind::local)
		return address;
	if (cfg.accounts.count(to.localpart)) {
		std::string own = default_sender(cfg, to.localpart, to.localpart);
		auto parsed = smtp::parse_address(own);
		if (parsed && cfg.resolve_recipient(parsed->localpart, parsed->domain.ascii).kind == Kind::local)
			return own;
	}
	if (cfg.resolve_recipient("postmaster", "").kind == Kind::local) return "postmaster@" + cfg.hostname;
	return address;
}

std::string login_for_uid(uid_t uid, std::string& error) {
	struct passwd pw;
	struct passwd* found = nullptr;
	std::vector<char> buf(16384);
	int rc = getpwuid_r(uid, &pw, buf.data(), buf.size(), &found);
	if (rc != 0 || !found) {
		error = rc != 0 ? std::strerror(rc) : "no such user";
		return {};
	}
	return found->pw_name;
}

}  // namespace

LocalSender decide_local_sender(const config::Config& cfg, const std::string& login, bool root,
                                const sm::Request& request) {
	LocalSender s;
	s.login = login;
	s.root = root;
	if (!root && cfg.accounts.count(login)) s.account = login;
	std::string fallback = default_sender(cfg, login, s.account);
	if (request.sender && !request.sender->empty() && *request.sender != "<>") {
		auto from = qualified_address(*request.sender, cfg.hostname);
		if (!from) {
			s.error = status(553, se::addr_bad_sender_sys_syntax7,
			                 "bad sender address syntax: " + *request.sender);
			return s;
		}
		std::string text = from->to_string();
		if (!root) {
			// RFC 6409 6.1: the submission server may refuse a sender the
			// user has no right to; the same rule as MAIL FROM on submission.
			bool allowed;
			if (!s.account.empty())
				allowed = cfg.account_for_address(from->localpart, from->domain.ascii) ==
				    &cfg.accounts.at(s.account);
			else
				allowed = smtp::parse_address(fallback) &&
				    from->to_ascii_string() == smtp::parse_address(fallback)->to_ascii_string();
			if (!allowed) {
				s.error = status(550, se::pol_delivery_not_auth1,
				                 "sender " + text + " does not belong to user " + login);
				return s;
			}
		}
		s.mail_from = text;
	} else if (request.sender) {
		// The null reverse path (RFC 5321 4.5.5) is for bounces: root only.
		if (!root) {
			s.error = status(550, se::pol_delivery_not_auth1, "null sender not allowed for user " + login);
			return s;
		}
	} else {
		s.mail_from = fallback;
	}
	for (const auto& r : request.recipients) {
		auto to = qualified_address(r, cfg.hostname);
		if (!to) {
			// RFC 3463 3.2: X.1.3 bad destination mailbox address syntax.
			s.recipient_errors.push_back(status(553, "1.3", "bad recipient address syntax", r));
			continue;
		}
		s.recipients.push_back(host_user_recipient(cfg, *to));
	}
	// root and www-data may both have become the postmaster: one copy.
	s.recipients = sm::distinct_recipients(s.recipients);
	if (!s.recipient_errors.empty()) s.error = status(553, "1.3", "bad recipient address(es), message not sent");
	return s;
}

std::string generated_from(const std::string& full_name, const std::string& address) {
	if (full_name.empty()) return "From: <" + address + ">\r\n";
	// RFC 2047 5(3): a name beyond ASCII as encoded words, which every
	// reader decodes; raw UTF-8 in a header needs SMTPUTF8 all the way.
	// The address goes on a line of its own: a line holding an encoded
	// word stays within 76 characters (RFC 2047 2).
	if (!is_ascii(full_name)) return "From: " + message::encode_words(full_name) + "\r\n <" + address + ">\r\n";
	// RFC 5322 3.2.4: a quoted-string, with '"' and '\' escaped.
	std::string quoted = "\"";
	for (char c : full_name) {
		if (c == '"' || c == '\\') quoted += '\\';
		quoted += c;
	}
	return "From: " + quoted + "\" <" + address + ">\r\n";
}

struct LocalSubmitListener::Client : LocalClient {
	Client(UniqueFd socket, uid_t uid, uint64_t max_data)
		: LocalClient(std::move(socket)), uid(uid), reader(max_data) {}
	enum class Phase { head, data, working, writing };
	uid_t uid;
	sm::RequestReader reader;
	smtp::DataDecoder decoder{smtp::BareNewlines::normalize, smtp::Framing::chunked};
	Phase phase = Phase::head;
	UniqueFd file_fd;
	TempFile file;  // the message's temp file while the client owns it
	uint64_t remaining = 0;
	int write_errno = 0;  // of the first write to the temp file that failed
	bool has_8bit = false;
	std::string out;
};

LocalSubmitListener::LocalSubmitListener(Server& srv, LocalSubmitSocket sock, QueueLister lister)
	: srv_(srv), lister_(std::move(lister)),
	  clients_(srv.loop(), "local submission", max_clients, idle_timeout_s,
                   {[this](UniqueFd fd) { return make_client(std::move(fd)); },
                    [this](Client& c, int revents) {
			    if (revents & EV_WRITE) flush(c);
			    if (!c.dead && (revents & EV_READ)) read_request(c);
		    },
                    [](Client& c) {
			    log::info("local submission: client idle, dropped");
			    c.dead = true;
		    },
                    closing_line(421, se::pol_other0, "too many local submissions at once, try again later")}) {
	if (sock.fd) clients_.listen(std::move(sock.fd), std::move(sock.path));
}

// The clients and the socket (with its file) go with clients_.
LocalSubmitListener::~LocalSubmitListener() = default;

LocalSubmitSocket::~LocalSubmitSocket() {
	if (fd && !path.empty()) ::unlink(path.c_str());
}

LocalSubmitSocket open_local_submit_socket(const std::string& data_dir) {
	LocalSubmitSocket sock;
	std::string dir = data_dir + "/public";
	if (mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST)
		throw std::runtime_error("creating " + dir + ": " + std::strerror(errno));
	// The daemon's umask must not narrow it: every local user connects.
	if (chmod(dir.c_str(), 0755) != 0) throw std::runtime_error("chmod " + dir + ": " + std::strerror(errno));
	struct stat st;
	if (stat(data_dir.c_str(), &st) == 0 && (st.st_mode & S_IXOTH) == 0)
		log::error(
		    "data_dir is not searchable by other users (needs mode 0711 or more); sendmail.tern will fail for them",
		    {{"data_dir", data_dir}});
	sock.path = dir + "/sendmail.sock";
	// A socket left by a daemon that did not stop cleanly is replaced: this
	// daemon owns the data directory now (the SMTP ports are bound).
	sock.fd = net::listen_unix(sock.path, 0666, 64);
	if (!sock.fd) {
		int err = errno;
		throw std::runtime_error("local submission socket " + sock.path + ": " +
		                         (err == ENAMETOOLONG ? std::string("path too long") : std::strerror(err)));
	}
	return sock;
}

void LocalSubmitListener::start() {
	if (!clients_.listening()) return;
	clients_.start();
	log::info("listening", {{"listener", "sendmail"}, {"address", clients_.path()}});
}

void LocalSubmitListener::stop() {
	clients_.stop();
	// As an SMTP client waiting for a command or sending DATA gets 421
	// when ternd stops (man/ternd.8 SIGNALS), a client that has not handed
	// its whole message over is told so at once, and sendmail.tern exits 75
	// for its caller to try again; one whose message ternd already took
	// gets its answer when the hand-over ends.
	clients_.for_each_client([](Client& c) {
		if (c.phase != Client::Phase::head && c.phase != Client::Phase::data) return;
		net::send_without_waiting(c.fd.get(), closing_line(421, se::sys_not_accepting2, "shutting down"));
		c.dead = true;
	});
}

std::unique_ptr<LocalSubmitListener::Client> LocalSubmitListener::make_client(UniqueFd fd) {
	// The kernel's word on who connected (unix(7) SO_PEERCRED).
	struct ucred cred {};
	socklen_t len = sizeof(cred);
	if (getsockopt(fd.get(), SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
		log::error("local submission: SO_PEERCRED", {{"error", std::strerror(errno)}});
		return nullptr;
	}
	if (cred.uid != 0 &&
	    clients_.count_if([&](const Client& c) { return c.uid == cred.uid; }) >= max_clients_per_user) {
		log::error("local submission: too many clients of one user, connection closed",
		           {{"uid", std::to_string(cred.uid)}, {"max", std::to_string(max_clients_per_user)}});
		net::send_without_waiting(fd.get(),
		                          closing_line(421, se::pol_other0,
		                                       "too many local submissions at once from user id " +
		                                           std::to_string(cred.uid) + ", try again later"));
		return nullptr;
	}
	return std::make_unique<Client>(std::move(fd), cred.uid, srv_.config()->local_submission_max_size());
}

void LocalSubmitListener::read_request(Client& c) {
	char* buf = srv_.scratch();
	while (c.phase == Client::Phase::head || c.phase == Client::Phase::data) {
		ssize_t n = read(c.fd.get(), buf, Server::scratch_size);
		if (n < 0 && errno == EINTR) continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
		if (n <= 0) {
			// The client went away before the whole message arrived: nothing
			// is queued. One that only shut its sending side down still
			// reads, and is told so, as a cut-off SMTP request would be.
			if (n == 0)
				net::send_without_waiting(
				    c.fd.get(),
				    closing_line(554, se::proto_syntax2,
				                 "bad request: input ended before the whole message, nothing queued"));
			c.dead = true;
			return;
		}
		clients_.arm_deadline(c);
		std::string_view in(buf, static_cast<size_t>(n));
		if (c.phase == Client::Phase::head) {
			size_t used = 0;
			switch (c.reader.feed(in, used)) {
			case sm::RequestReader::State::more: continue;
			case sm::RequestReader::State::error:
				if (c.reader.too_large()) {
					// The code SIZE would get on the ports (RFC 1870 6.1).
					finish(c,
					       reply_status(smtp::replies::message_too_large(static_cast<int64_t>(
						   std::min<uint64_t>(c.reader.request().data_size, INT64_MAX)))));
				} else
					finish(c, status(554, se::proto_syntax2, "bad request: " + c.reader.error()));
				return;
			case sm::RequestReader::State::list_queue: list_queue(c); return;
			case sm::RequestReader::State::data: break;
			}
			in.remove_prefix(used);
			// As at DATA on the ports: below the disk reserve no new
			// message data is taken (core/disk_space.h).
			if (srv_.disk_space().low()) {
				finish(c, reply_status(smtp::replies::below_disk_reserve()));
				return;
			}
			std::string path = srv_.config()->data_dir + "/tmp/sendmail-" + std::to_string(getpid()) + "-" +
			    std::to_string(++next_id_);
			c.file_fd.reset(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
			if (!c.file_fd) {
				int e = errno;
				log::error("local submission: creating temp file",
				           {{"path", path}, {"error", std::strerror(e)}});
				finish(c,
				       storage_status(srv_.disk_space().write_failed(e), "error creating temp file"));
				return;
			}
			c.file = TempFile(std::move(path));
			c.remaining = c.reader.request().data_size;
			c.phase = Client::Phase::data;
		}
		size_t take = static_cast<size_t>(std::min<uint64_t>(c.remaining, in.size()));
		// Stored with CRLF line ends only, as on the SMTP ports: a client
		// other than sendmail.tern may send bare CR or LF.
		std::string normalized;
		c.decoder.feed(in.substr(0, take), normalized);
		c.remaining -= take;
		if (c.remaining == 0) c.decoder.finish(normalized);
		c.has_8bit = c.decoder.saw_8bit();
		write_data(c, normalized);
		if (c.remaining == 0) {
			c.file_fd.reset();
			if (c.write_errno != 0) {
				finish(c, storage_status(is_storage_full(c.write_errno), "error writing message"));
				return;
			}
			begin_submission(c);
			return;
		}
	}
}

// Writes land in the page cache; the queue's worker fsyncs.
void LocalSubmitListener::write_data(Client& c, std::string_view data) {
	size_t off = 0;
	while (off < data.size() && c.write_errno == 0) {
		ssize_t w = write(c.file_fd.get(), data.data() + off, data.size() - off);
		if (w < 0 && errno == EINTR) continue;
		if (w <= 0) {
			c.write_errno = w < 0 ? errno : EIO;  // as the session does (server/data.cpp)
			log::error("local submission: writing temp file", {{"error", std::strerror(c.write_errno)}});
			srv_.disk_space().write_failed(c.write_errno);
			break;
		}
		off += static_cast<size_t>(w);
	}
}

namespace {

struct SubmissionJob {
	std::string login;
	std::string login_error;
	LocalSender sender;
	SubmissionResult result;
	std::string error;  // unexpected failure
};

// What the submission checks need, for a sender already decided.
SubmissionInput local_submission_input(const std::shared_ptr<const config::Config>& cfg, const SubmissionJob& job,
                                       const std::string& path, store::Env* env, std::time_t now) {
	SubmissionInput in;
	in.cfg = cfg;
	in.account = !job.sender.account.empty() ? job.sender.account
	    : job.sender.root                    ? std::string()
						 : "local:" + job.login;
	in.message_path = path;
	in.mail_from = job.sender.mail_from;
	in.recipients = job.sender.recipients;
	in.hostname = cfg->hostname;
	in.now = now;
	in.env = env;
	in.check_from = !job.sender.account.empty();
	in.host_users_may_write = true;
	in.smtp_auth = false;
	if (!job.sender.root) {
		config::Account defaults;
		in.default_limits = SubmissionInput::Limits{defaults.max_outgoing_messages_per_day,
		                                            defaults.max_first_time_recipients_per_day};
	}
	return in;
}

// The worker's part of a submission: who the user is, what they may send,
// and the checks of a submission; it blocks (NSS, the database).
void run_submission_job(SubmissionJob& job, const std::shared_ptr<const config::Config>& cfg,
                        const sm::Request& request, uid_t uid, const std::string& path, store::Env* env,
                        std::time_t now) {
	// getpwuid may ask NSS (LDAP, sssd): a worker's job.
	job.login = login_for_uid(uid, job.login_error);
	if (job.login.empty()) return;
	job.sender = decide_local_sender(*cfg, job.login, uid == 0, request);
	if (job.sender.error) return;
	SubmissionInput in = local_submission_input(cfg, job, path, env, now);
	// RFC 5322 3.6: From is required; sendmail(1) makes one from
	// the sender (and -F) when the message has none.
	MessageFile file(path);
	auto header = file.ok() ? file.read_header() : std::nullopt;
	auto section = header ? message::parse_header_section(*header) : std::nullopt;
	if (section && !message::has_header(*section, "From")) {
		std::string from = job.sender.mail_from.empty() ? job.login + "@" + cfg->hostname
								: job.sender.mail_from;
		in.extra_header = generated_from(request.full_name, from);
	}
	for (const auto& r : in.recipients) in.smtputf8 = in.smtputf8 || !is_ascii(r);
	in.smtputf8 = in.smtputf8 || !is_ascii(in.mail_from);
	job.result = prepare_submission(in);
}

}  // namespace

void LocalSubmitListener::begin_submission(Client& c) {
	c.phase = Client::Phase::working;
	c.io->set(c.fd.get(), 0);
	c.deadline->stop();
	core::ConnHandle h = c.self;
	auto cfg = srv_.config();
	auto job = std::make_shared<SubmissionJob>();
	sm::Request request = c.reader.request();
	uid_t uid = c.uid;
	std::string path = c.file.path();
	store::Env* env = srv_.env();
	std::time_t now = std::time(nullptr);
	srv_.workers().submit(
	    [job, cfg, request, uid, path, env, now] {
		    try {
			    run_submission_job(*job, cfg, request, uid, path, env, now);
		    } catch (const std::exception& e) {
			    job->error = e.what();
		    }
	    },
	    [this, h, job, now] {
		    clients_.with_client(h, [&](Client& c) {
			    if (!job->error.empty()) {
				    log::error("local submission", {{"error", job->error}});
				    finish(c, status(451, se::sys_other0, "error processing"));
				    return;
			    }
			    if (job->login.empty()) {
				    finish(c,
				           status(550, se::pol_delivery_not_auth1,
				                  "unknown local user id " + std::to_string(c.uid) + ": " +
				                      job->login_error));
				    return;
			    }
			    const LocalSender& s = job->sender;
			    if (s.error) {
				    for (const auto& e : s.recipient_errors) c.out += sm::format_recipient_status(e);
				    log::info("local submission refused",
				              {{"user", s.login}, {"reason", s.error->text}});
				    finish(c, *s.error);
				    return;
			    }
			    if (job->result.error) {
				    const smtp::SmtpError& e = *job->result.error;
				    core::stats().count_submission(core::submission_result_label(job->result.refusal));
				    log::info("local submission refused", {{"user", s.login}, {"reason", e.text}});
				    finish(c, reply_status(e));
				    return;
			    }
			    queue_message(c, s, job->result, now);
		    });
	    });
}

void LocalSubmitListener::queue_message(Client& c, const LocalSender& s, const SubmissionResult& prepared,
                                        std::time_t now) {
	const auto& cfg = srv_.config();
	OutboundQueue* queue = srv_.outbound();
	if (!queue && !cfg->localserve) {
		finish(c, status(451, se::sys_other0, "error delivering message: no queue"));
		return;
	}
	// RFC 5321 4.4: a trace field for the local hand-over, without the
	// "from" clause as no host was involved.
	std::string stamp = "; " + message::format_date(now, message::local_utc_offset(now)) + "\r\n";
	std::string by = "Received: by " + cfg->hostname + " (tern sendmail, from userid " + std::to_string(c.uid) +
	    ")";
	auto prefix_for = [&](const std::string& rcpt) {
		return by + "\r\n\tfor <" + rcpt + ">" + stamp + prepared.common_prefix;
	};
	std::string path = c.file.commit();  // the queue (or the Maildir writer) owns the file now
	c.phase = Client::Phase::writing;
	std::vector<std::string> recipients = s.recipients;
	std::string login = s.login;
	bool localserve = cfg->localserve;
	auto handed_over = [this, h = c.self, recipients, login, localserve](const std::string& error) {
		core::stats().count_submission(error.empty()    ? "ok"
		                                   : localserve ? "localserveerror"
		                                                : "queueerror",
		                               recipients.size());
		bool disk_full = false;
		if (!error.empty()) {
			log::error("storing locally submitted message", {{"error", error}});
			disk_full = srv_.disk_space().write_failed(error);
		} else
			log::info("message submitted locally",
			          {{"user", login}, {"recipients", std::to_string(recipients.size())}});
		clients_.with_client(h, [&](Client& c) {
			if (!error.empty()) {
				finish(c, storage_status(disk_full, "error storing message: " + error));
				return;
			}
			for (const auto& r : recipients)
				c.out += sm::format_recipient_status(status(250, "1.5", "ok", r));
			finish(c, status(250, "0.0", localserve ? "delivered" : "queued"));
		});
	};
	if (localserve) {
		// Localserve sends nothing out: every copy goes to its one account,
		// as its SMTP submission does.
		const config::Account& acc = cfg->accounts.begin()->second;
		std::vector<store::MaildirCopy> copies;
		for (const auto& r : s.recipients) {
			store::MaildirCopy copy;
			copy.maildir = acc.maildir;
			copy.mailbox = "INBOX";
			copy.prefix = prefix_for(r);
			copies.push_back(std::move(copy));
		}
		srv_.maildir_writer().deliver(path, std::move(copies), cfg->hostname, handed_over);
		return;
	}
	OutboundMessage msg;
	msg.sender_account = !s.account.empty() ? s.account : s.root ? std::string() : "local:" + s.login;
	msg.from = s.mail_from;
	msg.has_8bit = c.has_8bit;
	msg.message_id = prepared.message_id;
	msg.message_path = path;
	msg.message_size = static_cast<int64_t>(c.decoder.size());  // as stored, line ends made CRLF
	// Root's mail is not counted against anyone's daily limits.
	msg.record_outgoing = !s.root;
	for (const auto& r : s.recipients) {
		auto address = smtp::parse_address(r);
		if (!address) continue;  // decide_local_sender parsed each one
		msg.smtputf8 = msg.smtputf8 || !is_ascii(r);
		OutboundRecipient o;
		o.to = r;
		o.domain = address->lookup_domain();
		o.prefix = prefix_for(r);
		msg.recipients.push_back(std::move(o));
	}
	msg.smtputf8 = msg.smtputf8 || !is_ascii(s.mail_from);
	queue->enqueue(std::move(msg), handed_over);
}

void LocalSubmitListener::list_queue(Client& c) {
	c.phase = Client::Phase::working;
	c.io->set(c.fd.get(), 0);
	c.deadline->stop();
	struct Listing {
		std::string text, error;
	};
	auto listing = std::make_shared<Listing>();
	QueueLister lister = lister_;
	srv_.workers().submit(
	    [listing, lister] {
		    if (!lister) {
			    listing->error = "no queue";
			    return;
		    }
		    try {
			    listing->text = lister();
		    } catch (const std::exception& e) {
			    listing->error = e.what();
		    }
	    },
	    [this, h = c.self, listing] {
		    clients_.with_client(h, [&](Client& c) {
			    if (!listing->error.empty()) {
				    finish(c, status(451, se::sys_other0, "error listing queue: " + listing->error));
				    return;
			    }
			    c.out += sm::format_queue_listing(listing->text);
			    finish(c, status(250, "0.0", "ok"));
		    });
	    });
}

void LocalSubmitListener::finish(Client& c, const sm::Status& final_status) {
	c.out += sm::format_final_status(final_status);
	c.phase = Client::Phase::writing;
	c.file_fd.reset();
	clients_.arm_deadline(c);
	flush(c);
}

void LocalSubmitListener::flush(Client& c) {
	while (!c.out.empty()) {
		ssize_t n = write(c.fd.get(), c.out.data(), c.out.size());
		if (n < 0 && errno == EINTR) continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			c.io->set(c.fd.get(), EV_WRITE);
			return;
		}
		if (n <= 0) {
			c.dead = true;  // the client left; what was queued stays queued
			return;
		}
		c.out.erase(0, static_cast<size_t>(n));
	}
	if (c.phase == Client::Phase::writing) c.dead = true;  // all said: close
}

}  // namespace tern::server
