// `make bench`: starts ternd on loopback (tests/helpers/daemon.h: temp
// config, random port, loopback DNS with the sending domain's records) and
// reports
//  1. idle memory: VmRSS after start and after N idle connections that sent
//     EHLO, against the targets (under 4 MB at idle, at most 4 KB per idle
//     connection);
//  2. durable delivery throughput: T client threads, each on one reused
//     connection sending small messages on port 25 for a fixed time. A 250
//     after DATA means the Maildir copy is fsync'd (doc/behaviour.md "Durability and safety promises"), so 250s per
//     second is the rate of durably delivered messages.
// It reports and never fails the build (exit status 0 unless the daemon
// cannot start). With --external HOST:PORT only the throughput part runs,
// against another server (e.g. Postfix on the same machine, for the "4x
// Postfix" target).
#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <sys/resource.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include "helpers/daemon.h"
#include "helpers/smtp_client.h"

using namespace tern::testing;

namespace {

constexpr long idle_rss_target_kb = 4 * 1024;          // 4 MB at idle
constexpr double per_connection_target_bytes = 4096;    // 4 KB per idle connection

struct Options {
	int seconds = 10;
	std::vector<int> thread_counts{1, 8, 32};
	int idle_connections = 2000;
	std::string external;             // "host:port"; empty = start ternd
	std::string mail_from = "bench@sender.example";
	std::string rcpt_to = "alice@test.example";
	std::string helo = "client.sender.example";
	long history = 100000;            // records for the large-history run; 0 = skip it
};

[[noreturn]] void usage() {
	std::fprintf(stderr,
	             "usage: tern-bench [--time SECONDS] [--threads 1,8,32] [--idle-conns N] [--history N]\n"
	             "                  [--external HOST:PORT [--from ADDR] [--rcpt ADDR] [--helo NAME]]\n");
	std::exit(2);
}

Options parse_options(int argc, char** argv) {
	Options o;
	for (int i = 1; i < argc; i++) {
		std::string arg = argv[i];
		auto value = [&]() -> std::string {
			if (i + 1 >= argc)
				usage();
			return argv[++i];
		};
		if (arg == "--time")
			o.seconds = std::max(1, std::atoi(value().c_str()));
		else if (arg == "--threads") {
			o.thread_counts.clear();
			std::stringstream list(value());
			std::string item;
			while (std::getline(list, item, ','))
				if (int n = std::atoi(item.c_str()); n > 0)
					o.thread_counts.push_back(n);
			if (o.thread_counts.empty())
				usage();
		} else if (arg == "--idle-conns")
			o.idle_connections = std::max(1, std::atoi(value().c_str()));
		else if (arg == "--history")
			o.history = std::max(0L, std::atol(value().c_str()));
		else if (arg == "--external")
			o.external = value();
		else if (arg == "--from")
			o.mail_from = value();
		else if (arg == "--rcpt")
			o.rcpt_to = value();
		else if (arg == "--helo")
			o.helo = value();
		else
			usage();
	}
	return o;
}

// VmRSS of pid in kB, -1 when unreadable.
long rss_kb(pid_t pid) {
	std::ifstream in("/proc/" + std::to_string(pid) + "/status");
	std::string line;
	while (std::getline(in, line))
		if (line.rfind("VmRSS:", 0) == 0)
			return std::atol(line.c_str() + 6);
	return -1;
}

// Idle connections and a few hundred sockets for the daemon need more than
// the usual 1024 descriptors; ternd inherits the raised limit.
void raise_fd_limit() {
	rlimit lim{};
	if (getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur < lim.rlim_max) {
		lim.rlim_cur = lim.rlim_max;
		setrlimit(RLIMIT_NOFILE, &lim);
	}
}

const char* verdict(bool pass) { return pass ? "PASS" : "FAIL"; }

// ------------------------------------------------------------ idle memory

struct MemoryResult {
	long idle_kb = -1, loaded_kb = -1;
	int connected = 0;
};

MemoryResult measure_memory(TernDaemon& daemon, int count) {
	MemoryResult r;
	// Idle means settled: start-up work done and its pages given back
	// (ternd trims one second after start).
	usleep(3000 * 1000);
	r.idle_kb = rss_kb(daemon.pid());

	// Open the connections from a few threads; each one reads the greeting
	// and sends EHLO, then stays idle.
	std::vector<std::unique_ptr<SmtpClient>> clients(static_cast<size_t>(count));
	std::atomic<int> connected{0};
	std::atomic<int> next{0};
	std::mutex error_mutex;
	std::string first_error;
	std::vector<std::thread> openers;
	for (int t = 0; t < 8; t++)
		openers.emplace_back([&] {
			for (int i; (i = next++) < count;) {
				auto client = std::make_unique<SmtpClient>();
				if (client->connect("127.0.0.1", daemon.smtp_port()) && client->greet_and_ehlo()) {
					connected++;
					clients[size_t(i)] = std::move(client);
				} else {
					std::lock_guard lock(error_mutex);
					if (first_error.empty())
						first_error = client->last_error;
				}
			}
		});
	for (auto& t : openers)
		t.join();
	r.connected = connected;
	if (!first_error.empty())
		std::printf("  note: %d connections failed, first error: %s\n", count - r.connected, first_error.c_str());
	usleep(1000 * 1000);
	r.loaded_kb = rss_kb(daemon.pid());
	clients.clear();   // closes them all
	usleep(300 * 1000);
	return r;
}

void print_memory(const MemoryResult& m, int count) {
	std::printf("Memory (VmRSS of ternd)\n");
	std::printf("  %-30s %7ld kB   target < %ld kB   %s\n", "idle after start:", m.idle_kb, idle_rss_target_kb,
	            verdict(m.idle_kb >= 0 && m.idle_kb < idle_rss_target_kb));
	std::string label = "with " + std::to_string(count) + " idle connections:";
	std::printf("  %-30s %7ld kB   (%d of %d connected, EHLO sent)\n", label.c_str(), m.loaded_kb, m.connected, count);
	if (m.connected > 0) {
		double per_connection = double(m.loaded_kb - m.idle_kb) * 1024.0 / double(m.connected);
		std::printf("  %-30s %7.0f B    target <= %.0f B   %s\n", "per idle connection:", per_connection,
		            per_connection_target_bytes, verdict(per_connection <= per_connection_target_bytes));
	} else {
		std::printf("  %-30s n/a (no connection succeeded)   FAIL\n", "per idle connection:");
	}
}

// ------------------------------------------------------------- throughput

struct Endpoint {
	std::string host;
	int port = 0;
};

struct ThreadStats {
	uint64_t accepted = 0;      // 250 after DATA
	uint64_t failed = 0;        // any other outcome
	std::vector<double> latencies_ms;
	std::string first_error;
};

struct ThroughputRow {
	int threads = 0;
	uint64_t accepted = 0, failed = 0;
	double seconds = 0, per_second = 0, p50_ms = 0, p99_ms = 0;
	std::string first_error;
};

std::string small_message(const Options& o, int thread, uint64_t n) {
	std::string id = std::to_string(thread) + "." + std::to_string(n);
	return "From: <" + o.mail_from + ">\r\n"
	       "To: <" + o.rcpt_to + ">\r\n"
	       "Subject: bench " + id + "\r\n"
	       "Message-Id: <bench." + id + "." + std::to_string(getpid()) + "@sender.example>\r\n"
	       "Date: Wed, 25 Nov 2026 12:00:00 +0000\r\n"
	       "\r\n"
	       "A small benchmark message.\r\n"
	       "Each 250 reply means this copy reached the disk.\r\n"
	       ".\r\n";
}

// One client thread: one connection (reconnecting after an error), MAIL,
// RCPT and DATA pipelined (RFC 2920), then the message, until the deadline.
void client_loop(const Options& o, const Endpoint& to, int index, std::atomic<bool>& go,
                 std::chrono::steady_clock::time_point deadline, ThreadStats& stats) {
	using clock = std::chrono::steady_clock;
	auto note_error = [&](const std::string& what) {
		stats.failed++;
		if (stats.first_error.empty())
			stats.first_error = what;
	};
	SmtpClient client;
	while (!go)
		std::this_thread::yield();
	uint64_t n = 0;
	while (clock::now() < deadline) {
		if (!client.connected()) {
			if (!client.connect(to.host, to.port) || !client.greet_and_ehlo(o.helo)) {
				note_error("connect/EHLO: " + client.last_error);
				client.close();
				usleep(100 * 1000);
				continue;
			}
		}
		auto started = clock::now();
		client.send("MAIL FROM:<" + o.mail_from + ">\r\nRCPT TO:<" + o.rcpt_to + ">\r\nDATA\r\n");
		Reply mail = client.read_reply();
		Reply rcpt = client.read_reply();
		Reply data = client.read_reply();
		if (mail.code != 250 || rcpt.code != 250 || data.code != 354) {
			note_error("MAIL/RCPT/DATA: " + mail.plain() + " | " + rcpt.plain() + " | " + data.plain());
			client.close();
			continue;
		}
		client.send(small_message(o, index, n++));
		Reply done = client.read_reply();
		if (done.code != 250) {
			note_error("after DATA: " + done.plain());
			client.close();
			continue;
		}
		stats.accepted++;
		stats.latencies_ms.push_back(std::chrono::duration<double, std::milli>(clock::now() - started).count());
	}
	if (client.connected())
		client.cmd("QUIT");
}

ThroughputRow run_throughput(const Options& o, const Endpoint& to, int threads) {
	using clock = std::chrono::steady_clock;
	std::vector<ThreadStats> stats(static_cast<size_t>(threads));
	std::atomic<bool> go{false};
	std::vector<std::thread> workers;
	auto deadline = clock::now() + std::chrono::seconds(o.seconds) + std::chrono::milliseconds(50);
	// Connect time counts in the window, like any reused session's first message.
	auto started = clock::now();
	for (int t = 0; t < threads; t++)
		workers.emplace_back(client_loop, std::cref(o), std::cref(to), t, std::ref(go), deadline,
		                     std::ref(stats[size_t(t)]));
	go = true;
	for (auto& w : workers)
		w.join();
	double elapsed = std::chrono::duration<double>(clock::now() - started).count();

	ThroughputRow row;
	row.threads = threads;
	row.seconds = elapsed;
	std::vector<double> all;
	for (auto& s : stats) {
		row.accepted += s.accepted;
		row.failed += s.failed;
		all.insert(all.end(), s.latencies_ms.begin(), s.latencies_ms.end());
		if (row.first_error.empty())
			row.first_error = s.first_error;
	}
	row.per_second = double(row.accepted) / elapsed;
	if (!all.empty()) {
		std::sort(all.begin(), all.end());
		row.p50_ms = all[all.size() / 2];
		row.p99_ms = all[std::min(all.size() - 1, all.size() * 99 / 100)];
	}
	return row;
}

void print_throughput(const std::vector<ThroughputRow>& rows, const std::string& target) {
	std::printf("\nDurable delivery throughput (%s; one reused connection per thread,\n"
	            "MAIL/RCPT/DATA pipelined, ~400-byte messages; 250 = fsync'd)\n", target.c_str());
	std::printf("  %7s  %9s  %7s  %9s  %8s  %8s  %7s\n", "threads", "delivered", "seconds", "msg/s", "p50 ms", "p99 ms",
	            "errors");
	for (const auto& r : rows)
		std::printf("  %7d  %9llu  %7.1f  %9.1f  %8.2f  %8.2f  %7llu\n", r.threads, (unsigned long long)r.accepted,
		            r.seconds, r.per_second, r.p50_ms, r.p99_ms, (unsigned long long)r.failed);
	for (const auto& r : rows)
		if (!r.first_error.empty())
			std::printf("  first error with %d threads: %s\n", r.threads, r.first_error.c_str());
}

// Postfix is compared by hand on the same machine; say how, without
// installing anything.
void print_postfix_note(const Options& o) {
	std::string candidate, installed;
	if (FILE* p = popen("apt-cache policy postfix 2>/dev/null", "r")) {
		char line[512];
		while (fgets(line, sizeof(line), p)) {
			std::string s = line;
			auto field = [&](const char* name, std::string& out) {
				auto at = s.find(name);
				if (at != std::string::npos && out.empty()) {
					out = s.substr(at + std::strlen(name));
					out.erase(0, out.find_first_not_of(" \t"));
					out.erase(out.find_last_not_of(" \t\r\n") + 1);
				}
			};
			field("Installed:", installed);
			field("Candidate:", candidate);
		}
		pclose(p);
	}
	std::printf("\nComparison with Postfix (target: at least 4x its msg/s on the same machine)\n");
	if (candidate.empty() || candidate == "(none)") {
		std::printf("  Postfix is not available from the configured apt sources; compare elsewhere.\n");
		return;
	}
	if (installed.empty() || installed == "(none)")
		std::printf("  Postfix %s is installable but not installed; this bench never installs it.\n"
		            "  To compare by hand (as root, on a test machine):\n"
		            "    apt-get install -y postfix   # \"Local only\"\n"
		            "    postconf -e home_mailbox=Maildir/ && systemctl restart postfix   # fsync'd Maildir delivery\n",
		            candidate.c_str());
	else
		std::printf("  Postfix %s is installed. Deliver to a Maildir (postconf -e home_mailbox=Maildir/),\n",
		            installed.c_str());
	std::printf("  Then run the same driver against it (Postfix answers 250 after its queue file is\n"
	            "  fsync'd; local delivery to the Maildir follows asynchronously):\n"
	            "    tests/bench/tern-bench --external 127.0.0.1:25 --from bench@localhost --rcpt USER@localhost \\\n"
	            "        --helo localhost --time %d --threads 1,8,32\n"
	            "  and compare its msg/s column with the table above.\n",
	            o.seconds);
}

bool parse_endpoint(const std::string& text, Endpoint& out) {
	auto colon = text.rfind(':');
	if (colon == std::string::npos)
		return false;
	out.host = text.substr(0, colon);
	if (out.host.size() > 2 && out.host.front() == '[' && out.host.back() == ']')
		out.host = out.host.substr(1, out.host.size() - 2);
	out.port = std::atoi(text.c_str() + colon + 1);
	return out.port > 0;
}

// Durable delivery with a large message history: every delivery reads the
// sender's reputation and the delivery-rate counts from it and adds a
// record. One run right before (the history then holds the bench's own
// messages), then ternd stops, tern-fill-history adds o.history records of
// other senders and networks, and the same run repeats.
void run_history_comparison(const Options& o, TernDaemon& daemon) {
	int threads = o.thread_counts.size() > 1 ? o.thread_counts[1] : o.thread_counts[0];
	ThroughputRow before = run_throughput(o, {"127.0.0.1", daemon.smtp_port()}, threads);
	const char* srcdir = std::getenv("TERN_SRCDIR");
	std::string filler = std::string(srcdir ? srcdir : ".") + "/tests/bench/tern-fill-history";
	daemon.stop();
	std::string command = filler + " '" + daemon.data_dir() + "' alice " + std::to_string(o.history) + " >/dev/null";
	if (std::system(command.c_str()) != 0 || !daemon.start()) {
		std::printf("\n  history run skipped: filling the history or restarting ternd failed\n");
		return;
	}
	ThroughputRow after = run_throughput(o, {"127.0.0.1", daemon.smtp_port()}, threads);
	print_throughput({before, after}, "ternd before and after adding " + std::to_string(o.history) + " history records");
	double change = before.per_second > 0 ? 100.0 * (after.per_second - before.per_second) / before.per_second : 0.0;
	std::printf("  large history: %.1f msg/s vs %.1f msg/s before (%+.1f %%), %d threads\n", after.per_second,
	            before.per_second, change, threads);
}

}  // namespace

