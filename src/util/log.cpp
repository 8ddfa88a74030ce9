// logfmt event logger, see log.h.
#include "util/log.h"

#include <fcntl.h>
#include <syslog.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <mutex>

#include "util/hex.h"
#include "util/strings.h"
#include "util/unique_fd.h"

namespace tern::log {

namespace {

constexpr std::string_view level_names[] = {"error", "warn", "info", "debug", "trace", "traceauth", "tracedata"};

// The level is read on every log call from any thread; an atomic keeps
// enabled() a single relaxed load.
std::atomic<int> current_level{static_cast<int>(Level::info)};

// Everything about the output, guarded by output_mutex so that lines from the
// event loop and the worker pool never interleave and reopen() is safe.
std::mutex output_mutex;
Sink current_sink = Sink::stderr_sink;
UniqueFd file_fd;
std::string file_path;
bool syslog_open = false;

UniqueFd open_log_file(const std::string& path) {
	// O_APPEND: every write() lands at the end even with several writers
	// (e.g. logrotate's copytruncate or two processes).
	return UniqueFd(::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640));
}

void write_all(int fd, std::string_view data) {
	while (!data.empty()) {
		ssize_t n = ::write(fd, data.data(), data.size());
		if (n < 0) {
			if (errno == EINTR) continue;
			return;  // nowhere to report a failing log write
		}
		data.remove_prefix(static_cast<size_t>(n));
	}
}

int syslog_priority(Level level) {
	switch (level) {
	case Level::error: return LOG_ERR;
	case Level::warn: return LOG_WARNING;
	case Level::info: return LOG_INFO;
	default: return LOG_DEBUG;
	}
}

// ISO 8601 UTC with milliseconds: 2026-11-25T17:22:09.123Z. The part up to
// the seconds is formatted once per second and thread (most lines of a busy
// server fall in the same second as the one before).
std::string timestamp_now() {
	timespec now{};
	clock_gettime(CLOCK_REALTIME, &now);
	thread_local time_t cached_second = -1;
	thread_local char cached_prefix[80];  // "2026-11-25T17:22:09." (room for any int)
	if (now.tv_sec != cached_second) {
		std::tm tm{};
		gmtime_r(&now.tv_sec, &tm);
		std::snprintf(cached_prefix, sizeof cached_prefix, "%04d-%02d-%02dT%02d:%02d:%02d.", tm.tm_year + 1900,
		              tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
		cached_second = now.tv_sec;
	}
	int millis = static_cast<int>(now.tv_nsec / 1000000);
	std::string ts(cached_prefix);
	ts += static_cast<char>('0' + millis / 100);
	ts += static_cast<char>('0' + millis / 10 % 10);
	ts += static_cast<char>('0' + millis % 10);
	ts += 'Z';
	return ts;
}

// A byte that no UTF-8 sequence explains is written as \xNN, like a
// control byte: a log line is valid UTF-8 whatever a client sent, so tools
// that read logs as text (journald, grep -P, JSON shippers) take every line.
bool needs_quotes(std::string_view value) {
	if (value.empty()) return true;
	while (!value.empty()) {
		const auto c = static_cast<unsigned char>(value[0]);
		if (c == ' ' || c == '"' || c == '=' || is_ascii_control(c)) return true;
		const Utf8Rune r = decode_utf8(value);
		if (!r.valid || is_hidden_control(r.cp)) return true;
		value.remove_prefix(r.len);
	}
	return false;
}

void append_value(std::string& out, std::string_view value) {
	if (!needs_quotes(value)) {
		out.append(value);
		return;
	}
	// Control bytes (CR, LF, ESC...) are escaped so that client input can
	// never forge a log line or a terminal sequence.
	out += '"';
	append_escaped_text(out, value, "\"\\");
	out += '"';
}

void append_field(std::string& out, std::string_view key, std::string_view value) {
	if (!out.empty()) out += ' ';
	out.append(key);
	out += '=';
	append_value(out, value);
}

}  // namespace

bool parse_level(std::string_view name, Level& out) {
	for (size_t i = 0; i < std::size(level_names); ++i) {
		if (name == level_names[i] && static_cast<Level>(i) != Level::warn) {
			out = static_cast<Level>(i);
			return true;
		}
	}
	return false;
}

std::string_view level_name(Level level) {
	size_t i = static_cast<size_t>(level);
	return i < std::size(level_names) ? level_names[i] : "unknown";
}

void set_level(Level level) { current_level.store(static_cast<int>(level), std::memory_order_relaxed); }

Level level() { return static_cast<Level>(current_level.load(std::memory_order_relaxed)); }

bool enabled(Level level) { return static_cast<int>(level) <= current_level.load(std::memory_order_relaxed); }

bool set_sink(Sink sink, const std::string& path) {
	UniqueFd new_fd;
	if (sink == Sink::file) {
		new_fd = open_log_file(path);
		if (!new_fd) return false;
	}
	std::lock_guard lock(output_mutex);
	file_fd = std::move(new_fd);  // the old file (if any) closes
	if (sink == Sink::file) {
		file_path = path;
	} else {
		file_path.clear();
	}
	if (sink == Sink::syslog && !syslog_open) {
		openlog("ternd", LOG_PID | LOG_NDELAY, LOG_MAIL);
		syslog_open = true;
	} else if (sink != Sink::syslog && syslog_open) {
		closelog();
		syslog_open = false;
	}
	current_sink = sink;
	return true;
}

bool reopen() {
	std::string failed_path;
	int open_errno = 0;
	{
		std::lock_guard lock(output_mutex);
		if (current_sink != Sink::file) return true;
		UniqueFd new_fd = open_log_file(file_path);
		if (new_fd) {
			file_fd = std::move(new_fd);
			return true;
		}
		open_errno = errno;
		failed_path = file_path;
	}
	// Still writing to the old file: say so there (event() takes the lock).
	error("cannot reopen log file", {{"path", failed_path}, {"error", std::strerror(open_errno)}});
	return false;
}

std::string format_line(std::string_view ts, Level level, uint64_t cid, std::string_view msg,
                        std::initializer_list<Field> fields) {
	std::string out;
	// Room for a typical line and the newline event() adds, in one allocation.
	out.reserve(192);
	if (!ts.empty()) append_field(out, "ts", ts);
	append_field(out, "level", level_name(level));
	if (cid != 0) {
		std::string hex;
		append_hex_digits(hex, cid, hex_digit_count(cid));
		append_field(out, "cid", hex);
	}
	append_field(out, "msg", msg);
	for (const auto& [key, value] : fields) append_field(out, key, value);
	return out;
}

void event(Level level, uint64_t cid, std::string_view msg, std::initializer_list<Field> fields) {
	if (!enabled(level)) return;
	// Format outside the lock; only the write is serialized. The sink is
	// read under the lock, so the syslog decision below is rechecked there.
	std::string ts = timestamp_now();
	std::string line_with_ts = format_line(ts, level, cid, msg, fields);
	std::lock_guard lock(output_mutex);
	switch (current_sink) {
	case Sink::syslog: {
		// syslog adds its own timestamp; drop our "ts=... " prefix.
		std::string_view line = line_with_ts;
		line.remove_prefix(std::min(line.size(), 3 + ts.size() + 1));
		::syslog(syslog_priority(level), "%.*s", static_cast<int>(line.size()), line.data());
		break;
	}
	case Sink::file:
		line_with_ts += '\n';
		write_all(file_fd.get(), line_with_ts);
		break;
	case Sink::stderr_sink:
		line_with_ts += '\n';
		write_all(STDERR_FILENO, line_with_ts);
		break;
	}
}

}  // namespace tern::log
