#include "message/submission.h"
#include "server/dkim_sign.h"
#include "store/files.h"
#include "util/random.h"
#include "queue/queue.h"
#include "queue/queue_file.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <ctime>
#include <iterator>
#include <random>
#include <stdexcept>

#include "mailauth/resolver.h"
#include "message/dsn.h"
#include "smtp/client_reply.h"
#include "smtp/dsn_params.h"
#include "smtp/parser.h"
#include "message/headers.h"
#include "net/lmtp_client.h"
#include "store/maildir.h"
#include "store/mta_sts_policies.h"
#include "util/ipaddr.h"
#include "util/log.h"
#include "util/storage.h"
#include "util/strings.h"
#include "util/unique_fd.h"

namespace tern::queue {

namespace {

// Body chunks read on a worker for the SMTP client (doc/design.md: the loop
// never reads files).
constexpr size_t chunk_size = 64 * 1024;
// RFC 5321 4.5.3.1.8: a server must accept at least 100 recipients.
constexpr size_t max_recipients_per_transaction = 100;
// An attempt dials at most this many addresses over all MX hosts, and a
// policy fetch asks at most this many addresses of the policy host: a
// domain could publish hundreds of hosts and addresses that each stall,
// and hold one of the few delivery slots for days (Postfix stops at 5).
constexpr size_t max_addresses_per_attempt = 20;
constexpr size_t max_policy_host_addresses = 4;
// DNS query owners of the queue live in their own id space, apart from
// the connection ids the SMTP sessions use.
constexpr uint64_t dns_owner_base = uint64_t(1) << 62;

int64_t now_s() { return static_cast<int64_t>(std::time(nullptr)); }

int64_t jitter(int64_t base_s) {
	// The model's ±5 s on 450 s, scaled to the configured base.
	int64_t span = base_s / 90;
	if (span <= 0) return 0;
	FastRandom rng;
	return std::uniform_int_distribution<int64_t>(-span, span)(rng);
}

TlsMode tls_mode(const std::string& name) {
	if (name == "none") return TlsMode::none;
	if (name == "required") return TlsMode::required;
	if (name == "implicit") return TlsMode::implicit;
	return TlsMode::opportunistic;
}

struct Policy {
	int64_t retry_base_s = 450;
	int max_attempts = 8;
	int delayed_after = 5;
};

// Before an attempt (doc/behaviour.md §12): the next attempt is set now,
// so a crash during the attempt leads to a later retry, never a hot loop.
void mark_attempt(store::QueueRecord& rec, int64_t now, const Policy& p) {
	rec.next_attempt = now + retry_delay_seconds(p.retry_base_s, rec.attempts, jitter(p.retry_base_s));
	rec.attempts++;
	rec.last_attempt = now;
}

// Ends one copy: its state in the file first, then the record, then its
// file link. A crash (or a failed database write) after the mark leaves a
// marked file, whose record and link the next rebuild removes (never sends
// again); one before it leaves the record, so the copy is retried. The
// record goes before the link: never a record without its message.
void remove_record(store::Env& env, const config::Config& cfg, const store::QueueRecord& rec, RecipientState state) {
	if (!rec.message_file.empty()) mark_recipient(queue_dir(cfg.data_dir), rec.message_file, state);
	env.queue_remove(rec.id);
	if (!rec.message_file.empty()) ::unlink(queue_file_path(cfg.data_dir, rec.message_file).c_str());
}

// A delivered copy's end: a failure after the mark (the database) is
// logged, and the copy counts as delivered all the same (it is); the
// next rebuild removes the record the mark says is finished, so the copy
// is not sent again and the other copies of the batch are settled too.
void remove_delivered_record(store::Env& env, const config::Config& cfg, const store::QueueRecord& rec) {
	try {
		remove_record(env, cfg, rec, RecipientState::delivered);
	} catch (const std::exception& e) {
		log::error("queue: removing delivered record failed",
		           {{"id", std::to_string(rec.id)}, {"err", e.what()}});
	}
}

// The original header section for the DSN's third part: prefix + the
// file's bytes up to the empty line (at most 256 KiB).
std::string original_headers(const config::Config& cfg, const store::QueueRecord& rec) {
	std::string text = rec.prefix;
	UniqueFd fd(::open(queue_file_path(cfg.data_dir, rec.message_file).c_str(), O_RDONLY | O_CLOEXEC));
	if (fd && ::lseek(fd.get(), rec.data_offset, SEEK_SET) == rec.data_offset) {
		char buf[8192];
		while (text.size() < 256 * 1024) {
			ssize_t n = ::read(fd.get(), buf, sizeof buf);
			if (n <= 0) break;
			text.append(buf, static_cast<size_t>(n));
			if (text.find("\r\n\r\n") != std::string::npos) break;
		}
	}
	size_t end = text.find("\r\n\r\n");
	if (end != std::string::npos) text.resize(end + 2);
	return text;
}

// RFC 3461 4.3 RET=FULL returns the whole message with a failure notice,
// up to this size (larger ones come back with their headers only, as
// Postfix's bounce_size_limit does).
constexpr int64_t max_returned_message = 100 * 1024;

// The whole message (prefix included) for RET=FULL; "" when it is too
// large or cannot be read (the caller then returns the headers).
std::string original_message(const config::Config& cfg, const store::QueueRecord& rec) {
	if (rec.size > max_returned_message) return "";
	std::string text = rec.prefix;
	UniqueFd fd(::open(queue_file_path(cfg.data_dir, rec.message_file).c_str(), O_RDONLY | O_CLOEXEC));
	if (!fd) return "";
	char buf[8192];
	int64_t offset = rec.data_offset;
	for (;;) {
		ssize_t n = ::pread(fd.get(), buf, sizeof buf, offset);
		if (n < 0 && errno == EINTR) continue;
		if (n < 0) return "";
		if (n == 0) break;
		text.append(buf, static_cast<size_t>(n));
		offset += n;
		if (static_cast<int64_t>(text.size()) > max_returned_message) return "";
	}
	return text;
}

// What a notice returns of the message (RFC 3461 4.3): the whole message
// for a failure with RET=FULL, otherwise the header section (successes and
// delays never carry the content).
struct Returned {
	std::string headers;
	std::string message;
};

// The enhanced status code of an error text ("550 5.1.1 …" or "5.6.7 …").
std::string status_of(const std::string& error) {
	ReplyParser parser;
	if (parser.feed_line(error) && parser.error().empty()) return parser.take().enhanced;
	if (error.size() >= 5 && (error[0] == '4' || error[0] == '5') && error[1] == '.') {
		size_t sp = error.find(' ');
		return error.substr(0, sp);
	}
	return "";
}

bool is_smtp_reply(const std::string& error) { return smtp::reply_code_in_range(smtp::reply_line_code(error)); }

// A notice's Remote-MTA value (RFC 3464 2.3.5), "dns;" added by the writer.
std::string remote_mta_name(const std::string& host, const std::string& ip) { return host + " ([" + ip + "])"; }

// An address with its domain in the ASCII form (as it was, when it does not
// parse).
std::string ascii_form(const std::string& address) {
	std::optional<smtp::Address> parsed = smtp::parse_address(address);
	return parsed ? parsed->to_ascii_string() : address;
}

// Outgoing-failure DSNs are not sent over SMTP (doc/behaviour.md §12): they
// go straight into the sender account's INBOX, or the postmaster's mailbox
// when the account is gone. Runs on a worker. Never throws: a DSN that cannot
// be written is logged, the queue record is dealt with anyway.
enum class DsnKind { failed, delayed, delivered, relayed };

Returned returned_content(const config::Config& cfg, const store::QueueRecord& rec, DsnKind kind) {
	Returned r;
	if (rec.from.empty()) return r;  // no notice will be sent
	if (kind == DsnKind::failed && rec.dsn_ret == "FULL") r.message = original_message(cfg, rec);
	if (r.message.empty()) r.headers = original_headers(cfg, rec);
	return r;
}

// The DSN events the recipient's NOTIFY asks for (RFC 3461 4.1).
bool dsn_requested(const store::QueueRecord& rec, DsnKind kind) {
	using smtp::DsnEvent;
	DsnEvent event = kind == DsnKind::failed ? DsnEvent::failure
	    : kind == DsnKind::delayed           ? DsnEvent::delay
						 : DsnEvent::success;
	return smtp::dsn_wanted(rec.notify, event);
}

// The notice's Action field (RFC 3464 2.3.3).
const char* action_name(DsnKind kind) {
	switch (kind) {
	case DsnKind::failed: return "failed";
	case DsnKind::delayed: return "delayed";
	case DsnKind::relayed: return "relayed";
	case DsnKind::delivered: break;
	}
	return "delivered";
}

// Where a notice about `rec` goes: the sender's account, or the
// postmaster's mailbox when the account is gone; nullptr when neither.
const config::Account* notice_account(const config::Config& cfg, const store::QueueRecord& rec, std::string& mailbox) {
	mailbox = "INBOX";
	if (auto it = cfg.accounts.find(rec.sender_account); it != cfg.accounts.end()) return &it->second;
	std::string lp, dom;
	split_address(rec.from, lp, dom);
	if (const config::Account* account = cfg.account_for_address(lp, dom)) return account;
	if (auto it = cfg.accounts.find(cfg.postmaster.account); it != cfg.accounts.end()) {
		mailbox = cfg.postmaster.mailbox;
		return &it->second;
	}
	return nullptr;
}

// The one recipient's part of the notice (RFC 3464 2.3).
message::DsnRecipient notice_recipient(const store::QueueRecord& rec, DsnKind kind, const std::string& error,
                                       const Queue::RemoteReport& remote, const std::vector<std::time_t>& next_attempts,
                                       int64_t now) {
	message::DsnRecipient r;
	r.final_recipient = rec.to;
	r.original_recipient = rec.orcpt;
	r.action = action_name(kind);
	const char status_class = kind == DsnKind::failed ? '5' : kind == DsnKind::delayed ? '4' : '2';
	// The remote's own words where they failed the host, else the error.
	const std::string& reply = remote.reply.empty() ? error : remote.reply;
	r.status = status_class == '2' ? "2.0.0" : status_of(reply);
	// A 4.x.y that became final after the last attempt is reported as
	// 5.x.y, its subject and detail kept, as the model does.
	if (!r.status.empty()) r.status[0] = status_class;
	r.remote_mta = remote.mta;
	if (is_smtp_reply(reply)) r.diagnostic = "smtp; " + reply;
	r.last_attempt = static_cast<std::time_t>(rec.last_attempt ? rec.last_attempt : now);
	if (kind != DsnKind::failed && !next_attempts.empty()) r.will_retry_until = next_attempts.back();
	return r;
}

// The notice's text, composed and DKIM-signed; `message_id` receives its id.
std::string compose_notice(const config::Config& cfg, const store::QueueRecord& rec, DsnKind kind,
                           const std::string& error, const Queue::RemoteReport& remote,
                           const std::vector<std::time_t>& next_attempts, int64_t now, const Returned& returned,
                           std::string& message_id) {
	message::DsnMessage m;
	m.smtputf8 = rec.smtputf8;
	m.from = "postmaster@" + cfg.hostname;
	m.to = rec.from;
	m.subject = kind == DsnKind::failed ? message::subject_failed
	    : kind == DsnKind::delayed      ? message::subject_delayed
	    : kind == DsnKind::relayed      ? message::subject_relayed
					    : message::subject_delivered;
	m.message_id = message::make_message_id(cfg.hostname);
	message_id = m.message_id;
	if (!rec.message_id.empty()) m.references = "<" + rec.message_id + ">";
	m.reporting_mta = cfg.hostname;
	m.envid = rec.envid;
	m.arrival = static_cast<std::time_t>(rec.queued);
	m.date = static_cast<std::time_t>(now);
	m.tz_offset_s = message::local_utc_offset(m.date);
	const std::string remote_host = remote.mta.substr(0, remote.mta.find(' '));
	m.text_body = kind == DsnKind::failed ? message::failed_dsn_text(rec.to, error)
	    : kind == DsnKind::delayed
	    // The model's delayed text names the recipient with its ASCII domain.
	    ? message::delayed_dsn_text(ascii_form(rec.to), error, next_attempts, static_cast<std::time_t>(now),
	                                dsn_requested(rec, DsnKind::failed))
	    : message::success_dsn_text(rec.to, kind == DsnKind::relayed, remote_host);
	m.recipients.push_back(notice_recipient(rec, kind, error, remote, next_attempts, now));
	m.original_headers = returned.headers;
	m.original_message = returned.message;
	// Into the sender's own mailbox: in the UTF-8 form when the message was
	// SMTPUTF8 (RFC 6533), as the model writes it.
	// RFC 6376: signed like any mail of the postmaster's domain, when it
	// has keys (doc/behaviour.md §13).
	return server::signed_dsn_text(cfg, m, rec.smtputf8, static_cast<std::time_t>(now));
}

// A written notice to queue to `to` (in `domain`), with the null reverse path.
server::OutboundMessage queued_notice(const std::string& message_id, const std::string& path, size_t size,
                                      const std::string& to, const std::string& domain) {
	server::OutboundMessage msg;
	msg.message_id = message_id;
	msg.message_path = path;
	msg.message_size = static_cast<int64_t>(size);
	msg.recipients.push_back({to, domain, ""});
	return msg;
}

// A DSN for an account that takes its mail over LMTP (delivery.lmtp) goes
// the way of its other mail: queued to an address of that account, so the
// queue hands it to the LMTP server, with retries (as an MTA queues its
// bounces). nullopt when no address of the notice leads to that account:
// then it goes to the Maildir like any other DSN.
std::optional<server::OutboundMessage> dsn_for_lmtp(const config::Config& cfg, const config::Account& account,
                                                    const std::string& to, const std::string& message_id,
                                                    const std::string& path, size_t size) {
	if (account.lmtp.empty()) return std::nullopt;
	for (const std::string& address : {to, "postmaster@" + cfg.hostname}) {
		std::string localpart, domain;
		split_address(address, localpart, domain);
		auto rcpt = cfg.resolve_recipient(localpart, domain);
		if (rcpt.kind != config::Config::RcptKind::local || !rcpt.account || rcpt.account->name != account.name)
			continue;
		return queued_notice(message_id, path, size, address, ascii_lower(domain));
	}
	return std::nullopt;
}

// `lmtp_dsns` receives the notices that leave through the queue (for
// accounts delivered over LMTP, and for senders of the outside world), to
// be queued from the loop (Queue::enqueue_dsns).
void deliver_dsn(const config::Config& cfg, const store::QueueRecord& rec, DsnKind kind, const std::string& error,
                 const Queue::RemoteReport& remote, const std::vector<std::time_t>& next_attempts, int64_t now,
                 const Returned& returned, std::vector<server::OutboundMessage>& lmtp_dsns) {
	if (!dsn_requested(rec, kind)) {
		log::info("no dsn: not requested by NOTIFY", {{"id", std::to_string(rec.id)}, {"to", rec.to}});
		return;
	}
	if (rec.from.empty()) {
		// RFC 5321 4.5.5 / RFC 3461 6.2: never a DSN about a DSN.
		log::info("no dsn for null reverse path", {{"id", std::to_string(rec.id)}, {"to", rec.to}});
		return;
	}
	try {
		std::string sender_local, sender_domain;
		split_address(rec.from, sender_local, sender_domain);
		const std::string domain = ascii_lower(sender_domain);
		// A port-25 message's copy the queue retries (an LMTP copy,
		// doc/behaviour.md §9) has a sender of the outside world: its
		// notice goes back there through the queue, as the session's own
		// notices do, not to a mailbox here.
		const bool outside = rec.sender_account.empty() && !cfg.domains.count(domain) &&
		    !iequals(domain, cfg.hostname);
		std::string mailbox;
		const config::Account* account = outside ? nullptr : notice_account(cfg, rec, mailbox);
		if (!outside && !account) {
			log::error("dsn: no account for sender and no postmaster account",
			           {{"from", rec.from}, {"to", rec.to}});
			return;
		}
		std::string message_id;
		std::string text = compose_notice(cfg, rec, kind, error, remote, next_attempts, now, returned,
		                                  message_id);
		std::string tmp_dir = cfg.data_dir + "/tmp";
		::mkdir(tmp_dir.c_str(), 0700);
		// The notice's bytes are copied into the Maildir, then this goes.
		TempFile notice(tmp_dir + "/dsn-" + random_hex(12));
		store::write_new_file(notice.path(), text);
		if (outside) {
			lmtp_dsns.push_back(queued_notice(message_id, notice.path(), text.size(), rec.from, domain));
			notice.commit();  // the queue takes the file over
			log::info(std::string(action_name(kind)) + " dsn queued for the sender",
			          {{"id", std::to_string(rec.id)}, {"to", rec.to}, {"from", rec.from}});
			return;
		}
		if (auto queued = dsn_for_lmtp(cfg, *account, rec.from, message_id, notice.path(), text.size())) {
			notice.commit();  // the queue takes the file over
			lmtp_dsns.push_back(std::move(*queued));
			log::info(std::string(action_name(kind)) + " dsn queued for lmtp",
			          {{"id", std::to_string(rec.id)}, {"to", rec.to}, {"account", account->name}});
			return;
		}
		std::vector<store::MaildirCopy> copies(1);
		copies[0].maildir = account->maildir;
		copies[0].mailbox = mailbox;
		copies[0].prefix = "Return-Path: <postmaster@" + cfg.hostname + ">\r\n";
		store::deliver_maildir(notice.path(), copies, cfg.hostname);
		notice.remove();
		log::info(std::string(action_name(kind)) + " dsn delivered",
		          {{"id", std::to_string(rec.id)}, {"to", rec.to}, {"account", account->name}});
	} catch (const std::exception& e) {
		log::error("dsn delivery failed", {{"id", std::to_string(rec.id)}, {"err", e.what()}});
	}
}

// The times of the attempts still to come after `rec`'s attempt, as the
// scheduler will make them (doc/behaviour.md D11: the delayed DSN tells the truth).
std::vector<std::time_t> remaining_attempts(const store::QueueRecord& rec, const Policy& p) {
	std::vector<std::time_t> times;
	int64_t t = rec.next_attempt;
	for (int a = rec.attempts; a < p.max_attempts; a++) {
		times.push_back(static_cast<std::time_t>(t));
		t += retry_delay_seconds(p.retry_base_s, a);
	}
	return times;
}

// A failed attempt of `rec` (attempts already counted by mark_attempt).
void settle_failure(store::Env& env, const config::Config& cfg, store::QueueRecord rec, const std::string& error,
                    bool permanent, const Queue::RemoteReport& remote, const Policy& p, int64_t now, Settled& out) {
	rec.last_error = error;
	if (permanent || rec.attempts >= p.max_attempts) {
		log::info("delivery failed permanently",
		          {{"id", std::to_string(rec.id)},
		           {"to", rec.to},
		           {"attempts", std::to_string(rec.attempts)},
		           {"err", error}});
		// The record goes first: a crash after it loses at most the DSN,
		// never sends the message again. The header section for the DSN is
		// read before the file goes with the record.
		Returned returned = dsn_requested(rec, DsnKind::failed) ? returned_content(cfg, rec, DsnKind::failed)
									: Returned{};
		remove_record(env, cfg, rec, RecipientState::failed);
		out.removed.push_back(rec.id);
		deliver_dsn(cfg, rec, DsnKind::failed, error, remote, {}, now, returned, out.lmtp_dsns);
		return;
	}
	if (!env.queue_update(rec)) {
		out.removed.push_back(rec.id);  // dropped by ternctl meanwhile
		return;
	}
	out.rescheduled[rec.id] = rec.next_attempt;
	log::info("delivery deferred",
	          {{"id", std::to_string(rec.id)},
	           {"to", rec.to},
	           {"attempts", std::to_string(rec.attempts)},
	           {"next_attempt", iso8601_utc(rec.next_attempt)},
	           {"err", error}});
	if (rec.attempts == p.delayed_after)
		deliver_dsn(cfg, rec, DsnKind::delayed, error, remote, remaining_attempts(rec, p), now,
		            returned_content(cfg, rec, DsnKind::delayed), out.lmtp_dsns);
}

Policy policy_of(const config::Config& cfg, const QueueOptions& o) {
	Policy p;
	p.retry_base_s = std::max<int64_t>(cfg.queue.retry_base_s, 1);
	p.max_attempts = static_cast<int>(std::max<int64_t>(cfg.queue.max_attempts, 1));
	p.delayed_after = o.delayed_dsn_after;
	return p;
}

}  // namespace

bool make_queue_dir(const config::Config& cfg) {
	return ::mkdir(queue_dir(cfg.data_dir).c_str(), 0700) == 0 || errno == EEXIST;
}

// One delivery attempt of records that share a destination. It lives in
// the queue's ConnTable; every completion that comes back to it (worker
// results, DNS answers, SMTP and LMTP client events) carries its handle and
// goes through with_delivery, never a pointer (doc/design.md lifetime rule).
//
// Each waiting state has its deadline: DNS queries the resolver's
// timeout, the SMTP client each step's (RFC 5321 4.5.3.2, including the
// wait for a body chunk), LMTP its lmtp_timeout_s; worker jobs (records,
// Maildir copies, body chunks) always complete.
struct Queue::Delivery {
	core::ConnHandle self;
	uint64_t id = 0;  // for logs
	std::string domain;
	std::vector<uint64_t> ids;               // records this delivery holds in flight
	std::vector<store::QueueRecord> remote;  // records to send over SMTP (or LMTP)
	std::vector<LmtpDestination> lmtp;       // set: `remote` goes to these LMTP servers, one each
	std::shared_ptr<const config::Config> config;
	std::vector<std::string> hosts;
	size_t host_index = 0;
	std::vector<std::string> addresses;
	size_t address_index = 0;
	size_t addresses_dialed = 0;  // this attempt, all hosts (max_addresses_per_attempt)
	int port = config::default_smtp_port;
	TlsMode tls = TlsMode::opportunistic;
	bool tls_off = false;  // this address is being retried without TLS
	// RFC 8689: hosts refused because they could not meet REQUIRETLS, and
	// hosts that failed otherwise (the failure is final only when every
	// host was of the first kind).
	bool requiretls_unmet = false;
	bool other_host_failure = false;
	bool tls_required_no = false;  // the message says "TLS-Required: No" (RFC 8689 4.3)
	// The destination's MTA-STS policy for this attempt, when it is in
	// mode enforce or testing (RFC 8461 5), and its fetch while under way.
	std::optional<mailauth::mta_sts::Policy> sts;
	net::HttpsGetHandle sts_fetch;
	// The last host's failure and, when a reply of that host's was it, who
	// answered: always set together (note_failure), so that a notice never
	// quotes one host's reply beside another host's error.
	std::string last_error;
	RemoteReport last_remote;
	void note_failure(std::string error, RemoteReport remote = {}) {
		last_error = std::move(error);
		last_remote = std::move(remote);
	}
	std::unique_ptr<SmtpClient> client;
	// A client that ended inside the callback running now: destroyed when
	// the callback has returned.
	std::unique_ptr<SmtpClient> retired_client;
	bool ended = false;  // released; erased after the callback
	// The result after the end of data is being recorded (the client waits
	// to say QUIT), or was recorded: the records are settled then, and the
	// destination is free while the client says QUIT.
	bool recording = false;
	bool recorded = false;
	bool slot_freed = false;
};

// What the worker found for a delivery's records (Queue::begin).
struct PreparedAttempt {
	std::vector<store::QueueRecord> remote;
	std::vector<store::QueueRecord> lmtp;
	std::vector<Queue::LmtpDestination> lmtp_to;
	bool tls_required_no = false;
	Settled settled;
	uint64_t local_delivered = 0;
	std::string error;
};

static bool smarthost_verifies(const config::Config& config);

Queue::Queue(struct ev_loop* loop, core::WorkerPool& pool, mailauth::Resolver& resolver, store::Env& env,
             std::shared_ptr<const config::Config> config, QueueOptions options)
	: loop_(loop), pool_(pool), resolver_(resolver), env_(env), config_(std::move(config)),
	  options_(std::move(options)), timer_(loop, [this] { schedule(); }) {
	try {
		tls_context_ = std::make_shared<net::TlsClientContext>();
	} catch (const std::exception& e) {
		log::error("queue: no TLS client context, delivering without STARTTLS", {{"err", e.what()}});
	}
	if (smarthost_verifies(*config_)) load_verified_context(*config_, false);
}

// Whether the config sends mail through a smarthost whose certificate must verify.
static bool smarthost_verifies(const config::Config& config) {
	return !config.queue.smarthost_host.empty() &&
	    (config.queue.smarthost_tls == "required" || config.queue.smarthost_tls == "implicit");
}

// smarthost_tls "required"/"implicit" needs it always (loaded at start and
// reload), REQUIRETLS messages (RFC 8689) whatever the smarthost_tls mode or
// without a smarthost, and MTA-STS policies (then from the system's trust
// store, QueueOptions::system_ca_file; loaded when the first of them is
// routed).
void Queue::load_verified_context(const config::Config& config, bool on_worker) {
	const bool required_by_config = smarthost_verifies(config);
	struct Loaded {
		uint64_t generation = 0;
		std::string ca_file;
		std::shared_ptr<const net::TlsClientContext> context;
		std::string error;
	};
	auto loaded = std::make_shared<Loaded>();
	loaded->generation = verified_context_loads_.start();
	loaded->ca_file = config.queue.smarthost_host.empty() ? options_.system_ca_file
							      : config.queue.smarthost_ca_file;
	auto load = [loaded] {
		try {
			loaded->context = std::make_shared<net::TlsClientContext>(loaded->ca_file);
		} catch (const std::exception& e) {
			loaded->error = e.what();
		}
	};
	verified_context_loading_ = true;
	auto use = [this, loaded, required_by_config] {
		// Workers may finish out of order after quick successive reloads.
		if (!verified_context_loads_.is_latest(loaded->generation)) return;
		verified_context_loading_ = false;
		if (!loaded->context && !required_by_config)
			log::info("queue: no trusted CAs for REQUIRETLS",
			          {{"file", loaded->ca_file}, {"error", loaded->error}});
		else if (!loaded->context)
			log::error("queue: cannot load smarthost_ca_file",
			           {{"file", loaded->ca_file}, {"error", loaded->error}});
		verified_context_ = loaded->context;
		verified_context_error_ = loaded->error;
		std::vector<core::ConnHandle> waiting;
		waiting.swap(waiting_for_trust_);
		for (core::ConnHandle h : waiting) with_delivery(h, [&](Delivery& d) { route(d); });
	};
	if (!on_worker) {
		load();
		use();
		return;
	}
	// Parsing a CA bundle reads a file: never on the loop (doc/design.md).
	pool_.submit(load, use);
}

Queue::~Queue() { shutdown(); }

// The delivery's handle as a DNS query owner: cancel_owner then stops
// exactly its queries, never those of a later delivery in the same slot.
uint64_t Queue::dns_owner(core::ConnHandle h) const {
	return dns_owner_base | (uint64_t(h.slot) << 31) | (h.generation & 0x7fffffffu);
}

template <class F>
void Queue::with_delivery(core::ConnHandle h, F&& f) {
	Delivery* d = deliveries_.get(h);
	if (!d || d->ended) return;
	// A delivery is destroyed only when no callback of it is running: the
	// outermost one erases what ended below it.
	++callback_depth_;
	try {
		f(*d);
	} catch (const std::exception& e) {
		// An unexpected failure ends this delivery, never the daemon: its
		// records keep their next attempt, committed before it started.
		log::error("queue: delivery failed unexpectedly", {{"id", std::to_string(d->id)}, {"err", e.what()}});
		if (!d->ended) release(*d, {}, {});
	}
	if (--callback_depth_ != 0) return;
	// A client that ended in this callback is no longer on the stack.
	if (Delivery* still = deliveries_.get(h)) still->retired_client.reset();
	erase_ended();
}

void Queue::erase_ended() {
	if (ended_.empty()) return;
	for (core::ConnHandle h : std::exchange(ended_, {})) deliveries_.erase(h);
	log_gauge();
	schedule();
}

void Queue::shutdown() {
	stopping_ = true;
	timer_.stop();
	deliveries_.for_each([this](core::ConnHandle h, Delivery& d) {
		resolver_.cancel_owner(dns_owner(h));
		d.sts_fetch.cancel();
		if (d.client) d.client->abort();
	});
}

void Queue::start() { load(options_.rebuild_at_start); }

void Queue::resync() { load(true); }

void EnqueuesInProgress::add(const std::string& base) {
	std::lock_guard<std::mutex> lock(mutex_);
	bases_.insert(base);
}

void EnqueuesInProgress::remove(const std::string& base) {
	std::lock_guard<std::mutex> lock(mutex_);
	bases_.erase(base);
}

bool EnqueuesInProgress::contains(const std::string& base) const {
	std::lock_guard<std::mutex> lock(mutex_);
	return bases_.count(base) != 0;
}

Queue::Entry Queue::entry_of(const store::QueueRecord& record) {
	Entry e;
	e.next_attempt = record.next_attempt;
	e.domain = record.recipient_domain;
	Sha256 group;
	group.update(message_base(record.message_file) + "\n" + record.from + "\n");
	group.update(record.prefix);
	e.group = group.finish();
	return e;
}

void Queue::load(bool rebuild) {
	struct Loaded {
		std::vector<std::pair<uint64_t, Entry>> entries;
		std::string error;
		std::vector<store::StoredStsPolicy> sts_policies;
		bool sts_read_failed = false;
	};
	auto st = std::make_shared<Loaded>();
	auto cfg = config_;
	const uint64_t seq_at_start = enqueue_seq_;
	store::Env& env = env_;
	// The policies' table is read once: later loads (a resync) would bring
	// back a domain whose drop is still on its way to the table.
	const bool read_sts = !std::exchange(sts_table_read_, true);
	pool_.submit(
	    [st, cfg, &env, rebuild, read_sts, in_progress = in_progress_] {
		    // A failed rebuild is logged; the records that are there still load.
		    if (rebuild) {
			    try {
				    RebuildReport report = rebuild_queue(env, queue_dir(cfg->data_dir), now_s(),
				                                         [&in_progress](const std::string& base) {
										 return in_progress->contains(base);
									 });
				    if (report.rebuilt || report.removed || report.unreadable)
					    log::info("queue: rebuild from files",
					              {{"rebuilt", std::to_string(report.rebuilt)},
					               {"removed", std::to_string(report.removed)},
					               {"kept_unreadable", std::to_string(report.unreadable)}});
			    } catch (const std::exception& e) {
				    log::error("queue: rebuild from files failed", {{"err", e.what()}});
			    }
		    }
		    try {
			    env.queue_scan(
				[&] { st->entries.clear(); },
				[&](const store::QueueRecord& r) { st->entries.emplace_back(r.id, entry_of(r)); });
		    } catch (const std::exception& e) {
			    st->error = e.what();
		    }
		    // The MTA-STS policies kept (store/mta_sts_policies.h), in
		    // place before the first delivery is routed.
		    try {
			    if (read_sts) st->sts_policies = store::sts_policies_load(env, now_s());
		    } catch (const std::exception& e) {
			    log::error("queue: reading the MTA-STS policies", {{"err", e.what()}});
			    st->sts_read_failed = true;
		    }
	    },
	    [this, st, seq_at_start] {
		    if (!st->error.empty()) {
			    log::error("queue: loading records failed", {{"err", st->error}});
			    if (st->sts_read_failed) sts_table_read_ = false;  // the next load tries again
			    // The policies join the cache with records that say which
			    // domains keep theirs (D44): those of a load that
			    // succeeded meanwhile (loads overlap on the workers), else
			    // the next one's; until then no delivery runs, so none is
			    // dropped from the table meanwhile.
			    if (loaded_)
				    add_loaded_sts_policies(std::move(st->sts_policies));
			    else
				    std::move(st->sts_policies.begin(), st->sts_policies.end(),
				              std::back_inserter(sts_policies_read_unjoined_));
			    return;
		    }
		    take_loaded_entries(st->entries, seq_at_start);
		    if (st->sts_read_failed) sts_table_read_ = false;  // the next load tries again
		    std::move(sts_policies_read_unjoined_.begin(), sts_policies_read_unjoined_.end(),
		              std::back_inserter(st->sts_policies));
		    sts_policies_read_unjoined_.clear();
		    add_loaded_sts_policies(std::move(st->sts_policies));
		    loaded_ = true;
		    log_gauge();
		    schedule();
	    });
}

void Queue::take_loaded_entries(std::vector<std::pair<uint64_t, Entry>>& loaded, uint64_t seq_at_start) {
	std::map<uint64_t, Entry> fresh;
	for (auto& [id, entry] : loaded) {
		auto it = entries_.find(id);
		fresh[id] = it != entries_.end() && it->second.in_flight ? it->second : std::move(entry);
	}
	// Records in flight that are gone from the database stay until their
	// delivery ends (its update then finds nothing). So do records
	// enqueued while the list was read: their commit may have come after it.
	for (auto& [id, e] : entries_)
		if ((e.in_flight || e.added_seq > seq_at_start) && !fresh.count(id)) fresh[id] = e;
	replace_entries(std::move(fresh));
}

// After the records: a domain with queued mail keeps its policy however
// long ago it was fetched (D44). A policy fetched meanwhile is newer and
// stays.
void Queue::add_loaded_sts_policies(std::vector<store::StoredStsPolicy> loaded) {
	std::vector<std::string> dropped = sts_cache_.add_loaded(std::move(loaded), now_s(), has_queued_mail());
	if (!dropped.empty()) write_sts_policies(nullptr, std::move(dropped));
}

void Queue::put_entry(uint64_t id, Entry entry) {
	auto [it, added] = entries_.try_emplace(id);
	if (!added) uncount_queued(it->second.domain);
	queued_per_domain_[entry.domain]++;
	it->second = std::move(entry);
}

void Queue::erase_entry(uint64_t id) {
	auto it = entries_.find(id);
	if (it == entries_.end()) return;
	uncount_queued(it->second.domain);
	entries_.erase(it);
}

void Queue::replace_entries(std::map<uint64_t, Entry> entries) {
	entries_ = std::move(entries);
	queued_per_domain_.clear();
	for (const auto& [id, entry] : entries_) queued_per_domain_[entry.domain]++;
}

void Queue::uncount_queued(const std::string& domain) {
	auto it = queued_per_domain_.find(domain);
	if (it != queued_per_domain_.end() && --it->second == 0) queued_per_domain_.erase(it);
}

StsCache::HasQueuedMail Queue::has_queued_mail() const {
	return [this](const std::string& domain) { return queued_per_domain_.count(domain) != 0; };
}

namespace {

// The envelope a queue file carries of its message (queue_file.h).
QueueFileEnvelope envelope_of(const server::OutboundMessage& msg, int64_t now) {
	QueueFileEnvelope envelope;
	envelope.queued = now;
	envelope.sender_account = msg.sender_account;
	envelope.from = msg.from;
	envelope.message_id = msg.message_id;
	envelope.has_8bit = msg.has_8bit;
	envelope.smtputf8 = msg.smtputf8;
	envelope.dsn_utf8 = msg.dsn_utf8;
	envelope.data_size = msg.message_size;
	envelope.dsn_ret = msg.dsn_ret;
	envelope.envid = msg.envid;
	envelope.requiretls = msg.requiretls;
	for (const auto& rcpt : msg.recipients) {
		QueueFileRecipient r;
		r.to = rcpt.to;
		r.domain = rcpt.domain;
		if (r.domain.empty()) {
			std::string lp;
			split_address(rcpt.to, lp, r.domain);
		}
		r.domain = ascii_lower(r.domain);
		r.prefix = rcpt.prefix;
		r.notify = rcpt.notify;
		r.orcpt = rcpt.orcpt;
		envelope.recipients.push_back(std::move(r));
	}
	return envelope;
}

// The message's file links base.0 … base.<n-1>, one per recipient, fsync'd
// into the directory. The file is written under a temp name, fsync'd, then
// renamed, so queue/ only ever holds complete files. The links stay armed:
// they are removed unless the caller commits them with the records.
std::vector<TempFile> write_links(const std::string& dir, const std::string& base, const QueueFileEnvelope& envelope,
                                  const std::string& message_path, QueueFileLayout& layout) {
	TempFile temp(dir + "/" + queue_temp_name(base));
	layout = write_queue_file(temp.path(), envelope, message_path);
	std::vector<TempFile> links;
	std::string first = dir + "/" + base + ".0";
	if (::rename(temp.path().c_str(), first.c_str()) != 0) throw store::file_error("rename", temp.path(), errno);
	temp.commit();
	links.emplace_back(first);
	// One hard link per further recipient: each record owns its link, so
	// the message goes with its last record.
	for (size_t i = 1; i < envelope.recipients.size(); i++) {
		std::string link = dir + "/" + base + "." + std::to_string(i);
		if (::link(first.c_str(), link.c_str()) != 0) throw store::file_error("link", link, errno);
		links.emplace_back(link);
	}
	store::fsync_dir(dir);
	return links;
}

// The durable part of an enqueue, on a worker: the queue file and its links,
// then one transaction with every record (and the outgoing history). Throws
// with nothing left behind on failure.
std::vector<store::QueueRecord> store_enqueued(store::Env& env, const std::string& dir,
                                               const server::OutboundMessage& msg, const std::string& base,
                                               int64_t now) {
	QueueFileEnvelope envelope = envelope_of(msg, now);
	QueueFileLayout layout;
	std::vector<TempFile> links = write_links(dir, base, envelope, msg.message_path, layout);
	std::vector<store::QueueRecord> records;
	for (size_t i = 0; i < msg.recipients.size(); i++)
		records.push_back(
		    queue_record_for(envelope, i, base + "." + std::to_string(i), layout.data_offset, now));
	store::OutgoingLog outgoing;
	if (msg.record_outgoing) {
		outgoing.account = msg.sender_account;
		outgoing.time = now;
		for (auto& rcpt : msg.recipients) outgoing.recipients.push_back(rcpt.to);
	}
	env.queue_add_many(records, msg.record_outgoing ? &outgoing : nullptr);
	for (auto& link : links) link.commit();
	// Committed: from here on the file alone stands for an acknowledged
	// message (the 250 follows); a rebuild deletes files that never got
	// this mark.
	const std::string first = dir + "/" + base + ".0";
	if (!poke_queue_file(first, layout.acknowledged_offset, '1'))
		log::error("queue: marking the file acknowledged failed", {{"file", first}});
	return records;
}

// The error text of a failed enqueue; the database's log could not grow
// when the disk is full too.
std::string enqueue_failure_text(const std::exception& e) {
	auto* db_error = dynamic_cast<const store::DbError*>(&e);
	if (db_error && is_storage_full(db_error->code())) return storage_full_error(e.what());
	return e.what();
}

}  // namespace

void Queue::enqueue(server::OutboundMessage msg, std::function<void(std::string error)> done) {
	if (msg.recipients.empty()) {
		done("no recipients");
		return;
	}
	struct Enqueued {
		std::vector<store::QueueRecord> records;
		std::string error;
	};
	auto st = std::make_shared<Enqueued>();
	auto cfg = config_;
	store::Env& env = env_;
	pool_.submit(
	    [st, cfg, &env, msg = std::move(msg), in_progress = in_progress_] {
		    // The queue took the session's file over: its bytes are in the
		    // queue file when this job ends, or the enqueue failed.
		    TempFile session_file(msg.message_path);
		    std::string dir = queue_dir(cfg->data_dir);
		    std::string base;
		    try {
			    if (!make_queue_dir(*cfg)) throw store::file_error("mkdir", dir, errno);
			    int64_t now = now_s();
			    base = std::to_string(now) + "-" + random_hex(8);
			    in_progress->add(base);
			    st->records = store_enqueued(env, dir, msg, base, now);
		    } catch (const std::exception& e) {
			    st->error = enqueue_failure_text(e);
			    st->records.clear();
		    }
		    session_file.remove();
		    if (!base.empty()) in_progress->remove(base);
	    },
	    [this, st, done = std::move(done)] {
		    if (!st->error.empty()) {
			    log::error("queue: enqueue failed", {{"err", st->error}});
			    done(st->error);
			    return;
		    }
		    add_enqueued(st->records);
		    done("");
		    schedule();
	    });
}

// Records of a committed enqueue join the schedule.
void Queue::add_enqueued(const std::vector<store::QueueRecord>& records) {
	enqueue_seq_++;
	for (auto& r : records) {
		Entry e = entry_of(r);
		e.added_seq = enqueue_seq_;
		put_entry(r.id, std::move(e));
		log::info(
		    "queued",
		    {{"id", std::to_string(r.id)}, {"from", r.from}, {"to", r.to}, {"size", std::to_string(r.size)}});
	}
	log_gauge();
}

void Queue::reload(std::shared_ptr<const config::Config> config) {
	config_ = std::move(config);
	if (smarthost_verifies(*config_) || !waiting_for_trust_.empty()) {
		load_verified_context(*config_, true);
	} else {
		// Parsed again, from the file the new config names, when needed.
		verified_context_loads_.start();  // a load in flight is stale
		verified_context_loading_ = false;
		verified_context_.reset();
		verified_context_error_.clear();
	}
	schedule();
}

void Queue::kick(uint64_t id) {
	int64_t now = now_s();
	for (auto& [eid, e] : entries_)
		if ((id == 0 || eid == id) && !e.in_flight) e.next_attempt = now;
	schedule();
}

void Queue::log_gauge() {
	if (entries_.size() == last_logged_size_) return;
	last_logged_size_ = entries_.size();
	log::debug("queue gauge",
	           {{"messages", std::to_string(entries_.size())}, {"deliveries", std::to_string(deliveries_.size())}});
}

void Queue::schedule() {
	if (!loaded_ || stopping_) return;
	const int64_t now = now_s();
	const size_t max_concurrent = static_cast<size_t>(std::max<int64_t>(config_->queue.max_concurrent, 1));
	std::vector<std::pair<int64_t, uint64_t>> due;
	for (auto& [id, e] : entries_)
		if (!e.in_flight && e.next_attempt <= now) due.emplace_back(e.next_attempt, id);
	std::sort(due.begin(), due.end());
	for (auto& [when, id] : due) {
		if (deliveries_.size() >= max_concurrent) break;
		Entry& first = entries_.at(id);
		// At most one delivery per destination domain at a time (as the model).
		if (first.in_flight || busy_domains_.count(first.domain)) continue;
		std::vector<uint64_t> ids;
		for (auto& [other_id, other] : entries_) {
			if (ids.size() >= max_recipients_per_transaction) break;
			if (!other.in_flight && other.next_attempt <= now && other.domain == first.domain &&
			    other.group == first.group)
				ids.push_back(other_id);
		}
		for (uint64_t i : ids) entries_.at(i).in_flight = true;
		busy_domains_.insert(first.domain);
		auto d = std::make_unique<Delivery>();
		d->id = next_delivery_id_++;
		d->domain = first.domain;
		d->ids = ids;
		d->config = config_;
		Delivery& started = *d;
		started.self = deliveries_.insert(std::move(d));
		begin(started.self, std::move(ids));
	}
	arm_timer();
}

void Queue::arm_timer() {
	const int64_t now = now_s();
	int64_t earliest = INT64_MAX;
	for (auto& [id, e] : entries_)
		if (!e.in_flight && e.next_attempt > now) earliest = std::min(earliest, e.next_attempt);
	if (earliest == INT64_MAX) {
		timer_.stop();
		return;
	}
	// Due records that wait for a free slot or domain are picked up when a
	// delivery ends; the timer is for the first one not due yet.
	timer_.start(static_cast<double>(std::min<int64_t>(earliest - now, 24 * 3600)));
}

namespace {

// The account's LMTP server (delivery.lmtp) takes the record from the loop;
// the attempt counts first, as for a remote host, so a crash leads to a
// later retry. False when the record was dropped meanwhile.
bool take_for_lmtp(store::Env& env, store::QueueRecord& rec, const config::Account& account, const Policy& policy,
                   int64_t now, PreparedAttempt& out) {
	mark_attempt(rec, now, policy);
	if (!env.queue_update(rec)) return false;
	out.lmtp_to.push_back({account.lmtp, account.lmtp_recipient.empty() ? rec.to : account.lmtp_recipient});
	out.lmtp.push_back(std::move(rec));
	return true;
}

// A local recipient's record and where its copy landed.
struct LocalCopy {
	store::QueueRecord rec;
	store::MaildirCopy copy;
};

// Local recipients go straight into their Maildir, never through the
// smarthost; the copy is durable only after fsync_dirs (finish_local).
void copy_locally(store::Env& env, const config::Config& cfg, store::QueueRecord& rec,
                  const config::Config::RcptResult& rcpt, const Policy& policy, int64_t now,
                  std::set<std::string>& dirs, std::vector<LocalCopy>& local, PreparedAttempt& out) {
	std::vector<store::MaildirCopy> copies(1);
	copies[0].maildir = rcpt.account->maildir;
	copies[0].mailbox = rcpt.mailbox.empty() ? "INBOX" : rcpt.mailbox;
	// RFC 5321 4.4: the final delivery adds Return-Path.
	copies[0].prefix = message::build_return_path(rec.from) + rec.prefix;
	try {
		store::deliver_maildir_unsynced(queue_file_path(cfg.data_dir, rec.message_file), copies, cfg.hostname,
		                                dirs, static_cast<uint64_t>(rec.data_offset));
		local.push_back({rec, copies[0]});
	} catch (const std::exception& e) {
		mark_attempt(rec, now, policy);
		settle_failure(env, cfg, rec, std::string("local delivery: ") + e.what(), false, {}, policy, now,
		               out.settled);
	}
}

// One fsync per directory for all local copies (group commit); only then
// does a copy count as delivered. A copy under a directory that cannot be
// synced is taken back and its record's attempt fails for now (counted, so
// that it ends in a notice after max_attempts, not in a copy per retry);
// the others are delivered.
void finish_local(store::Env& env, const config::Config& cfg, const std::set<std::string>& dirs,
                  std::vector<LocalCopy>& local, const Policy& policy, int64_t now, PreparedAttempt& out) {
	if (local.empty()) return;
	const store::DirSyncFailures failed_dirs = store::sync_each_dir(dirs, store::fsync_dir);
	auto failure_of = [&failed_dirs](const std::string& path) -> const std::string* {
		for (const auto& [dir, error] : failed_dirs)
			if (path.starts_with(dir + "/")) return &error;
		return nullptr;
	};
	std::vector<LocalCopy> delivered;
	for (LocalCopy& l : local) {
		const std::string* error = failure_of(l.copy.final_path);
		if (!error) {
			delivered.push_back(std::move(l));
			continue;
		}
		std::vector<store::MaildirCopy> taken_back{l.copy};
		store::withdraw_copies(taken_back);
		mark_attempt(l.rec, now, policy);
		settle_failure(env, cfg, l.rec, "local delivery: " + *error, false, {}, policy, now, out.settled);
	}
	for (auto& [rec, copy] : delivered) {
		// RFC 3461 4.1 NOTIFY=SUCCESS: "delivered" (RFC 3464 2.3.3). The
		// headers are read before the file goes with the record.
		const bool notice = dsn_requested(rec, DsnKind::delivered);
		Returned returned = notice ? returned_content(cfg, rec, DsnKind::delivered) : Returned{};
		remove_delivered_record(env, cfg, rec);
		if (notice) deliver_dsn(cfg, rec, DsnKind::delivered, "", {}, {}, now, returned, out.settled.lmtp_dsns);
		out.settled.removed.push_back(rec.id);
		out.local_delivered++;
		log::info("delivered locally", {{"id", std::to_string(rec.id)}, {"to", rec.to}});
	}
}

// On a worker: reads the records of a delivery, counts the attempt of each
// and sorts them into local copies (done here), LMTP and remote ones.
void prepare_attempt(store::Env& env, const config::Config& cfg, const std::vector<uint64_t>& ids, const Policy& policy,
                     PreparedAttempt& out) {
	const int64_t now = now_s();
	std::vector<LocalCopy> local;
	std::set<std::string> dirs;
	for (uint64_t id : ids) {
		auto rec = env.queue_get(id);
		if (!rec) {
			out.settled.removed.push_back(id);  // dropped meanwhile
			continue;
		}
		std::string localpart, domain;
		split_address(rec->to, localpart, domain);
		auto rcpt = cfg.resolve_recipient(localpart, domain);
		const bool local_account = rcpt.kind == config::Config::RcptKind::local && rcpt.account;
		if (local_account && !rcpt.account->lmtp.empty()) {
			if (!take_for_lmtp(env, *rec, *rcpt.account, policy, now, out))
				out.settled.removed.push_back(id);
		} else if (local_account) {
			copy_locally(env, cfg, *rec, rcpt, policy, now, dirs, local, out);
		} else if (rcpt.kind == config::Config::RcptKind::unknown_user) {
			mark_attempt(*rec, now, policy);
			settle_failure(env, cfg, *rec, "550 5.1.1 no such user", true, {}, policy, now, out.settled);
		} else {
			mark_attempt(*rec, now, policy);
			if (env.queue_update(*rec))
				out.remote.push_back(std::move(*rec));
			else
				out.settled.removed.push_back(id);
		}
	}
	// RFC 8689 4.3: the header is read once per delivery; with REQUIRETLS
	// it does not count (RFC 8689 4.1).
	if (!out.remote.empty() && !out.remote.front().requiretls)
		out.tls_required_no = has_tls_required_no(original_headers(cfg, out.remote.front()));
	finish_local(env, cfg, dirs, local, policy, now, out);
}

}  // namespace

void Queue::begin(core::ConnHandle h, std::vector<uint64_t> ids) {
	auto st = std::make_shared<PreparedAttempt>();
	auto cfg = config_;
	store::Env& env = env_;
	Policy policy = policy_of(*cfg, options_);
	pool_.submit(
	    [st, cfg, &env, ids = std::move(ids), policy] {
		    try {
			    prepare_attempt(env, *cfg, ids, policy, *st);
		    } catch (const std::exception& e) {
			    st->error = e.what();
		    }
	    },
	    [this, st, h] {
		    enqueue_dsns(st->settled.lmtp_dsns);
		    with_delivery(h, [&](Delivery& d) { on_prepared(d, *st); });
	    });
}

void Queue::on_prepared(Delivery& d, PreparedAttempt& st) {
	counters_.local += st.local_delivered;
	if (!st.error.empty()) {
		log::error("queue: starting delivery failed", {{"err", st.error}});
		// Nothing known: retry all of them after one base interval.
		int64_t later = now_s() + std::max<int64_t>(config_->queue.retry_base_s, 1);
		std::map<uint64_t, int64_t> resched;
		for (uint64_t id : d.ids) resched[id] = later;
		release(d, st.settled.removed, resched);
		return;
	}
	if (st.remote.empty() && st.lmtp.empty()) {
		release(d, st.settled.removed, st.settled.rescheduled);
		return;
	}
	if (!st.lmtp.empty()) {
		// The records of one delivery share their domain, so they are all
		// local or all remote; should both ever meet, the remote ones wait
		// for their next attempt (already set).
		for (auto& r : st.remote) st.settled.rescheduled[r.id] = r.next_attempt;
		st.remote = std::move(st.lmtp);
		d.lmtp = std::move(st.lmtp_to);
	}
	apply_settled(st.settled.removed, st.settled.rescheduled);
	// Records settled here are done; the rest travel on.
	d.ids.clear();
	for (auto& r : st.remote) {
		d.ids.push_back(r.id);
		auto e = entries_.find(r.id);
		if (e != entries_.end()) e->second.next_attempt = r.next_attempt;
	}
	d.remote = std::move(st.remote);
	d.tls_required_no = st.tls_required_no;
	log_gauge();
	if (!d.lmtp.empty()) {
		deliver_lmtp(d);
		return;
	}
	route(d);
}

// Removed records leave the schedule; rescheduled ones wait for their time.
void Queue::apply_settled(const std::vector<uint64_t>& removed, const std::map<uint64_t, int64_t>& rescheduled) {
	for (uint64_t id : removed) erase_entry(id);
	for (auto& [id, when] : rescheduled) {
		auto e = entries_.find(id);
		if (e != entries_.end()) {
			e->second.next_attempt = when;
			e->second.in_flight = false;
		}
	}
}

// Submitted mail for local accounts with delivery.lmtp: one LMTP
// transaction per record (each has its own Received "for" prefix). Their
// results settle like a remote host's: delivered, bounced (5xx) or retried.
void Queue::deliver_lmtp(Delivery& d) {
	const config::Config& cfg = *d.config;
	auto outcomes = std::make_shared<std::vector<Outcome>>(d.remote.size());
	auto left = std::make_shared<size_t>(d.remote.size());
	for (size_t i = 0; i < d.remote.size(); i++) {
		const store::QueueRecord& rec = d.remote[i];
		net::LmtpRequest req;
		req.target = d.lmtp[i].target;
		req.transaction.lhlo_name = cfg.hostname;
		req.transaction.mail_from = rec.from;
		req.transaction.recipients = {d.lmtp[i].rcpt};
		req.transaction.body_8bit = rec.has_8bit;
		req.transaction.smtputf8 = rec.smtputf8;
		// RFC 5321 4.4: the final delivery adds Return-Path, here the LMTP
		// server (as Dovecot's does).
		req.prefix = rec.prefix;
		req.body_path = queue_file_path(cfg.data_dir, rec.message_file);
		req.body_offset = static_cast<uint64_t>(rec.data_offset);
		req.timeout_s = static_cast<double>(cfg.delivery.lmtp_timeout_s);
		std::string server = req.target.text();
		net::lmtp_deliver(loop_, pool_, std::move(req),
		                  [this, h = d.self, i, outcomes, left, id = rec.id, to = rec.to,
		                   server](std::vector<smtp::LmtpRecipientResult> results) {
					  (*outcomes)[i] = lmtp_outcome(results.at(0), id, to, server);
					  if (--*left == 0)
						  with_delivery(h,
				                                [&](Delivery& d) { finish(d, std::move(*outcomes)); });
				  });
	}
}

Queue::Outcome Queue::lmtp_outcome(const smtp::LmtpRecipientResult& r, uint64_t id, const std::string& to,
                                   const std::string& server) {
	Outcome o;
	o.id = id;
	o.delivered = r.status == smtp::LmtpRecipientResult::Status::delivered;
	o.permanent = r.status == smtp::LmtpRecipientResult::Status::permanent;
	if (o.delivered)
		log::info("delivered locally", {{"id", std::to_string(id)}, {"to", to}, {"lmtp", server}});
	else
		o.error = std::to_string(r.code) + " " + r.enhanced + " " + r.text;
	return o;
}

// A delivery that needs the verified context (a REQUIRETLS message, a
// smarthost whose certificate must verify, an MTA-STS policy to fetch or
// enforce) while it is not loaded yet waits for the load, which it starts
// if none is under way; it is routed again once the load ended.
bool Queue::waits_for_trust(Delivery& d, bool needed) {
	needed = needed || smarthost_verifies(*d.config) || (!d.remote.empty() && d.remote.front().requiretls);
	if (!needed || verified_context_ || !verified_context_error_.empty()) return false;
	waiting_for_trust_.push_back(d.self);
	if (!verified_context_loading_) load_verified_context(*config_, true);
	return true;
}

void Queue::route(Delivery& d) {
	if (stopping_ || waits_for_trust(d)) return;
	const config::Config& cfg = *d.config;
	if (!cfg.queue.smarthost_host.empty()) {
		d.hosts = {cfg.queue.smarthost_host};
		d.port = cfg.queue.smarthost_port;
		d.tls = tls_mode(cfg.queue.smarthost_tls);
		next_host(d);
		return;
	}
	d.port = options_.mx_port;
	d.tls = TlsMode::opportunistic;
	if (auto literal = address_literal(d.domain)) {
		d.hosts = {*literal};
		next_host(d);
		return;
	}
	find_sts_policy(d);
}

// RFC 8461 5: the policy in force says enforce.
bool Queue::sts_enforced(const Delivery& d) { return d.sts && d.sts->mode == mailauth::mta_sts::Mode::enforce; }

const store::StoredStsPolicy* Queue::cached_sts(const std::string& domain) { return sts_cache_.find(domain, now_s()); }

// RFC 8461 3.1: the TXT record at _mta-sts.<domain> says whether the
// domain has a policy and which one (its id).
void Queue::find_sts_policy(Delivery& d) {
	resolver_.query(dns_owner(d.self), "_mta-sts." + d.domain, mailauth::RrType::TXT,
	                [this, h = d.self](const mailauth::DnsAnswer& answer) {
				with_delivery(h, [&](Delivery& d) { on_sts_record(d, answer); });
			});
}

void Queue::on_sts_record(Delivery& d, const mailauth::DnsAnswer& answer) {
	const store::StoredStsPolicy* cached = cached_sts(d.domain);
	std::optional<mailauth::mta_sts::Record> record;
	if (answer.found()) record = mailauth::mta_sts::pick_record(answer.records);
	// RFC 8461 5.1: without a (valid) record, or with the id of the policy
	// already cached, the cached policy stands until its max_age; a record
	// that went away does not withdraw it.
	if (!record || (cached && cached->id == record->id)) {
		use_sts_policy(d, cached);
		return;
	}
	fetch_sts_policy(d, record->id);
}

// RFC 8461 3.3: the policy comes over HTTPS from mta-sts.<domain>, whose
// certificate must verify, so it waits for the trust store.
void Queue::fetch_sts_policy(Delivery& d, const std::string& id) {
	if (waits_for_trust(d, true)) return;
	if (!verified_context_) {
		log::info("queue: no trusted CAs to fetch an MTA-STS policy",
		          {{"domain", d.domain}, {"error", verified_context_error_}});
		use_sts_policy(d, cached_sts(d.domain));
		return;
	}
	mailauth::lookup_ip_addr(resolver_, dns_owner(d.self), "mta-sts." + d.domain,
	                         [this, h = d.self, id](const mailauth::IpLookup& r) {
					 with_delivery(h, [&](Delivery& d) { on_sts_host(d, id, r); });
				 });
}

void Queue::on_sts_host(Delivery& d, const std::string& id, const mailauth::IpLookup& r) {
	if (r.status != mailauth::DnsStatus::ok || r.addresses.empty()) {
		on_sts_fetched(d, id, net::HttpsGetResult{"no address for mta-sts." + d.domain, ""});
		return;
	}
	std::vector<std::string> addresses = r.addresses;
	if (addresses.size() > max_policy_host_addresses) addresses.resize(max_policy_host_addresses);
	fetch_sts_from(d, id, std::move(addresses), 0);
}

// Each address of mta-sts.<domain> in turn until one answers: a policy
// host out of reach on one address (or family) is asked on the next. A
// response that came, whatever it says, ends the fetch.
void Queue::fetch_sts_from(Delivery& d, const std::string& id, std::vector<std::string> addresses, size_t index) {
	net::HttpsGetRequest req;
	req.ip = addresses[index];
	req.port = options_.mta_sts_port;
	req.host = "mta-sts." + d.domain;
	req.path = "/.well-known/mta-sts.txt";
	req.trust = verified_context_;
	// RFC 8461 3.3: a policy is at most 64 KiB; the head of the response
	// comes on top.
	req.max_bytes = 64 * 1024 + 16 * 1024;
	req.complete = [](std::string_view raw) { return mailauth::mta_sts::http_response_complete(raw); };
	auto done = [this, h = d.self, id, addresses = std::move(addresses), index](net::HttpsGetResult result) {
		with_delivery(h, [&](Delivery& d) {
			if (!result.error.empty() && index + 1 < addresses.size()) {
				log::debug("queue: MTA-STS policy host not reached, trying its next address",
				           {{"domain", d.domain}, {"ip", addresses[index]}, {"error", result.error}});
				fetch_sts_from(d, id, addresses, index + 1);
				return;
			}
			on_sts_fetched(d, id, result);
		});
	};
	d.sts_fetch = net::https_get(loop_, std::move(req), std::move(done));
}

void Queue::on_sts_fetched(Delivery& d, const std::string& id, const net::HttpsGetResult& result) {
	std::string error = result.error;
	std::optional<mailauth::mta_sts::Policy> policy;
	if (error.empty()) {
		if (auto body = mailauth::mta_sts::policy_body_from_http(result.response, &error))
			policy = mailauth::mta_sts::parse_policy(*body, &error);
	}
	if (!policy) {
		// RFC 8461 5.1: a fetch that fails leaves the cached policy, if
		// any, in force; without one the domain has none for now.
		log::info("queue: MTA-STS policy not fetched", {{"domain", d.domain}, {"id", id}, {"error", error}});
		use_sts_policy(d, cached_sts(d.domain));
		return;
	}
	const int64_t now = now_s();
	const int64_t expires = now + policy->max_age;
	std::vector<std::string> dropped;
	const store::StoredStsPolicy& entry = sts_cache_.put(
	    store::StoredStsPolicy{ascii_lower(d.domain), id, std::move(*policy), expires}, now, has_queued_mail(),
	    dropped);
	write_sts_policies(&entry, std::move(dropped));
	log::info("queue: MTA-STS policy",
	          {{"domain", d.domain},
	           {"id", id},
	           {"mode", mailauth::mta_sts::mode_name(entry.policy.mode)},
	           {"max_age", std::to_string(entry.policy.max_age)}});
	use_sts_policy(d, &entry);
}

// The table follows the cache, on a worker: the policy just fetched (kept
// across restarts; a write that fails costs a fetch after one) and the
// domains the cache dropped (D44; a delete that fails leaves a row that
// the next load reads back within the bound).
void Queue::write_sts_policies(const store::StoredStsPolicy* stored, std::vector<std::string> dropped) {
	for (std::string& domain : dropped) sts_writes_[std::move(domain)].reset();
	if (stored) sts_writes_[stored->domain] = *stored;
	write_next_sts_batch();
}

void Queue::write_next_sts_batch() {
	if (sts_write_running_ || sts_writes_.empty()) return;
	std::vector<store::StoredStsPolicy> saved;
	std::vector<std::string> dropped;
	for (auto& [domain, change] : sts_writes_) {
		if (change)
			saved.push_back(std::move(*change));
		else
			dropped.push_back(domain);
	}
	sts_writes_.clear();
	sts_write_running_ = true;
	pool_.submit(
	    [&env = env_, saved = std::move(saved), dropped = std::move(dropped)] {
		    try {
			    store::sts_policies_write(env, saved, dropped);
		    } catch (const std::exception& e) {
			    log::error(
				"queue: saving the MTA-STS policies",
				{{"domains", std::to_string(saved.size() + dropped.size())}, {"error", e.what()}});
		    }
	    },
	    [this] {
		    sts_write_running_ = false;
		    write_next_sts_batch();
	    });
}

// Goes on to the MX hosts with the policy in force (null: none).
void Queue::use_sts_policy(Delivery& d, const store::StoredStsPolicy* policy) {
	d.sts.reset();
	if (policy && policy->policy.mode != mailauth::mta_sts::Mode::none) d.sts = policy->policy;
	if (d.sts && d.tls_required_no) {
		// RFC 8689 4.3: "TLS-Required: No" asks that such policies be ignored.
		log::info("queue: MTA-STS policy ignored (TLS-Required: No)", {{"domain", d.domain}});
		d.sts.reset();
	}
	// A cached policy to enforce (after a restart, say) needs the trust
	// store that its fetch would have loaded.
	if (waits_for_trust(d, sts_enforced(d))) return;
	resolver_.query(dns_owner(d.self), d.domain, mailauth::RrType::MX,
	                [this, h = d.self](const mailauth::DnsAnswer& answer) {
				with_delivery(h, [&](Delivery& d) { on_mx_answer(d, answer); });
			});
}

// RFC 8461 4.1 and 5: under enforce only MX hosts the policy names are
// tried (false: none is, the attempt is over); under testing a host it
// does not name is logged and tried all the same.
bool Queue::apply_sts_to_hosts(Delivery& d) {
	if (!d.sts) return true;
	std::vector<std::string> matching;
	for (const std::string& host : d.hosts) {
		if (mailauth::mta_sts::mx_matches(*d.sts, host))
			matching.push_back(host);
		else
			log::info("queue: MX host not in the MTA-STS policy",
			          {{"domain", d.domain},
			           {"host", host},
			           {"mode", mailauth::mta_sts::mode_name(d.sts->mode)}});
	}
	if (!sts_enforced(d)) return true;
	if (matching.empty()) {
		finish_all(d, "4.7.5 no MX host of " + d.domain + " is named by its MTA-STS policy (RFC 8461)", false);
		return false;
	}
	d.hosts = std::move(matching);
	return true;
}

void Queue::on_mx_answer(Delivery& d, const mailauth::DnsAnswer& answer) {
	switch (answer.status) {
	case mailauth::DnsStatus::ok: {
		auto hosts = mx_hosts_in_order(answer.mx);
		if (!hosts) {
			finish_all(d, "5.1.10 domain " + d.domain + " does not accept mail (null MX, RFC 7505)", true);
			return;
		}
		d.hosts = std::move(*hosts);
		if (d.hosts.empty()) d.hosts = {d.domain};
		break;
	}
	case mailauth::DnsStatus::nodata:
		d.hosts = {d.domain};  // RFC 5321 5.1: the implicit MX
		break;
	case mailauth::DnsStatus::nxdomain: finish_all(d, "5.1.2 domain " + d.domain + " does not exist", true); return;
	default: finish_all(d, "4.4.3 temporary DNS error looking up MX of " + d.domain, false); return;
	}
	if (apply_sts_to_hosts(d)) next_host(d);
}

void Queue::next_host(Delivery& d) {
	if (d.host_index >= d.hosts.size()) {
		if (d.requiretls_unmet && !d.other_host_failure) {
			// RFC 8689 5: no next hop can take it with the TLS it demands.
			finish_all(d, "5.7.30 REQUIRETLS support required: " + d.last_error, true);
			return;
		}
		finish_all(d, d.last_error.empty() ? "no host to deliver to" : d.last_error, false, d.last_remote);
		return;
	}
	const std::string host = d.hosts[d.host_index];
	d.address_index = 0;
	d.tls_off = false;
	if (IpAddr::parse(host)) {
		d.addresses = {host};
		connect_next_address(d);
		return;
	}
	mailauth::lookup_ip_addr(resolver_, dns_owner(d.self), host,
	                         [this, h = d.self, host](const mailauth::IpLookup& r) {
					 with_delivery(h, [&](Delivery& d) { on_host_addresses(d, host, r); });
				 });
}

void Queue::on_host_addresses(Delivery& d, const std::string& host, const mailauth::IpLookup& r) {
	if (r.status != mailauth::DnsStatus::ok || r.addresses.empty()) {
		d.note_failure("4.4.4 no address for host " + host);
		d.other_host_failure = true;
		d.host_index++;
		next_host(d);
		return;
	}
	// Records of one delivery are tried together: the first one's
	// attempt decides the order (doc/behaviour.md §12).
	d.addresses = addresses_for_attempt(r.addresses, d.remote.front().attempts);
	d.address_index = 0;
	connect_next_address(d);
}

// The TLS the next hop must offer: the smarthost's verified TLS
// (smarthost_tls "required"/"implicit"), REQUIRETLS (RFC 8689 4.2.1), or
// opportunistic STARTTLS. An error text when the trust needed is not loaded.
std::string Queue::apply_tls_policy(const Delivery& d, ClientOptions& o) const {
	o.tls = d.tls_off ? TlsMode::none : d.tls;
	if (!tls_context_ && o.tls == TlsMode::opportunistic) o.tls = TlsMode::none;
	o.tls_context = tls_context_;
	const config::Config& cfg = *d.config;
	const std::string not_loaded = verified_context_error_.empty() ? "not loaded yet" : verified_context_error_;
	if (!cfg.queue.smarthost_host.empty()) {
		if (d.tls == TlsMode::required || d.tls == TlsMode::implicit) {
			if (!verified_context_)
				return "4.7.5 no trusted CAs for the smarthost (queue.smarthost_ca_file " +
				    cfg.queue.smarthost_ca_file + "): " + not_loaded;
			o.tls_context = verified_context_;
			o.verify_peer = true;
		}
		o.auth_username = cfg.queue.smarthost_username;
		o.auth_password = cfg.queue.smarthost_password;
		// Only an explicit "none" lets credentials travel unencrypted; the
		// plain-text retry of a failed opportunistic TLS does not.
		o.auth_in_clear_ok = d.tls == TlsMode::none;
	}
	if (d.remote.front().requiretls) {
		// RFC 8689 4.2.1: TLS with a verified certificate and host name
		// (the smarthost's CA file, or the system's trust store for MX
		// hosts), to a next hop that offers REQUIRETLS; never plain text.
		if (!verified_context_)
			return "4.7.5 no trusted CAs to verify the next hop for REQUIRETLS: " + not_loaded;
		o.tls = d.tls == TlsMode::implicit ? TlsMode::implicit : TlsMode::required;
		o.tls_context = verified_context_;
		o.verify_peer = true;
		o.requiretls = true;
	} else {
		// RFC 8689 4.3; with REQUIRETLS the header is ignored.
		o.tls_required_no = d.tls_required_no;
		if (sts_enforced(d)) {
			// RFC 8461 4.2: STARTTLS with a certificate valid for the MX
			// host's name, never plain text (the fetch loaded the trust).
			if (!verified_context_)
				return "4.7.5 no trusted CAs to verify the MX hosts of " + d.domain +
				    " for its MTA-STS policy: " + not_loaded;
			o.tls = TlsMode::required;
			o.tls_context = verified_context_;
			o.verify_peer = true;
			o.mta_sts = true;
		}
	}
	return "";
}

// The transaction the client is to send: the envelope of the delivery's
// records, all of one message.
void Queue::fill_envelope(const Delivery& d, ClientOptions& o) const {
	const store::QueueRecord& first = d.remote.front();
	o.from = first.from;
	o.dsn_ret = first.dsn_ret;
	o.envid = first.envid;
	for (auto& r : d.remote) {
		o.recipients.push_back(r.to);
		o.notify.push_back(r.notify);
		o.orcpt.push_back(r.orcpt);
	}
	o.has_8bit = first.has_8bit;
	o.smtputf8 = first.smtputf8;
	o.size = first.size;
	o.prefix = first.prefix;
	// A DSN queued with a UTF-8 variant (doc/behaviour.md §13) sends that
	// variant to servers that offer SMTPUTF8.
	if (d.remote.size() == 1) o.utf8_variant = first.dsn_utf8;
}

void Queue::connect_next_address(Delivery& d) {
	if (stopping_) return;
	if (d.address_index >= d.addresses.size()) {
		d.host_index++;
		next_host(d);
		return;
	}
	if (d.addresses_dialed >= max_addresses_per_attempt) {
		finish_all(d,
		           (d.last_error.empty() ? std::string("4.4.1 no answer") : d.last_error) + " (" +
		               std::to_string(max_addresses_per_attempt) + " addresses tried, the most per attempt)",
		           false, d.last_remote);
		return;
	}
	++d.addresses_dialed;
	ClientOptions o;
	o.ip = d.addresses[d.address_index];
	o.port = d.port;
	o.source_ip = d.config->outbound_source.for_destination(o.ip);
	o.server_name = d.hosts[d.host_index];
	o.ehlo_name = d.config->hostname;
	if (std::string error = apply_tls_policy(d, o); !error.empty()) {
		finish_all(d, error, false);
		return;
	}
	fill_envelope(d, o);
	o.timeouts = options_.timeouts;
	o.log_id = d.id;
	const store::QueueRecord& first = d.remote.front();
	std::string path = queue_file_path(d.config->data_dir, first.message_file);
	log::debug("queue: connecting",
	           {{"host", o.server_name},
	            {"ip", o.ip},
	            {"port", std::to_string(o.port)},
	            {"recipients", std::to_string(o.recipients.size())}});
	const int64_t data_offset = first.data_offset;
	const core::ConnHandle h = d.self;
	d.client = std::make_unique<SmtpClient>(
	    loop_, std::move(o),
	    [this, h, path, data_offset](int64_t offset) { read_chunk(h, path, data_offset + offset); },
	    [this, h](ClientResult result) {
		    with_delivery(h, [&](Delivery& d) { on_client_done(d, std::move(result)); });
	    });
	d.client->on_data_result([this, h](const ClientResult& result) {
		with_delivery(h, [&](Delivery& d) { on_data_result(d, result); });
	});
	d.client->start();
}

void Queue::read_chunk(core::ConnHandle h, const std::string& path, int64_t offset) {
	struct Chunk {
		std::string data;
		bool eof = false;
		std::string error;
	};
	auto st = std::make_shared<Chunk>();
	pool_.submit(
	    [st, path, offset] {
		    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
		    if (!fd) {
			    st->error = path + ": " + std::strerror(errno);
			    return;
		    }
		    st->data.resize(chunk_size);
		    size_t got = 0;
		    while (got < chunk_size) {
			    ssize_t n = ::pread(fd.get(), st->data.data() + got, chunk_size - got,
			                        offset + static_cast<int64_t>(got));
			    if (n < 0 && errno == EINTR) continue;
			    if (n < 0) {
				    st->error = path + ": " + std::strerror(errno);
				    break;
			    }
			    if (n == 0) {
				    st->eof = true;
				    break;
			    }
			    got += static_cast<size_t>(n);
		    }
		    st->data.resize(got);
	    },
	    [this, st, h] {
		    with_delivery(h, [&](Delivery& d) {
			    if (d.client) d.client->supply_chunk(std::move(st->data), st->eof, st->error);
		    });
	    });
}

void Queue::on_client_done(Delivery& d, ClientResult result) {
	// The client is inside its own callback: it goes once that returned.
	d.retired_client = std::move(d.client);
	const std::string host = d.hosts[d.host_index];
	const std::string ip = d.addresses[d.address_index];
	if (result.host_failure) {
		log::info("queue: host failed", {{"host", host}, {"ip", ip}, {"err", result.error}});
		d.note_failure(result.error,
		               result.reply.empty() ? RemoteReport{}
		                                    : RemoteReport{remote_mta_name(host, ip), result.reply});
		(result.requiretls_unmet ? d.requiretls_unmet : d.other_host_failure) = true;
		if (result.tls_failed && d.tls == TlsMode::opportunistic && !d.tls_off &&
		    !d.remote.front().requiretls && !sts_enforced(d)) {
			// The model retries a host whose TLS failed once in plain text.
			d.tls_off = true;
			connect_next_address(d);
			return;
		}
		d.tls_off = false;
		d.address_index++;
		connect_next_address(d);
		return;
	}
	if (d.recorded) {
		release(d, {}, {});  // settled when recorded (on_settled)
		return;
	}
	finish(d, outcomes_of(d, result));
}

// The remote answered the end of data: record the result now, before the
// client says QUIT (it waits for SmtpClient::resume, called from finish's
// completion), so that a crash from here on repeats nothing.
void Queue::on_data_result(Delivery& d, const ClientResult& result) {
	d.recording = true;
	finish(d, outcomes_of(d, result));
}

std::vector<Queue::Outcome> Queue::outcomes_of(const Delivery& d, const ClientResult& result) const {
	const std::string host = d.hosts[d.host_index];
	const std::string ip = d.addresses[d.address_index];
	const bool host_dual_stack = dual_stack(d.addresses);
	std::vector<Outcome> outcomes;
	for (size_t i = 0; i < d.remote.size(); i++) {
		Outcome o;
		o.id = d.remote[i].id;
		const RecipientResult& r = result.recipients[i];
		o.delivered = r.delivered;
		o.permanent = r.permanent;
		if (o.permanent && retry_policy_refusal(r.enhanced, d.remote[i].attempts, host_dual_stack)) {
			// doc/behaviour.md §12: the next attempt comes from the other family.
			o.permanent = false;
			log::info("queue: policy refusal from a dual-stack host on the first attempt, retrying",
			          {{"id", std::to_string(o.id)}, {"host", host}, {"ip", ip}, {"err", r.error}});
		}
		o.not_attempted = r.not_attempted;
		o.relayed = r.delivered && !result.peer_dsn;
		o.error = r.error;
		o.remote.mta = remote_mta_name(host, ip);
		if (r.delivered)
			log::info("delivered",
			          {{"id", std::to_string(o.id)},
			           {"to", d.remote[i].to},
			           {"host", host},
			           {"ip", ip},
			           {"tls", result.tls_comment}});
		outcomes.push_back(std::move(o));
	}
	return outcomes;
}

void Queue::finish_all(Delivery& d, const std::string& error, bool permanent, const RemoteReport& remote) {
	std::vector<Outcome> outcomes;
	for (auto& r : d.remote) {
		Outcome o;
		o.id = r.id;
		o.permanent = permanent;
		o.error = error;
		o.remote = remote;
		outcomes.push_back(std::move(o));
	}
	finish(d, std::move(outcomes));
}

namespace {

// Successes first, each committed at once: after the remote's 250 nothing
// else may happen before its record is gone.
void settle_delivered(store::Env& env, const config::Config& cfg, const store::QueueRecord& rec,
                      const Queue::Outcome& outcome, int64_t now, Settled& out) {
	// RFC 3461 4.1 NOTIFY=SUCCESS to a next hop without DSN: "relayed"
	// (RFC 3464 2.3.3); with DSN the next hop reports.
	const bool notice = outcome.relayed && dsn_requested(rec, DsnKind::relayed);
	Returned returned = notice ? returned_content(cfg, rec, DsnKind::relayed) : Returned{};
	remove_delivered_record(env, cfg, rec);
	out.removed.push_back(rec.id);
	if (notice) deliver_dsn(cfg, rec, DsnKind::relayed, "", outcome.remote, {}, now, returned, out.lmtp_dsns);
}

// Past the next hop's RCPTMAX (RFC 9422 4.1): not an attempt; it goes out
// in the next transaction, now.
void settle_not_attempted(store::Env& env, store::QueueRecord rec, int64_t now, Settled& out) {
	const int64_t planned = rec.next_attempt;
	rec.attempts = std::max(rec.attempts - 1, 0);
	rec.next_attempt = now;
	try {
		if (env.queue_update(rec))
			out.rescheduled[rec.id] = rec.next_attempt;
		else
			out.removed.push_back(rec.id);
	} catch (const std::exception& e) {
		log::error("queue: rescheduling record failed", {{"id", std::to_string(rec.id)}, {"err", e.what()}});
		out.rescheduled[rec.id] = planned;
	}
}

// On a worker: the records of an attempt updated by its outcomes.
void settle_outcomes(store::Env& env, const config::Config& cfg, const std::vector<store::QueueRecord>& records,
                     const std::vector<Queue::Outcome>& outcomes, const Policy& policy, Settled& out) {
	const int64_t now = now_s();
	for (size_t i = 0; i < records.size(); i++)
		if (outcomes[i].delivered) settle_delivered(env, cfg, records[i], outcomes[i], now, out);
	for (size_t i = 0; i < records.size(); i++) {
		if (outcomes[i].delivered) continue;
		if (outcomes[i].not_attempted) {
			settle_not_attempted(env, records[i], now, out);
			continue;
		}
		try {
			settle_failure(env, cfg, records[i], outcomes[i].error, outcomes[i].permanent,
			               outcomes[i].remote, policy, now, out);
		} catch (const std::exception& e) {
			log::error("queue: recording failed attempt failed",
			           {{"id", std::to_string(records[i].id)}, {"err", e.what()}});
			out.rescheduled[records[i].id] = records[i].next_attempt;
		}
	}
}

}  // namespace

void Queue::count_outcomes(const std::vector<store::QueueRecord>& records, const std::vector<Outcome>& outcomes,
                           int max_attempts, bool local) {
	for (size_t i = 0; i < outcomes.size(); i++) {
		if (outcomes[i].not_attempted) continue;
		if (outcomes[i].delivered)
			(local ? counters_.local : counters_.delivered)++;
		else if (outcomes[i].permanent || records[i].attempts >= max_attempts)
			counters_.failed++;
		else
			counters_.retried++;
	}
}

void Queue::finish(Delivery& d, std::vector<Outcome> outcomes) {
	auto settled = std::make_shared<Settled>();
	auto cfg = d.config;
	store::Env& env = env_;
	Policy policy = policy_of(*cfg, options_);
	// A hosted account's LMTP server is a local delivery, as its Maildir is.
	count_outcomes(d.remote, outcomes, policy.max_attempts, !d.lmtp.empty());
	pool_.submit([settled, cfg, &env, records = d.remote, outcomes = std::move(outcomes),
	              policy] { settle_outcomes(env, *cfg, records, outcomes, policy, *settled); },
	             [this, settled, h = d.self] {
			     enqueue_dsns(settled->lmtp_dsns);
			     with_delivery(h, [&](Delivery& d) { on_settled(d, *settled); });
		     });
}

void Queue::enqueue_dsns(std::vector<server::OutboundMessage>& dsns) {
	for (auto& msg : dsns)
		enqueue(std::move(msg), [](const std::string& error) {
			if (!error.empty()) log::error("queueing dsn for lmtp delivery, no dsn sent", {{"err", error}});
		});
	dsns.clear();
}

void Queue::on_settled(Delivery& d, Settled& settled) {
	if (d.recording && d.client) {
		// Recorded: the client may say QUIT now; release() follows when it
		// is done. A server slow to answer QUIT (or never answering) holds
		// only its own session, not the next delivery to its domain.
		d.recording = false;
		d.recorded = true;
		free_slot(d, settled.removed, settled.rescheduled);
		d.client->resume();
		schedule();
		return;
	}
	release(d, settled.removed, settled.rescheduled);
}

void Queue::free_slot(Delivery& d, const std::vector<uint64_t>& removed,
                      const std::map<uint64_t, int64_t>& rescheduled) {
	if (std::exchange(d.slot_freed, true)) return;
	apply_settled(removed, rescheduled);
	// Anything the delivery still held goes back to the schedule unchanged.
	for (uint64_t id : d.ids) {
		auto e = entries_.find(id);
		if (e != entries_.end()) e->second.in_flight = false;
	}
	busy_domains_.erase(d.domain);
}

// The delivery is over: its records go back to the schedule (or are gone)
// and it is erased once the callback that ended it returned.
void Queue::release(Delivery& d, const std::vector<uint64_t>& removed, const std::map<uint64_t, int64_t>& rescheduled) {
	free_slot(d, removed, rescheduled);
	resolver_.cancel_owner(dns_owner(d.self));
	if (d.client) d.client->abort();
	d.ended = true;
	ended_.push_back(d.self);
}

}  // namespace tern::queue