int main(int argc, char** argv) {
	Options o = parse_options(argc, argv);
	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, nullptr, _IOLBF, 0);
	raise_fd_limit();

	std::vector<ThroughputRow> rows;
	if (!o.external.empty()) {
		Endpoint to;
		if (!parse_endpoint(o.external, to))
			usage();
		std::printf("tern bench against %s:%d, %d s per run\n", to.host.c_str(), to.port, o.seconds);
		for (int threads : o.thread_counts)
			rows.push_back(run_throughput(o, to, threads));
		print_throughput(rows, "external " + o.external);
		return 0;
	}

	DaemonOptions options;
	// Log errors only; limits raised so thousands of loopback connections
	// from one IP are neither refused nor rate-limited.
	options.config_patch = R"({
		"log": {"level": "error"},
		"delays_ms": {"bad_client": 0, "auth_fail": 0, "unknown_recipients": 0},
		"limits": {
			"connection_rate_per_min": [1000000, 1000000, 1000000],
			"connections": [100000, 100000, 100000]
		},
		"accounts": {"alice": {"delivery_rate_limits": {
			"messages_per_minute": [1000000000, 1000000000, 1000000000],
			"messages_per_day": [1000000000, 1000000000, 1000000000],
			"mib_per_minute": [1000000000, 1000000000, 1000000000],
			"mib_per_day": [1000000000, 1000000000, 1000000000]}}}
	})";
	TernDaemon daemon(options);
	if (!daemon.running()) {
		std::fprintf(stderr, "tern-bench: ternd did not start: %s\n", daemon.error().c_str());
		return 1;
	}
	std::printf("tern bench: ternd pid %d on 127.0.0.1:%d, data in %s\n\n", int(daemon.pid()), daemon.smtp_port(),
	            daemon.dir().c_str());

	MemoryResult memory = measure_memory(daemon, o.idle_connections);
	print_memory(memory, o.idle_connections);

	Endpoint to{"127.0.0.1", daemon.smtp_port()};
	uint64_t total = 0;
	for (int threads : o.thread_counts) {
		rows.push_back(run_throughput(o, to, threads));
		total += rows.back().accepted;
	}
	print_throughput(rows, "ternd");

	// Every 250 must have left a file in the Maildir.
	size_t files = maildir_files(daemon.maildir("alice")).size();
	std::printf("  Maildir check: %zu files in new/ for %llu accepted messages: %s\n", files,
	            (unsigned long long)total, files >= total ? "ok" : "MISSING MESSAGES");
	if (!daemon.running())
		std::printf("  ternd is no longer running! log:\n%s\n", daemon.log_text().c_str());
	else if (std::string log = daemon.log_text(); !log.empty())
		std::printf("  ternd logged errors (first 400 bytes):\n%.400s\n", log.c_str());

	if (o.history > 0) run_history_comparison(o, daemon);
	print_postfix_note(o);
	daemon.stop();
	return 0;
}
