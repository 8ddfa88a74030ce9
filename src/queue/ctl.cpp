#include "queue/ctl.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <optional>

#include "queue/outbound_util.h"
#include "queue/queue_file.h"
#include "smtp/dsn_params.h"
#include "store/db.h"
#include "util/strings.h"

namespace tern::queue {

namespace {

const char* usage = "usage: ternctl queue list | show ID | kick [ID] | drop ID | rebuild\n";

std::optional<uint64_t> parse_id(const std::string& s) {
	if (s.empty() || s.size() > 19) return std::nullopt;
	uint64_t v = 0;
	for (char c : s) {
		if (!is_ascii_digit(c)) return std::nullopt;
		v = v * 10 + static_cast<uint64_t>(c - '0');
	}
	return v;
}

std::string or_dash(const std::string& s) { return s.empty() ? "-" : s; }

// One line per value, escaped as the log escapes it: the last error may
// hold CR/LF from a remote reply and whatever else its server sent, and
// the addresses (SMTPUTF8) and Message-ID come from the client, so none of
// them can send the operator's terminal an escape sequence or a C1 or
// bidirectional control.
std::string one_line(std::string s) {
	for (char& c : s)
		if (c == '\r' || c == '\n') c = ' ';
	std::string out;
	append_escaped_text(out, s);
	return out;
}

// The pid of a running ternd from config.pid_file; 0 when there is none.
// A ternd killed with -9 leaves its pid file behind, and the number may
// since belong to another program, which SIGUSR2 would end: the process
// must be named ternd (its main thread's name, readable by every user).
pid_t running_daemon(const config::Config& cfg) {
	if (cfg.pid_file.empty()) return 0;
	std::ifstream f(cfg.pid_file);
	long pid = 0;
	if (!(f >> pid) || pid <= 1) return 0;
	std::ifstream comm("/proc/" + std::to_string(pid) + "/comm");
	std::string name;
	if (!std::getline(comm, name) || name != "ternd") return 0;
	return static_cast<pid_t>(pid);
}

void notify_daemon(const config::Config& cfg) {
	if (pid_t pid = running_daemon(cfg)) ::kill(pid, SIGUSR2);  // ternd re-reads the queue (Queue::resync)
}

void show(const store::QueueRecord& r, std::ostream& out) {
	out << "id: " << r.id << "\n"
	    << "queued: " << iso8601_utc(r.queued) << "\n"
	    << "sender_account: " << r.sender_account << "\n"
	    << "from: <" << one_line(r.from) << ">\n"
	    << "to: <" << one_line(r.to) << ">\n"
	    << "domain: " << r.recipient_domain << "\n"
	    << "attempts: " << r.attempts << "\n"
	    << "next_attempt: " << iso8601_utc(r.next_attempt) << "\n"
	    << "last_attempt: " << (r.last_attempt ? iso8601_utc(r.last_attempt) : std::string("-")) << "\n"
	    << "last_error: " << one_line(r.last_error) << "\n"
	    << "size: " << r.size << "\n"
	    << "8bit: " << (r.has_8bit ? "yes" : "no") << "\n"
	    << "smtputf8: " << (r.smtputf8 ? "yes" : "no") << "\n"
	    << "requiretls: " << (r.requiretls ? "yes" : "no")
	    << "\n"
	    // The DSN request (RFC 3461 4), "-" where the sender gave none.
	    << "dsn_ret: " << or_dash(r.dsn_ret) << "\n"
	    << "dsn_envid: " << or_dash(one_line(r.envid)) << "\n"
	    << "dsn_notify: " << or_dash(smtp::notify_to_string(static_cast<uint8_t>(r.notify))) << "\n"
	    << "dsn_orcpt: " << or_dash(one_line(r.orcpt)) << "\n"
	    << "message_id: " << one_line(r.message_id) << "\n"
	    << "file: " << r.message_file << "\n";
}

// An unknown ID is a negative answer, like `dmarc lookup`'s `none`: said on
// stdout, exit 1 (man/ternctl.8).
int no_such_message(std::ostream& out) {
	out << "no such message\n";
	return 1;
}

// The usage and id checks, before any database work; the status to exit
// with when the command is malformed.
std::optional<int> refuse_malformed(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
	if (args.empty()) {
		err << usage;
		return 2;
	}
	const std::string& cmd = args[0];
	bool needs_id = cmd == "show" || cmd == "drop";
	bool ok_shape = ((cmd == "list" || cmd == "rebuild") && args.size() == 1) || (needs_id && args.size() == 2) ||
	    (cmd == "kick" && args.size() <= 2);
	if (!ok_shape) {
		err << usage;
		return 2;
	}
	if (args.size() == 2 && !parse_id(args[1])) return no_such_message(out);
	return std::nullopt;
}

}  // namespace

std::string queue_list_text(store::Env& env) {
	const std::string header = "ID NEXT-ATTEMPT ATTEMPTS FROM TO LAST-ERROR\n";
	std::string out;
	env.queue_scan([&] { out = header; },
	               [&](const store::QueueRecord& r) {
			       out += std::to_string(r.id) + " " + iso8601_utc(r.next_attempt) + " " +
				   std::to_string(r.attempts) + " <" + one_line(r.from) + "> <" + one_line(r.to) +
				   "> " + or_dash(one_line(r.last_error)) + "\n";
		       });
	return out;
}

namespace {

// A message's queue files are links of one file, a recipient each:
// "<base>.<recipient number>" (Queue::store_enqueued). The base names the
// message.
std::string message_base(const std::string& message_file) {
	size_t dot = message_file.rfind('.');
	if (dot == std::string::npos || dot + 1 == message_file.size()) return message_file;
	for (size_t i = dot + 1; i < message_file.size(); ++i)
		if (!is_ascii_digit(message_file[i])) return message_file;
	return message_file.substr(0, dot);
}

}  // namespace

void MailqListing::add(const store::QueueRecord& r) {
	if (!in_message_ || message_base(r.message_file) != message_base_ || r.from != from_) start_message(r);
	// A recipient's reason once, above the run of recipients that share
	// it; "reason unavailable" after one that had a reason.
	std::string reason = one_line(r.last_error);
	if (reason != reason_) {
		reason_ = reason;
		const std::string shown = reason.empty() ? "reason unavailable" : reason;
		// Right-aligned at the 78th column, as sendmail's listing does.
		if (shown.size() < 76) text_.append(76 - shown.size(), ' ');
		text_ += "(" + shown + ")\n";
	}
	text_.append(41, ' ');
	text_ += one_line(r.to) + "\n";
}

void MailqListing::start_message(const store::QueueRecord& r) {
	if (messages_ == 0)
		text_ = "-Queue ID-  --Size-- ----Arrival Time---- -Sender/Recipient-------\n";
	else
		text_ += "\n";
	in_message_ = true;
	message_base_ = message_base(r.message_file);
	from_ = r.from;
	reason_.clear();
	++messages_;
	bytes_ += static_cast<uint64_t>(std::max<int64_t>(r.size, 0));
	char arrival[32] = "";
	std::time_t t = static_cast<std::time_t>(r.queued);
	std::tm tm{};
	if (localtime_r(&t, &tm)) std::strftime(arrival, sizeof arrival, "%a %b %e %H:%M:%S", &tm);
	char line[96];
	std::snprintf(line, sizeof line, "%-11s %7lld %-20s ", std::to_string(r.id).c_str(),
	              static_cast<long long>(r.size), arrival);
	text_ += line;
	text_ += r.from.empty() ? std::string("MAILER-DAEMON") : one_line(r.from);
	text_ += "\n";
}

std::string MailqListing::finish() {
	if (messages_ == 0) return "Mail queue is empty\n";
	return text_ + "\n-- " + std::to_string(bytes_ / 1024) + " Kbytes in " + std::to_string(messages_) +
	    (messages_ == 1 ? " Request.\n" : " Requests.\n");
}

std::string mailq_text(store::Env& env) {
	MailqListing listing;
	env.queue_scan([&] { listing = MailqListing(); }, [&](const store::QueueRecord& r) { listing.add(r); });
	return listing.finish();
}

QueueCommandResult run_queue_command(store::Env& env, const config::Config& cfg, const std::vector<std::string>& args,
                                     std::ostream& out, std::ostream& err,
                                     const std::function<bool(const std::string& base)>& in_progress) {
	if (auto status = refuse_malformed(args, out, err)) return {*status, false};
	const std::string& cmd = args[0];
	std::optional<uint64_t> id;
	if (args.size() == 2) id = parse_id(args[1]);
	try {
		if (cmd == "rebuild") {
			RebuildReport r = rebuild_queue(env, queue_dir(cfg.data_dir),
			                                static_cast<int64_t>(std::time(nullptr)), in_progress);
			out << "rebuilt " << r.rebuilt << " records, removed " << r.removed << " finished files, kept "
			    << r.unreadable << " unreadable files\n";
			return {r.unreadable ? 1 : 0, r.rebuilt > 0};
		}
		if (cmd == "list") {
			out << queue_list_text(env);
			return {0, false};
		}
		if (cmd == "show") {
			auto r = env.queue_get(*id);
			if (!r) {
				return {no_such_message(out), false};
			}
			show(*r, out);
			return {0, false};
		}
		if (cmd == "kick") {
			const int64_t now = static_cast<int64_t>(std::time(nullptr));
			std::vector<store::QueueRecord> records;
			if (id) {
				auto r = env.queue_get(*id);
				if (!r) {
					return {no_such_message(out), false};
				}
				records.push_back(*r);
			} else {
				records = env.queue_list();
			}
			size_t kicked = 0;
			for (auto& r : records) {
				r.next_attempt = now;
				if (env.queue_update(r)) kicked++;
			}
			if (id && kicked == 0) {
				return {no_such_message(out), false};
			}
			out << "kicked " << kicked << "\n";
			return {0, kicked > 0};
		}
		// drop: the copy marked dropped in its file (so no rebuild brings it
		// back), the record, then its file link (each record owns one).
		auto r = env.queue_get(*id);
		if (!r) {
			return {no_such_message(out), false};
		}
		if (!r->message_file.empty())
			mark_recipient(queue_dir(cfg.data_dir), r->message_file, RecipientState::dropped);
		if (!env.queue_remove(*id)) {
			return {no_such_message(out), false};
		}
		if (!r->message_file.empty()) ::unlink((cfg.data_dir + "/queue/" + r->message_file).c_str());
		out << "dropped " << *id << "\n";
		return {0, true};
	} catch (const std::exception& e) {
		err << "error: " << e.what() << "\n";
		return {1, false};
	}
}

int run_queue_command(const config::Config& cfg, const std::vector<std::string>& args, std::ostream& out,
                      std::ostream& err) {
	if (auto status = refuse_malformed(args, out, err)) return *status;
	try {
		store::Env env(cfg.data_dir);
		QueueCommandResult result = run_queue_command(env, cfg, args, out, err);
		if (result.changed) notify_daemon(cfg);
		return result.status;
	} catch (const std::exception& e) {
		err << "error: " << e.what() << "\n";
		return 1;
	}
}

}  // namespace tern::queue
