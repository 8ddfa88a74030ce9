#include "queue/ctl.h"

#include <signal.h>
#include <unistd.h>

#include <cctype>
#include <ctime>
#include <fstream>
#include <optional>

#include "queue/outbound_util.h"
#include "store/db.h"

namespace tern::queue {

namespace {

const char* usage = "usage: ternctl queue list | show ID | kick [ID] | drop ID\n";

std::optional<uint64_t> parse_id(const std::string& s)
{
	if (s.empty() || s.size() > 19)
		return std::nullopt;
	uint64_t v = 0;
	for (char c : s) {
		if (!std::isdigit(static_cast<unsigned char>(c)))
			return std::nullopt;
		v = v * 10 + static_cast<uint64_t>(c - '0');
	}
	return v;
}

std::string or_dash(const std::string& s) { return s.empty() ? "-" : s; }

// One line per value: the last error may hold CR/LF from a remote reply.
std::string one_line(std::string s)
{
	for (char& c : s)
		if (c == '\r' || c == '\n')
			c = ' ';
	return s;
}

void notify_daemon(const config::Config& cfg)
{
	if (cfg.pid_file.empty())
		return;
	std::ifstream f(cfg.pid_file);
	long pid = 0;
	if (!(f >> pid) || pid <= 1)
		return;
	::kill(static_cast<pid_t>(pid), SIGUSR2);  // ternd re-reads the queue (Queue::resync)
}

void show(const store::QueueRecord& r, std::ostream& out)
{
	out << "id: " << r.id << "\n"
	    << "queued: " << iso8601_utc(r.queued) << "\n"
	    << "sender_account: " << r.sender_account << "\n"
	    << "from: <" << r.from << ">\n"
	    << "to: <" << r.to << ">\n"
	    << "domain: " << r.recipient_domain << "\n"
	    << "attempts: " << r.attempts << "\n"
	    << "next_attempt: " << iso8601_utc(r.next_attempt) << "\n"
	    << "last_attempt: " << (r.last_attempt ? iso8601_utc(r.last_attempt) : std::string("-")) << "\n"
	    << "last_error: " << one_line(r.last_error) << "\n"
	    << "size: " << r.size << "\n"
	    << "8bit: " << (r.has_8bit ? "yes" : "no") << "\n"
	    << "smtputf8: " << (r.smtputf8 ? "yes" : "no") << "\n"
	    << "message_id: " << r.message_id << "\n"
	    << "file: " << r.message_file << "\n";
}

}  // namespace

std::string queue_list_text(const std::vector<store::QueueRecord>& records)
{
	std::string out = "ID NEXT-ATTEMPT ATTEMPTS FROM TO LAST-ERROR\n";
	for (const auto& r : records)
		out += std::to_string(r.id) + " " + iso8601_utc(r.next_attempt) + " " + std::to_string(r.attempts) + " <" +
		       r.from + "> <" + r.to + "> " + or_dash(one_line(r.last_error)) + "\n";
	return out;
}

int run_queue_command(const config::Config& cfg, const std::vector<std::string>& args, std::ostream& out,
                      std::ostream& err)
{
	if (args.empty()) {
		err << usage;
		return 2;
	}
	const std::string& cmd = args[0];
	bool needs_id = cmd == "show" || cmd == "drop";
	bool ok_shape = (cmd == "list" && args.size() == 1) || (needs_id && args.size() == 2) ||
	                (cmd == "kick" && args.size() <= 2);
	if (!ok_shape) {
		err << usage;
		return 2;
	}
	std::optional<uint64_t> id;
	if (args.size() == 2) {
		id = parse_id(args[1]);
		if (!id) {
			err << "no such message\n";
			return 1;
		}
	}
	try {
		store::Env env(cfg.data_dir);
		if (cmd == "list") {
			out << queue_list_text(env.queue_list());
			return 0;
		}
		if (cmd == "show") {
			auto r = env.queue_get(*id);
			if (!r) {
				err << "no such message\n";
				return 1;
			}
			show(*r, out);
			return 0;
		}
		if (cmd == "kick") {
			const int64_t now = static_cast<int64_t>(std::time(nullptr));
			std::vector<store::QueueRecord> records;
			if (id) {
				auto r = env.queue_get(*id);
				if (!r) {
					err << "no such message\n";
					return 1;
				}
				records.push_back(*r);
			} else {
				records = env.queue_list();
			}
			size_t kicked = 0;
			for (auto& r : records) {
				r.next_attempt = now;
				if (env.queue_update(r))
					kicked++;
			}
			if (id && kicked == 0) {
				err << "no such message\n";
				return 1;
			}
			out << "kicked " << kicked << "\n";
			if (kicked)
				notify_daemon(cfg);
			return 0;
		}
		// drop: the record first, then its file link (each record owns one).
		auto r = env.queue_get(*id);
		if (!r || !env.queue_remove(*id)) {
			err << "no such message\n";
			return 1;
		}
		if (!r->message_file.empty())
			::unlink((cfg.data_dir + "/queue/" + r->message_file).c_str());
		out << "dropped " << *id << "\n";
		notify_daemon(cfg);
		return 0;
	} catch (const std::exception& e) {
		err << "error: " << e.what() << "\n";
		return 1;
	}
}

}  // namespace tern::queue
